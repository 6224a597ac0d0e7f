// What the learner classroom and the trainer console share: the live panels, built from one
// context, and the loop that folds updates into per-panel renders (at most once per frame).
// Each page adds only its own parts through `extra`.

import { createBoard, type Board } from "./board";
import { h, setText, toast } from "./dom";
import type { Live, Update } from "./live";
import { brand, shellTitle } from "./page";
import { createPrompts } from "./prompts";
import { view, type State } from "./reducer";
import {
  createChat,
  createParticipants,
  createPolls,
  createQA,
  createReactions,
  createStatus,
  panelsFor,
  scheduler,
  type PanelCtx,
  type PanelKey,
} from "./ui";

export const ALL_PANELS: PanelKey[] = ["status", "chat", "people", "polls", "qa", "board", "chapters"];

export function createLivePanels(live: Live, mode: "learner" | "trainer", sessionId: string) {
  const active = () => live.status === "live" && live.state?.status === "live";
  const ctx: PanelCtx = {
    mode,
    sessionId,
    you: () => live.you,
    send: (c, p) => live.send(c, p),
    active,
    earlier: { has: () => !!live.state?.olderChat, load: () => live.loadEarlierChat() },
  };
  const board: Board = createBoard({
    getState: () => live.state,
    mode,
    you: () => live.you,
    send: (c, p) => live.send(c, p),
    active: () => live.status === "live",
    toast: (m) => toast(m, "error"),
  });
  return {
    ctx,
    active,
    board,
    status: createStatus(mode),
    chat: createChat(ctx),
    people: createParticipants(ctx),
    polls: createPolls(ctx),
    qa: createQA(ctx),
    reactions: createReactions(ctx),
    prompts: createPrompts(live, mode),
  };
}

export type LivePanels = ReturnType<typeof createLivePanels>;

/** The page's handlers for updates from `live`: shared panels render here, `extra` renders the
 * page's own parts from the same view. */
export function driveLivePanels(
  live: Live,
  sessionId: string,
  p: LivePanels,
  extra: (v: any, dirty: Set<PanelKey>) => void,
): { update(u: Update): void; statusChanged(): void } {
  const renderAll = (dirty: Set<PanelKey>) => {
    const s = live.state;
    const you = live.you;
    if (!s || !you) return;
    if ([...dirty].some((k) => k !== "board")) {
      // The reducer's view without the board (the canvas reads the board from the state).
      const v = view({ ...s, pages: new Map() } as State, you.role, you.id);
      v.presence = live.presence; // a large session's summary (null otherwise)
      if (dirty.has("status")) {
        const token = live.participantToken;
        const replay = token ? `/s/${encodeURIComponent(sessionId)}/replay?token=${encodeURIComponent(token)}` : null;
        p.status.render(live.status, v, replay);
      }
      if (dirty.has("people") || dirty.has("status")) {
        p.people.render(v);
        p.reactions.setEnabled(p.active());
      }
      if (dirty.has("chat")) p.chat.render(v);
      if (dirty.has("polls")) p.polls.render(v);
      if (dirty.has("qa")) p.qa.render(v);
      extra(v, dirty);
    }
    if (dirty.has("board")) p.board.invalidate();
  };
  const schedule = scheduler(renderAll);
  return {
    update(u: Update) {
      if (u.snapshot) {
        schedule(ALL_PANELS);
        return;
      }
      const keys = new Set<PanelKey>();
      const fetched: Record<string, PanelKey> = {
        "chat.history": "chat",
        "poll.history": "polls",
        "qa.history": "qa",
        "board.page.get": "board",
      };
      if (u.history && fetched[u.history]) keys.add(fetched[u.history]);
      if (u.presence) {
        // A large session: the counts changed, and the reactions of the last second come as one
        // float per emoji with its count.
        keys.add("people");
        for (const [emoji, n] of Object.entries(u.presence.reactions ?? {})) p.reactions.float(emoji, `×${n}`);
      }
      // New to this page, pushed live or recovered by a resume (never the snapshot or history).
      p.prompts.arrived(u.events);
      for (const e of u.events) {
        for (const k of panelsFor(e.type)) keys.add(k);
        // In a large session others' reactions float from the summary (counted), not one by one.
        const counted = live.presence !== null && e.actor !== live.you?.id;
        if (e.type === "reaction" && u.live && !counted) p.reactions.float(e.data.emoji, live.state?.participants.get(e.data.id)?.name);
      }
      schedule(keys);
    },
    statusChanged() {
      schedule(ALL_PANELS);
    },
  };
}

/** What others did in each panel in an update, for the tabs' unread badges: {panel: how many}.
 * Snapshots and history pages are not news; your own actions are not either. */
export function activityOf(u: Update, you: string | null | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (u.snapshot || u.history) return out;
  const add = (k: string) => out.set(k, (out.get(k) ?? 0) + 1);
  for (const e of u.events) {
    if (you && e.actor === you) continue;
    const t = e.type;
    if (t === "chat.message") add("chat");
    else if (t === "qa.asked" || t === "qa.answered") add("qa");
    else if (t === "poll.opened" || t === "poll.shared") add("polls");
    else if (t === "participant.joined" || t === "hand.raised") add("people");
    else if (t.startsWith("wb.")) add("board");
  }
  return out;
}

export interface NameFormText {
  id: string;
  inputTestId: string;
  buttonTestId: string;
  autocomplete: string;
  placeholder: string;
  heading: (title: string) => string;
  lead: string;
  button: string;
  busy: string;
  empty: string;
}

/** The name form both live pages open with: checks the name, remembers it (`save`), and starts
 * `live` with it. `fail` puts the form back with the server's reason. */
export function nameForm(
  root: HTMLElement,
  live: Live,
  text: NameFormText,
  saved: string | null,
  save: (name: string) => void,
  problem?: string,
): { fail(message: string): void } {
  const input = h("input", {
    id: text.id,
    type: "text",
    "data-testid": text.inputTestId,
    maxlength: 60,
    required: true,
    autocomplete: text.autocomplete,
    placeholder: text.placeholder,
    value: saved ?? "",
  });
  const button = h("button", { type: "submit", class: "btn btn-primary btn-large", "data-testid": text.buttonTestId, text: text.button });
  const error = h("p", { class: "form-error", role: "alert", hidden: !problem }, problem ?? "");
  const showError = (message: string) => {
    error.hidden = false;
    setText(error, message);
    input.focus();
  };
  const form = h(
    "form",
    {
      class: "join-card",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        const name = input.value.trim();
        if (!name || name.length > 60) {
          showError(name ? "Please use at most 60 characters." : text.empty);
          return;
        }
        save(name);
        button.disabled = true;
        setText(button, text.busy);
        error.hidden = true;
        live.start(name);
      },
    },
    brand(),
    h("h1", null, text.heading(shellTitle())),
    h("p", { class: "lead" }, text.lead),
    h("label", { for: text.id, class: "field-label" }, "Your name"),
    input,
    error,
    button,
  );
  root.replaceChildren(h("div", { class: "join-wrap" }, form));
  input.focus();
  return {
    fail(message: string) {
      button.disabled = false;
      setText(button, text.button);
      error.hidden = false;
      setText(error, message);
    },
  };
}

// The learner's classroom (/s/{id}/join?token=…): a name, then the stage (video placeholder and
// whiteboard), chat, polls, Q&A, hand, reactions and the people in the room.
import { createBoard } from "../board";
import { app, h, location_, setAttr, setText, show, store, toast } from "../dom";
import { Live, type Update } from "../live";
import { brand, expose, initPage, setTitle, shellTitle } from "../page";
import { view, type State } from "../reducer";
import {
  createChat,
  createParticipants,
  createPolls,
  createQA,
  createReactions,
  createStatus,
  errorPage,
  panelsFor,
  run,
  scheduler,
  type PanelCtx,
  type PanelKey,
} from "../ui";

initPage();
const root = app();
const { sessionId, token } = location_();
const NAME_KEY = `classcast:${sessionId}:name`;

if (!sessionId || !token) {
  expose({ view: () => null, you: null, status: () => "connecting" });
  errorPage(root, "This link is incomplete", "Ask your trainer for the full learner link.");
} else {
  main();
}

function main(): void {
  let built: ReturnType<typeof buildClassroom> | null = null;
  let nameForm: ReturnType<typeof buildNameForm> | null = null;

  const live = new Live({
    sessionId,
    linkToken: token,
    role: "learner",
    onUpdate: (u) => {
      if (!built) {
        nameForm = null;
        built = buildClassroom(live);
      }
      built.update(u);
    },
    onStatus: () => built?.statusChanged(),
    onFatal: (err) => {
      const messages: Record<string, string> = {
        expired_token: "This link has expired. Ask your trainer for a new one.",
        invalid_token: "This link does not work. Check that you copied all of it.",
        wrong_session: "This link belongs to another session.",
        not_found: "This session does not exist any more.",
        forbidden: "This link cannot be used to join the class.",
      };
      if (nameForm && !built && !["expired_token", "invalid_token", "wrong_session", "not_found", "forbidden"].includes(err.code)) {
        nameForm.fail(err.message);
        return;
      }
      live.close();
      errorPage(root, "You cannot join right now", messages[err.code] ?? err.message);
    },
    onNeedName: (err) => {
      built = null;
      nameForm = buildNameForm(live, err?.message);
    },
  });

  expose({
    view: () => live.view(),
    get you() {
      return live.you;
    },
    status: () => live.status,
  });

  if (live.hasIdentity) {
    root.replaceChildren(h("div", { class: "notice", role: "status" }, h("p", null, "Connecting to the class…")));
    live.start();
  } else {
    nameForm = buildNameForm(live);
  }
}

function buildNameForm(live: Live, problem?: string) {
  const title = shellTitle();
  const input = h("input", {
    id: "name",
    type: "text",
    "data-testid": "name-input",
    maxlength: 60,
    required: true,
    autocomplete: "nickname",
    placeholder: "e.g. Ada Lovelace",
    value: store.get(NAME_KEY) ?? "",
  });
  const button = h("button", { type: "submit", class: "btn btn-primary btn-large", "data-testid": "join-button", text: "Join the class" });
  const error = h("p", { class: "form-error", role: "alert", hidden: !problem }, problem ?? "");
  const form = h(
    "form",
    {
      class: "join-card",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        const name = input.value.trim();
        if (!name) {
          error.hidden = false;
          setText(error, "Please enter the name others will see.");
          input.focus();
          return;
        }
        if (name.length > 60) {
          error.hidden = false;
          setText(error, "Please use at most 60 characters.");
          return;
        }
        store.set(NAME_KEY, name);
        button.disabled = true;
        setText(button, "Joining…");
        error.hidden = true;
        live.start(name);
      },
    },
    brand(),
    h("h1", null, title ? `Join “${title}”` : "Join the class"),
    h("p", { class: "lead" }, "Enter your name to join. The trainer and other learners will see it."),
    h("label", { for: "name", class: "field-label" }, "Your name"),
    input,
    error,
    button,
  );
  root.replaceChildren(h("div", { class: "join-wrap" }, form));
  input.focus();
  return {
    fail(message: string) {
      button.disabled = false;
      setText(button, "Join the class");
      error.hidden = false;
      setText(error, message);
    },
  };
}

function buildClassroom(live: Live) {
  const active = () => live.status === "live" && live.state?.status === "live";
  const ctx: PanelCtx = {
    mode: "learner",
    sessionId,
    you: () => live.you,
    send: (c, p) => live.send(c, p),
    active,
  };
  const status = createStatus("learner");
  const chat = createChat(ctx);
  const people = createParticipants(ctx);
  const polls = createPolls(ctx);
  const qa = createQA(ctx);
  const reactions = createReactions(ctx);
  const board = createBoard({
    getState: () => live.state,
    mode: "learner",
    you: () => live.you,
    send: (c, p) => live.send(c, p),
    active: () => live.status === "live",
    toast: (m) => toast(m, "error"),
  });

  const title = h("h1", { class: "session-title" });
  const youLabel = h("span", { class: "you-label" });
  const hand: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn hand-btn",
    "data-testid": "hand-raise",
    "aria-pressed": "false",
    onclick: () => {
      const raised = hand.getAttribute("aria-pressed") === "true";
      void run(ctx, raised ? "hand.lower" : "hand.raise", {}, hand);
    },
  });

  const stage = h(
    "section",
    { class: "stage", "aria-label": "Stage" },
    h(
      "div",
      { class: "video-placeholder", role: "img", "aria-label": "Video area: the trainer's video appears here" },
      h("span", { class: "video-icon", "aria-hidden": "true" }, "🎥"),
      h("span", null, "The trainer's video appears here"),
    ),
    board.el,
    reactions.overlay,
  );

  root.replaceChildren(
    h(
      "div",
      { class: "page page-learner" },
      h("header", { class: "topbar" }, brand(), h("div", { class: "topbar-title" }, title, youLabel), status.el),
      h(
        "div",
        { class: "layout" },
        h(
          "div",
          { class: "col-main" },
          stage,
          h("div", { class: "stage-actions" }, hand, reactions.bar),
          h("div", { class: "pair" }, polls.el, qa.el),
        ),
        h("aside", { class: "col-side", "aria-label": "Chat and people" }, chat.el, people.el),
      ),
    ),
  );

  const renderAll = (dirty: Set<PanelKey>) => {
    const s = live.state;
    const you = live.you;
    if (!s || !you) return;
    if ([...dirty].some((k) => k !== "board")) {
      // The reducer's view without the board (the canvas reads the board from the state).
      const v = view({ ...s, pages: new Map() } as State, you.role, you.id);
      if (dirty.has("status")) {
        setText(title, v.title);
        setTitle(v.title, v.status === "live" ? "Live" : "");
        setText(youLabel, `You are ${you.name}`);
        const token = live.participantToken;
        status.render(live.status, v, token ? `/s/${encodeURIComponent(sessionId)}/replay?token=${encodeURIComponent(token)}` : null);
      }
      if (dirty.has("chat")) chat.render(v);
      if (dirty.has("people")) {
        people.render(v);
        const me = v.participants.find((p: any) => p.id === you.id);
        const raised = !!me?.hand;
        setAttr(hand, "aria-pressed", String(raised));
        setText(hand, raised ? "✋ Lower hand" : "✋ Raise hand");
        hand.disabled = !active();
      }
      if (dirty.has("polls")) polls.render(v);
      if (dirty.has("qa")) qa.render(v);
      if (dirty.has("status") || dirty.has("people")) {
        reactions.setEnabled(active());
        show(reactions.bar, v.status !== "ended");
        show(hand, v.status !== "ended");
      }
    }
    if (dirty.has("board")) board.invalidate();
  };
  const schedule = scheduler(renderAll);
  const ALL: PanelKey[] = ["status", "chat", "people", "polls", "qa", "board", "chapters"];

  return {
    update(u: Update) {
      if (u.snapshot) {
        schedule(ALL);
        return;
      }
      const keys = new Set<PanelKey>();
      for (const e of u.events) {
        for (const k of panelsFor(e.type)) keys.add(k);
        if (e.type === "reaction" && u.live) {
          const who = live.state?.participants.get(e.data.id)?.name;
          reactions.float(e.data.emoji, who);
        }
      }
      schedule(keys);
    },
    statusChanged() {
      schedule(ALL);
    },
  };
}

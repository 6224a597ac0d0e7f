// Shared panels of the live pages and the replay: status banner, chat, participants, polls, Q&A,
// reactions. Each panel renders from the reducer's view, keyed per item, touching only what
// changed; text fields are built once and never re-rendered, so drafts survive anything.
import type { Ack, Status, You } from "./live";
import {
  clearDraft,
  h,
  mirrorDraft,
  nextFrame,
  reconcile,
  setAttr,
  setText,
  shortTime,
  show,
  toast,
  toggleClass,
} from "./dom";

export const REACTIONS = ["👍", "👏", "❤️", "😂", "😮", "🎉", "🤔", "🙌"] as const;

const LIMITS = { chat: 2000, question: 1000, answer: 2000, pollQuestion: 500, pollOption: 200, optionsMax: 10 };

export type Mode = "trainer" | "learner" | "replay";

export interface PanelCtx {
  mode: Mode;
  sessionId: string;
  you: () => You | null;
  send?: (command: string, payload?: Record<string, unknown>) => Promise<Ack>;
  /** Whether commands can be sent now (connected and the session is live). */
  active: () => boolean;
  /** Replay: move the playhead. */
  seek?: (t: number) => void;
  /** Older chat than the snapshot carried: whether there may be some, and fetch a page of it. */
  earlier?: { has: () => boolean; load: () => Promise<boolean | null> };
}

export interface Panel {
  el: HTMLElement;
  render(v: any): void;
}

let uid = 0;
const nextId = (prefix: string) => `${prefix}-${++uid}`;

/** Send a command, with the button busy meanwhile; toasts the error. Resolves to the ack or null. */
export async function run(
  ctx: PanelCtx,
  command: string,
  payload: Record<string, unknown>,
  button?: HTMLButtonElement | null,
): Promise<Ack | null> {
  if (!ctx.send) return null;
  if (button) {
    button.setAttribute("aria-busy", "true");
    button.classList.add("busy");
  }
  try {
    const ack = await ctx.send(command, payload);
    if (!ack.ok) {
      toast(ack.error?.message ?? "That did not work.", "error");
      return null;
    }
    return ack;
  } finally {
    if (button) {
      button.removeAttribute("aria-busy");
      button.classList.remove("busy");
    }
  }
}

function panel(title: string, cls: string, ...extra: (Node | null)[]): { el: HTMLElement; head: HTMLElement } {
  const id = nextId("h");
  const head = h("div", { class: "panel-head" }, h("h2", { id }, title), ...extra);
  const el = h("section", { class: `panel ${cls}`, "aria-labelledby": id }, head);
  return { el, head };
}

const roleLabel = (role: string) => (role === "trainer" ? "Trainer" : "");

// -- status banner ----------------------------------------------------------------------------------

export interface StatusBanner {
  el: HTMLElement;
  render(conn: Status, v: any | null, replayHref: string | null): void;
}

const RECONNECTED_MS = 3_000;

export function createStatus(mode: "trainer" | "learner"): StatusBanner {
  const text = h("span", { class: "status-text" });
  const link = h("a", { "data-testid": "replay-link", class: "status-link" }, "watch the replay");
  const el = h("div", { class: "status", "data-testid": "status", role: "status", "aria-live": "polite" }, text);
  let last = "";
  // "Reconnected" shows for a moment after a drop, then the usual label comes back.
  let wasDown = false;
  let reconnectedUntil = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let lastArgs: [Status, any, string | null] | null = null;
  const banner: StatusBanner = {
    el,
    render(conn, v, replayHref) {
      lastArgs = [conn, v, replayHref];
      if (conn === "reconnecting") wasDown = true;
      else if (conn === "live" && wasDown) {
        wasDown = false;
        reconnectedUntil = Date.now() + RECONNECTED_MS;
        if (timer !== null) clearTimeout(timer);
        timer = setTimeout(() => {
          timer = null;
          if (lastArgs) banner.render(...lastArgs);
        }, RECONNECTED_MS + 50);
      }
      let kind = "wait";
      let label: string;
      let showLink = false;
      if (conn === "live" && Date.now() < reconnectedUntil) {
        label = "Reconnected";
        kind = "live";
      } else if (conn === "connecting" || !v) {
        label = "Connecting…";
      } else if (conn === "reconnecting") {
        label = "Reconnecting…";
        kind = "warn";
      } else if (v.status === "created") {
        label = mode === "learner" ? "Waiting for the trainer to start" : "Not started — press Start session when you are ready";
      } else if (v.status === "live") {
        label = "Live";
        kind = "live";
      } else {
        kind = "ended";
        showLink = !!replayHref && v.recording !== "off";
        label = showLink ? "Session ended — " : "Session ended";
      }
      const key = `${kind}|${label}|${showLink}|${replayHref}`;
      if (key === last) return;
      last = key;
      el.className = `status status-${kind}`;
      setText(text, label);
      // The link is in the banner only when it shows (hidden text would still be its text).
      if (showLink && replayHref) {
        link.href = replayHref;
        setText(link, mode === "learner" ? "watch the replay" : "open the replay");
        if (!link.isConnected) el.appendChild(link);
      } else link.remove();
    },
  };
  return banner;
}

// -- chat -------------------------------------------------------------------------------------------

export function createChat(ctx: PanelCtx): Panel {
  const { el } = panel("Chat", "chat-panel");
  const list = h("ol", {
    class: "chat-list",
    "data-testid": "chat-list",
    role: "log",
    "aria-label": "Chat messages",
    tabindex: "0",
  });
  const empty = h("p", { class: "empty" }, ctx.mode === "replay" ? "No messages at this point." : "No messages yet. Say hello!");
  // Older messages than the join snapshot carried: a button, and scrolling to the top, fetch them.
  let anchor: number | null = null; // distance from the bottom to keep while older ones come in
  let loadingEarlier = false;
  const earlierBtn: HTMLButtonElement = h("button", {
    type: "button",
    class: "link-btn earlier",
    "data-testid": "chat-earlier",
    text: "Load earlier messages",
    hidden: true,
    onclick: () => void loadEarlier(),
  });
  async function loadEarlier(): Promise<void> {
    if (!ctx.earlier || loadingEarlier || !ctx.earlier.has()) return;
    loadingEarlier = true;
    earlierBtn.disabled = true;
    anchor = list.scrollHeight - list.scrollTop;
    const more = await ctx.earlier.load();
    loadingEarlier = false;
    earlierBtn.disabled = false;
    if (more === null) {
      anchor = null;
      toast("Could not load earlier messages; try again.", "error");
    }
  }
  // Scrolled up when new messages arrive: a hint over the list's bottom edge takes one back down.
  const newHint: HTMLButtonElement = h("button", {
    type: "button",
    class: "chat-new-hint",
    "data-testid": "chat-new-hint",
    text: "New messages ↓",
    hidden: true,
    onclick: () => {
      list.scrollTop = list.scrollHeight;
      pinToBottom = true;
      newHint.hidden = true;
    },
  });
  let newest = 0; // seq of the newest message rendered
  el.append(earlierBtn, list, newHint, empty);
  const cache = new Map<string, HTMLElement>();
  let mutedNote: HTMLElement | null = null;
  let sendBtn: HTMLButtonElement | null = null;
  let input: HTMLTextAreaElement | null = null;
  const draftKey = `classcast:${ctx.sessionId}:draft:chat`;

  if (ctx.mode !== "replay") {
    const inputId = nextId("chat");
    input = h("textarea", {
      id: inputId,
      class: "chat-input",
      "data-testid": "chat-input",
      rows: 2,
      maxlength: LIMITS.chat,
      placeholder: "Write a message…",
      autocomplete: "off",
    });
    mirrorDraft(input, draftKey);
    sendBtn = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "chat-send", text: "Send" });
    mutedNote = h("p", { class: "note note-warn", hidden: true }, "The trainer has muted you in chat.");
    const form = h(
      "form",
      { class: "composer", onsubmit: (ev: Event) => (ev.preventDefault(), void sendMessage()) },
      h("label", { for: inputId, class: "sr-only" }, "Chat message"),
      input,
      sendBtn,
    );
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        void sendMessage();
      }
    });
    el.append(mutedNote, form);
  }

  let sending = false;
  async function sendMessage(): Promise<void> {
    if (!input || sending) return;
    const text = input.value.trim();
    if (!text) return;
    sending = true;
    const ack = await run(ctx, "chat.send", { text }, sendBtn);
    sending = false;
    if (ack) {
      // Only clear what was sent: the user may have typed on meanwhile.
      if (input.value.trim() === text) clearDraft(input, draftKey);
      pinToBottom = true;
    }
  }

  let pinToBottom = true;
  list.addEventListener("scroll", () => {
    pinToBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    if (pinToBottom) newHint.hidden = true;
    if (list.scrollTop < 40 && list.scrollHeight > list.clientHeight) void loadEarlier();
  });

  return {
    el,
    render(v) {
      const you = ctx.you();
      const wasAtBottom = pinToBottom;
      reconcile(
        list,
        cache,
        v.chat as any[],
        (m) => m.id,
        (m) => {
          const li = h("li", { class: "chat-message", "data-testid": "chat-message", "data-id": m.id });
          const name = h("span", { class: "name" }, m.name);
          const meta = h("span", { class: "meta" });
          if (m.role === "trainer") meta.appendChild(h("span", { class: "badge badge-trainer" }, roleLabel(m.role)));
          let time: HTMLElement;
          if (ctx.mode === "replay") {
            time = h("button", {
              type: "button",
              class: "time link-btn",
              "aria-label": `Go to ${shortTime(m.t)}`,
              text: shortTime(m.t),
              onclick: (ev: Event) => (ev.stopPropagation(), ctx.seek?.(m.t)),
            });
            li.classList.add("seekable");
            li.addEventListener("click", () => ctx.seek?.(m.t));
          } else {
            time = h("time", { class: "time" }, shortTime(m.t));
          }
          meta.appendChild(time);
          li.append(h("div", { class: "msg-head" }, name, meta), h("p", { class: "text" }, m.text));
          if (ctx.mode === "trainer") {
            const del: HTMLButtonElement = h("button", {
              type: "button",
              class: "icon-btn danger",
              "data-testid": "chat-delete",
              "aria-label": `Delete message from ${m.name}`,
              title: "Delete message",
              text: "✕",
              onclick: () => void run(ctx, "chat.delete", { message_id: m.id }, del),
            });
            li.appendChild(del);
          }
          return li;
        },
        (li, m) => {
          toggleClass(li, "mine", !!you && m.author === you.id);
        },
      );
      show(empty, v.chat.length === 0);
      if (ctx.mode !== "replay") {
        // Chat is for the class while it runs: say so before the start rather than invite a
        // "hello" the disabled Send cannot deliver.
        setText(
          empty,
          v.status === "created" ? "Chat opens when the class starts." : v.status === "ended" ? "No messages were sent." : "No messages yet. Say hello!",
        );
        if (input) setAttr(input, "placeholder", v.status === "created" ? "Chat opens when the class starts" : "Write a message…");
      }
      show(earlierBtn, !!ctx.earlier?.has());
      const last: number = v.chat.length ? v.chat[v.chat.length - 1].seq : 0;
      // Older messages loaded above, or a deletion, are not news; a message below is.
      if (last > newest && newest > 0 && !wasAtBottom) newHint.hidden = false;
      if (!v.chat.length) newHint.hidden = true;
      newest = Math.max(newest, last);
      if (anchor !== null) {
        list.scrollTop = list.scrollHeight - anchor; // the message read stays where it was
        anchor = null;
      } else if (wasAtBottom) list.scrollTop = list.scrollHeight;
      if (mutedNote && sendBtn && you) {
        const me = (v.participants as any[]).find((p) => p.id === you.id);
        const muted = !!me?.muted;
        show(mutedNote, muted);
        sendBtn.disabled = muted || !ctx.active();
      }
    },
  };
}

// -- participants -----------------------------------------------------------------------------------

export function createParticipants(ctx: PanelCtx): Panel & { count: HTMLElement } {
  const count = h("span", { class: "count-pill", "data-testid": "participant-count" });
  const { el } = panel("People", "people-panel", count);
  const list = h("ul", { class: "people-list", "data-testid": "participant-list", "aria-label": "Participants" });
  // A large session (docs/architecture.md): learners see the counts, not everyone's name.
  const summary = h("p", { class: "presence-summary", "data-testid": "presence-summary", "aria-live": "polite" });
  summary.hidden = true;
  el.appendChild(summary);
  el.appendChild(list);
  const cache = new Map<string, HTMLElement>();
  const refs = new WeakMap<HTMLElement, Record<string, HTMLElement>>();

  return {
    el,
    count,
    render(v) {
      const people = v.participants as any[];
      const crowd: { learners: number; trainers: number; hands: number } | null = v.presence ?? null;
      // In a large session a learner holds only the trainers and themselves: the summary counts.
      const online = crowd && ctx.mode !== "trainer" ? crowd.learners + crowd.trainers : people.filter((p) => p.online).length;
      show(summary, !!crowd);
      if (crowd) {
        const hands = `${crowd.hands} ${crowd.hands === 1 ? "hand" : "hands"} raised`;
        setText(summary, `${crowd.learners} ${crowd.learners === 1 ? "learner" : "learners"} online · ${hands}`);
      }
      setText(count, `${online} online`);
      setAttr(count, "aria-label", `${online} ${online === 1 ? "person" : "people"} online`);
      const you = ctx.you();
      const floor: Record<string, { camera: boolean }> = v.media?.floor ?? {};
      const order = people
        .map((p, i) => ({ p, i }))
        .sort(
          (a, b) =>
            Number(b.p.hand) - Number(a.p.hand) ||
            Number(b.p.online) - Number(a.p.online) ||
            Number(b.p.role === "trainer") - Number(a.p.role === "trainer") ||
            a.i - b.i,
        )
        .map((x) => x.p);
      reconcile(
        list,
        cache,
        order,
        (p) => p.id,
        (p) => {
          const r: Record<string, HTMLElement> = {
            dot: h("span", { class: "presence", "aria-hidden": "true" }),
            name: h("span", { class: "name" }, p.name),
            badges: h("span", { class: "badges" }),
            state: h("span", { class: "sr-only" }),
          };
          const li = h("li", { class: "person", "data-testid": "participant", "data-id": p.id }, r.dot, r.name, r.badges, r.state);
          if (ctx.mode === "trainer" && p.role === "learner") {
            const lower: HTMLButtonElement = h("button", {
              type: "button",
              class: "btn btn-small",
              "data-testid": "lower-hand",
              "aria-label": `Lower ${p.name}'s hand`,
              text: "Lower hand",
              onclick: () => void run(ctx, "hand.lower", { participant_id: p.id }, lower),
            });
            const mute: HTMLButtonElement = h("button", {
              type: "button",
              class: "btn btn-small btn-ghost",
              "data-testid": "mute",
              onclick: () => {
                const muted = mute.getAttribute("aria-pressed") === "true";
                void run(ctx, muted ? "participant.unmute" : "participant.mute", { participant_id: p.id }, mute);
              },
            });
            // The floor (issue 10): the learner may then send their microphone (and camera).
            const give: HTMLButtonElement = h("button", {
              type: "button",
              class: "btn btn-small btn-ghost",
              "data-testid": "floor-toggle",
              onclick: () => {
                const has = give.getAttribute("aria-pressed") === "true";
                void run(ctx, has ? "floor.take" : "floor.give", has ? { id: p.id } : { id: p.id, camera: true }, give);
              },
            });
            r.lower = lower;
            r.mute = mute;
            r.floor = give;
            li.appendChild(h("span", { class: "person-actions" }, lower, mute, give));
          }
          refs.set(li, r);
          return li;
        },
        (li, p) => {
          const r = refs.get(li)!;
          setText(r.name, p.name);
          toggleClass(li, "offline", !p.online);
          toggleClass(li, "hand-up", p.hand);
          toggleClass(li, "me", !!you && you.id === p.id);
          const badges: string[] = [];
          if (p.role === "trainer") badges.push("Trainer");
          if (you && you.id === p.id) badges.push("You");
          // A mute is between the trainers and the muted learner: nobody else is shown it.
          if (p.muted && (ctx.mode === "trainer" || (!!you && you.id === p.id))) badges.push("Muted");
          const key = `${badges.join("|")}|${p.hand}`;
          if (r.badges.dataset.key !== key) {
            r.badges.dataset.key = key;
            r.badges.replaceChildren(
              ...(p.hand ? [h("span", { class: "hand", title: "Hand raised", "aria-hidden": "true" }, "✋")] : []),
              ...badges.map((b) => h("span", { class: `badge badge-${b.toLowerCase()}` }, b)),
            );
          }
          setText(r.state, `${p.online ? "online" : "offline"}${p.hand ? ", hand raised" : ""}`);
          if (r.lower) {
            show(r.lower, p.hand);
            (r.lower as HTMLButtonElement).disabled = !ctx.active();
          }
          if (r.mute) {
            setText(r.mute, p.muted ? "Unmute" : "Mute");
            setAttr(r.mute, "aria-pressed", String(!!p.muted));
            setAttr(r.mute, "aria-label", `${p.muted ? "Unmute" : "Mute"} ${p.name} in chat`);
            (r.mute as HTMLButtonElement).disabled = !ctx.active();
          }
          if (r.floor) {
            const has = !!floor[p.id];
            setText(r.floor, has ? "Take the floor back" : "Give the floor");
            setAttr(r.floor, "aria-pressed", String(has));
            setAttr(r.floor, "aria-label", `${has ? "Take the floor back from" : "Give the floor to"} ${p.name}`);
            show(r.floor, p.online || has);
            (r.floor as HTMLButtonElement).disabled = !ctx.active();
          }
        },
      );
    },
  };
}

// -- polls ------------------------------------------------------------------------------------------

export interface PollsOptions {
  /** Replay: add a section to each poll card once (the quiz). */
  extra?: (poll: any) => HTMLElement | null;
  /** Replay: refresh that section when the card renders. */
  updateExtra?: (poll: any, el: HTMLElement) => void;
}

export function createPolls(ctx: PanelCtx, popts: PollsOptions = {}): Panel {
  const { el } = panel("Polls", "polls-panel");
  const composer = ctx.mode === "trainer" ? createPollComposer(ctx) : null;
  const drafts = ctx.mode === "trainer" ? createDrafts(ctx) : null;
  if (composer && drafts) el.append(composer.el, drafts.el);
  const list = h("div", { class: "poll-list" });
  const empty = h(
    "p",
    { class: "empty" },
    ctx.mode === "trainer" ? "No polls yet. Ask the room something above." : ctx.mode === "replay" ? "No polls at this point." : "No polls yet.",
  );
  el.append(list, empty);
  const cache = new Map<string, HTMLElement>();
  const refs = new WeakMap<HTMLElement, any>();

  function create(p: any): HTMLElement {
    const card = h("article", { class: "poll-card", "data-testid": "poll", "data-id": p.id });
    const qid = nextId("pq");
    const r: any = {
      badges: h("span", { class: "badges" }),
      note: h("p", { class: "poll-note" }),
      results: h("div", { class: "results", "aria-label": "Results" }),
      rows: [] as HTMLElement[],
      inputs: [] as HTMLInputElement[],
      synced: undefined as string | undefined,
    };
    const title = h("h3", { id: qid, class: "poll-question" }, p.question);
    card.append(h("header", { class: "poll-head" }, title, r.badges));
    if (ctx.mode === "replay") {
      title.classList.add("seekable");
      card.appendChild(
        h("button", { type: "button", class: "link-btn time", text: `Opened at ${shortTime(p.t)}`, onclick: () => ctx.seek?.(p.t) }),
      );
    }
    if (ctx.mode === "learner") {
      const fieldset = h("fieldset", { class: "choices" }, h("legend", { class: "sr-only" }, p.question));
      const name = `poll-${p.id}`;
      (p.options as string[]).forEach((opt, i) => {
        const input = h("input", {
          type: p.multiple ? "checkbox" : "radio",
          name,
          value: String(i),
          "data-testid": "poll-choice",
        });
        r.inputs.push(input);
        fieldset.appendChild(h("label", { class: "choice" }, input, h("span", null, opt)));
      });
      r.vote = h("button", {
        type: "button",
        class: "btn btn-primary",
        "data-testid": "poll-vote",
        text: "Vote",
        onclick: async () => {
          const choices = r.inputs.filter((x: HTMLInputElement) => x.checked).map((x: HTMLInputElement) => +x.value);
          if (!choices.length) {
            toast("Choose an answer first.", "error");
            return;
          }
          const ack = await run(ctx, "poll.vote", { poll_id: p.id, choices }, r.vote);
          if (ack) toast("Vote saved.");
        },
      });
      r.hint = h("span", { class: "hint" }, p.multiple ? "Choose one or more" : "Choose one");
      r.fieldset = fieldset;
      card.append(fieldset, h("div", { class: "poll-actions" }, r.vote, r.hint));
    }
    card.append(r.results, r.note);
    if (ctx.mode === "trainer") {
      r.close = h("button", {
        type: "button",
        class: "btn",
        "data-testid": "poll-close",
        text: "Close poll",
        onclick: () => void run(ctx, "poll.close", { poll_id: p.id }, r.close),
      });
      r.share = h("button", {
        type: "button",
        class: "btn btn-primary",
        "data-testid": "poll-share",
        text: "Share results",
        onclick: () => void run(ctx, "poll.share", { poll_id: p.id }, r.share),
      });
      r.voters = h("details", { class: "voters", hidden: true }, h("summary", null, "Who voted what"), h("ul"));
      card.append(h("div", { class: "poll-actions" }, r.close, r.share), r.voters);
    }
    if (popts.extra) {
      const x = popts.extra(p);
      if (x) {
        r.extra = x;
        card.appendChild(x);
      }
    }
    refs.set(card, r);
    return card;
  }

  function update(card: HTMLElement, p: any, v: any): void {
    const r = refs.get(card);
    const open = p.status === "open";
    const badges = [open ? "Open" : "Closed", p.quiz ? "Quiz" : "", p.anonymous ? "Anonymous" : "", p.multiple ? "Multiple choice" : ""]
      .filter(Boolean)
      .join("|");
    if (r.badges.dataset.key !== badges) {
      r.badges.dataset.key = badges;
      r.badges.replaceChildren(
        ...badges.split("|").map((b) => h("span", { class: `badge badge-${b.split(" ")[0].toLowerCase()}` }, b)),
      );
    }
    toggleClass(card, "closed", !open);
    const mine: number[] | null = p.my_choices;
    if (ctx.mode === "learner") {
      const key = JSON.stringify(mine);
      if (r.synced !== key) {
        // The vote changed (here or in another tab): show it; otherwise leave the user's picks alone.
        r.synced = key;
        r.inputs.forEach((x: HTMLInputElement, i: number) => (x.checked = !!mine && mine.includes(i)));
      }
      const canVote = open && ctx.active();
      r.inputs.forEach((x: HTMLInputElement) => (x.disabled = !canVote));
      show(r.vote, open);
      show(r.hint, open);
      // Once closed and shared, the result bars say it all (with your answer marked).
      show(r.fieldset, open || !p.counts);
      r.vote.disabled = !canVote;
      setText(r.vote, mine ? "Change vote" : "Vote");
    }
    // Results: trainers always; learners (and the replay) once shared.
    const counts: number[] | null = p.counts;
    show(r.results, !!counts);
    if (counts) {
      const total = counts.reduce((a, b) => a + b, 0);
      (p.options as string[]).forEach((opt, i) => {
        let row = r.rows[i];
        if (!row) {
          row = h(
            "div",
            { class: "bar-row", "data-testid": "poll-result" },
            h("span", { class: "bar-label" }, h("span", { class: "opt" }, opt), h("span", { class: "mark" })),
            h("span", { class: "bar", "aria-hidden": "true" }, h("span", { class: "fill" })),
            h("span", { class: "bar-count" }),
          );
          r.rows[i] = row;
          r.results.appendChild(row);
        }
        const n = counts[i] ?? 0;
        const pct = total ? Math.round((n / total) * 100) : 0;
        const correct = !!p.correct && p.correct.includes(i);
        const chosen = !!mine && mine.includes(i);
        toggleClass(row, "correct", correct);
        toggleClass(row, "chosen", chosen);
        setText(row.querySelector(".mark")!, `${correct ? " ✓ correct" : ""}${chosen ? " · your answer" : ""}`);
        (row.querySelector(".fill") as HTMLElement).style.width = `${pct}%`;
        setText(row.querySelector(".bar-count")!, `${n} (${pct}%)`);
      });
    }
    let note = "";
    if (ctx.mode === "learner") {
      if (mine) note = `You answered: ${mine.map((i) => p.options[i]).join(", ")}.`;
      if (!open && !p.shared) note += `${note ? " " : ""}Poll closed — results not shared yet.`;
      if (p.shared && p.quiz && p.correct && mine) {
        const right = mine.length === p.correct.length && mine.every((c: number) => p.correct.includes(c));
        note += right ? " You got it right! 🎉" : " Not quite this time.";
      }
    } else if (ctx.mode === "trainer") {
      note = `${p.voters ?? 0} ${p.voters === 1 ? "person" : "people"} voted${p.shared ? " · results shared with learners" : ""}`;
      show(r.close, open);
      show(r.share, !open && !p.shared);
      r.close.disabled = r.share.disabled = !ctx.active();
      if (p.votes && Object.keys(p.votes).length) {
        show(r.voters, true);
        const names = new Map<string, string>((v.participants as any[]).map((x) => [x.id, x.name]));
        const lines = Object.entries(p.votes as Record<string, number[]>).map(
          ([who, ch]) => `${names.get(who) ?? who}: ${ch.map((i) => p.options[i]).join(", ")}`,
        );
        const key = lines.join("\n");
        const ul = r.voters.querySelector("ul")!;
        if (ul.dataset.key !== key) {
          ul.dataset.key = key;
          ul.replaceChildren(...lines.map((l) => h("li", null, l)));
        }
      } else show(r.voters, false);
    } else {
      note = p.shared ? `${p.voters ?? 0} voted` : open ? "Poll open at this point" : "Poll closed; results were not shared yet";
    }
    setText(r.note, note.trim());
    if (r.extra && popts.updateExtra) popts.updateExtra(p, r.extra);
  }

  return {
    el,
    render(v) {
      composer?.render(v);
      drafts?.render(v);
      const polls = [...(v.polls as any[])].reverse(); // newest first
      reconcile(list, cache, polls, (p) => p.id, create, (card, p) => update(card, p, v));
      show(empty, polls.length === 0);
    },
  };
}

/** The trainer's prepared polls (`poll.draft`): open one once the class runs, or discard it. */
function createDrafts(ctx: PanelCtx): Panel {
  const list = h("ul", { class: "draft-list" });
  const el = h("div", { class: "drafts", "data-testid": "poll-drafts", hidden: true }, h("h3", { class: "field-label" }, "Prepared polls"), list);
  const cache = new Map<string, HTMLElement>();
  const create = (d: any): HTMLElement => {
    const open: HTMLButtonElement = h("button", {
      type: "button",
      class: "btn btn-primary btn-small",
      "data-testid": "poll-draft-open",
      text: "Open now",
      "aria-label": `Open the poll: ${d.question}`,
      onclick: () => void run(ctx, "poll.open_draft", { poll_id: d.id }, open).then((ack) => ack && toast("Poll opened.")),
    });
    const discard: HTMLButtonElement = h("button", {
      type: "button",
      class: "btn btn-small",
      "data-testid": "poll-draft-discard",
      text: "Discard",
      "aria-label": `Discard the prepared poll: ${d.question}`,
      onclick: () => void run(ctx, "poll.discard", { poll_id: d.id }, discard),
    });
    return h(
      "li",
      { class: "draft", "data-testid": "poll-draft", "data-id": d.id },
      h("span", { class: "draft-question" }, d.question),
      h("span", { class: "hint" }, (d.options as string[]).join(" · ")),
      h("span", { class: "draft-actions" }, open, discard),
    );
  };
  return {
    el,
    render(v) {
      const items = v.drafts as any[];
      reconcile(list, cache, items, (d) => d.id, create, (li) => {
        const open = li.querySelector("[data-testid=poll-draft-open]") as HTMLButtonElement;
        open.disabled = !ctx.active();
        open.title = ctx.active() ? "" : "Opens once the class has started";
        (li.querySelector("[data-testid=poll-draft-discard]") as HTMLButtonElement).disabled = v.status === "ended";
      });
      show(el, items.length > 0);
    },
  };
}

function createPollComposer(ctx: PanelCtx): Panel {
  const qId = nextId("pollq");
  const question = h("input", {
    id: qId,
    type: "text",
    "data-testid": "poll-question",
    maxlength: LIMITS.pollQuestion,
    placeholder: "What do you want to ask?",
    autocomplete: "off",
  });
  const options = h("div", { class: "option-list" });
  const multiple = h("input", { type: "checkbox", "data-testid": "poll-multiple" });
  const anonymous = h("input", { type: "checkbox", "data-testid": "poll-anonymous" });
  const addBtn = h("button", {
    type: "button",
    class: "btn btn-small",
    "data-testid": "poll-add-option",
    text: "+ Add option",
    onclick: () => {
      addOption();
      (options.lastElementChild?.querySelector("input[type=text]") as HTMLInputElement | null)?.focus();
    },
  });
  const openBtn = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "poll-open", text: "Open poll" });
  const draftBtn = h("button", {
    type: "button",
    class: "btn",
    "data-testid": "poll-save-draft",
    text: "Save for later",
    onclick: () => void submit(true),
  });
  const before = h("p", { class: "hint", hidden: true }, "The class has not started: save polls for later and open them once it runs.");

  function addOption(): void {
    if (options.childElementCount >= LIMITS.optionsMax) return;
    const id = nextId("opt");
    const input = h("input", {
      id,
      type: "text",
      "data-testid": "poll-option",
      maxlength: LIMITS.pollOption,
      autocomplete: "off",
    });
    const correct = h("input", {
      type: "checkbox",
      "data-testid": "poll-correct",
      onchange: () => {
        if (correct.checked && !multiple.checked) {
          for (const c of options.querySelectorAll<HTMLInputElement>("[data-testid=poll-correct]")) if (c !== correct) c.checked = false;
        }
      },
    });
    const remove = h("button", {
      type: "button",
      class: "icon-btn",
      text: "✕",
      onclick: () => {
        if (options.childElementCount <= 2) return;
        row.remove();
        renumber();
      },
    });
    const label = h("label", { for: id, class: "opt-label" });
    const row = h("div", { class: "option-row" }, label, input, h("label", { class: "check small" }, correct, "Correct"), remove);
    options.appendChild(row);
    renumber();
  }

  function renumber(): void {
    const rows = [...options.children] as HTMLElement[];
    rows.forEach((row, i) => {
      setText(row.querySelector(".opt-label")!, `${String.fromCharCode(65 + i)}`);
      setAttr(row.querySelector("[data-testid=poll-option]")!, "aria-label", `Option ${i + 1}`);
      setAttr(row.querySelector("[data-testid=poll-option]")!, "placeholder", `Option ${i + 1}`);
      setAttr(row.querySelector("[data-testid=poll-correct]")!, "aria-label", `Option ${i + 1} is correct`);
      const rm = row.querySelector(".icon-btn") as HTMLButtonElement;
      setAttr(rm, "aria-label", `Remove option ${i + 1}`);
      rm.disabled = rows.length <= 2;
    });
    addBtn.disabled = rows.length >= LIMITS.optionsMax;
  }

  function reset(): void {
    question.value = "";
    options.replaceChildren();
    addOption();
    addOption();
    multiple.checked = false;
    anonymous.checked = false;
  }

  async function submit(asDraft = false): Promise<void> {
    const q = question.value.trim();
    const rows = [...options.children].map((row) => ({
      text: (row.querySelector("[data-testid=poll-option]") as HTMLInputElement).value.trim(),
      correct: (row.querySelector("[data-testid=poll-correct]") as HTMLInputElement).checked,
    }));
    const kept = rows.filter((r) => r.text);
    if (!q) {
      toast("Write the question first.", "error");
      question.focus();
      return;
    }
    if (kept.length < 2) {
      toast("A poll needs at least two options.", "error");
      return;
    }
    const correct = kept.map((r, i) => (r.correct ? i : -1)).filter((i) => i >= 0);
    if (!multiple.checked && correct.length > 1) {
      toast("Mark one correct answer, or allow several answers.", "error");
      return;
    }
    const ack = await run(
      ctx,
      asDraft ? "poll.draft" : "poll.open",
      {
        question: q,
        options: kept.map((r) => r.text),
        multiple: multiple.checked,
        anonymous: anonymous.checked,
        correct: correct.length ? correct : null,
      },
      asDraft ? draftBtn : openBtn,
    );
    if (ack) {
      reset();
      toast(asDraft ? "Poll saved for later." : "Poll opened.");
    }
  }

  reset();
  const form = h(
    "form",
    { class: "poll-composer", "aria-label": "New poll", onsubmit: (ev: Event) => (ev.preventDefault(), void submit()) },
    h("label", { for: qId, class: "field-label" }, "New poll"),
    question,
    h("fieldset", { class: "options" }, h("legend", { class: "field-label" }, "Options (tick the correct ones for a quiz)"), options),
    h(
      "div",
      { class: "composer-row" },
      addBtn,
      h("label", { class: "check" }, multiple, "Several answers"),
      h("label", { class: "check" }, anonymous, "Anonymous"),
    ),
    before,
    h("div", { class: "composer-row" }, openBtn, draftBtn),
  );
  multiple.addEventListener("change", () => {
    if (!multiple.checked) {
      const checked = [...options.querySelectorAll<HTMLInputElement>("[data-testid=poll-correct]")].filter((c) => c.checked);
      checked.slice(1).forEach((c) => (c.checked = false));
    }
  });
  return {
    el: form,
    render(v) {
      openBtn.disabled = !ctx.active();
      draftBtn.disabled = v.status === "ended";
      show(before, v.status === "created");
    },
  };
}

// -- Q&A --------------------------------------------------------------------------------------------

export function createQA(ctx: PanelCtx): Panel {
  const { el } = panel(ctx.mode === "replay" ? "Questions (live)" : "Questions", "qa-panel");
  const draftKey = `classcast:${ctx.sessionId}:draft:qa`;
  let askBtn: HTMLButtonElement | null = null;
  if (ctx.mode !== "replay") {
    const id = nextId("qa");
    const input = h("textarea", {
      id,
      "data-testid": "qa-input",
      rows: 2,
      maxlength: LIMITS.question,
      placeholder: ctx.mode === "trainer" ? "Add a question to the list…" : "Ask the trainer a question…",
    });
    mirrorDraft(input, draftKey);
    const anon = h("input", { type: "checkbox", "data-testid": "qa-anonymous" });
    askBtn = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "qa-ask", text: "Ask" });
    let asking = false;
    const ask = async () => {
      const text = input.value.trim();
      if (!text || asking) return;
      asking = true;
      const ack = await run(ctx, "qa.ask", { text, anonymous: anon.checked }, askBtn);
      asking = false;
      if (ack && input.value.trim() === text) clearDraft(input, draftKey);
    };
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        void ask();
      }
    });
    el.appendChild(
      h(
        "form",
        { class: "composer qa-composer", onsubmit: (ev: Event) => (ev.preventDefault(), void ask()) },
        h("label", { for: id, class: "sr-only" }, "Your question"),
        input,
        h(
          "div",
          { class: "composer-row" },
          ctx.mode === "learner" ? h("label", { class: "check" }, anon, "Ask anonymously") : null,
          askBtn,
        ),
      ),
    );
  }
  const list = h("ol", { class: "qa-list", "data-testid": "qa-list", "aria-label": "Questions" });
  const empty = h("p", { class: "empty" }, ctx.mode === "replay" ? "No questions at this point." : "No questions yet.");
  el.append(list, empty);
  const cache = new Map<string, HTMLElement>();
  const refs = new WeakMap<HTMLElement, any>();

  function create(q: any): HTMLElement {
    const r: any = {
      votes: h("span", { class: "votes", "data-testid": "qa-votes" }),
      text: h("p", { class: "q-text" }, q.text),
      meta: h("p", { class: "q-meta" }),
      answer: h("div", { class: "q-answer", hidden: true }, h("span", { class: "q-answer-label" }, "Answer"), h("p", { "data-testid": "qa-answer-text" })),
    };
    const li = h("li", { class: "question", "data-testid": "question", "data-id": q.id });
    const side = h("div", { class: "q-side" });
    if (ctx.mode !== "replay") {
      r.up = h(
        "button",
        {
          type: "button",
          class: "vote-btn",
          "data-testid": "qa-upvote",
          onclick: () => {
            const on = r.up.getAttribute("aria-pressed") === "true";
            void run(ctx, on ? "qa.unvote" : "qa.upvote", { question_id: q.id }, r.up);
          },
        },
        h("span", { "aria-hidden": "true" }, "▲"),
      );
      side.appendChild(r.up);
    } else {
      li.classList.add("seekable");
      li.addEventListener("click", () => ctx.seek?.(q.t));
    }
    side.appendChild(r.votes);
    const body = h("div", { class: "q-body" }, r.text, r.meta, r.answer);
    if (ctx.mode === "trainer") {
      const aid = nextId("ans");
      r.answerInput = h("input", {
        id: aid,
        type: "text",
        "data-testid": "qa-answer-input",
        maxlength: LIMITS.answer,
        placeholder: "Type an answer (optional)",
        autocomplete: "off",
      });
      r.answerBtn = h("button", {
        type: "submit",
        class: "btn btn-small btn-primary",
        "data-testid": "qa-answer",
        text: "Answer",
      });
      r.dismiss = h("button", {
        type: "button",
        class: "btn btn-small btn-ghost",
        "data-testid": "qa-dismiss",
        text: "Dismiss",
        onclick: () => void run(ctx, "qa.dismiss", { question_id: q.id }, r.dismiss),
      });
      r.reopen = h("button", {
        type: "button",
        class: "btn btn-small btn-ghost",
        "data-testid": "qa-reopen",
        text: "Reopen",
        onclick: () => void run(ctx, "qa.reopen", { question_id: q.id }, r.reopen),
      });
      const form = h(
        "form",
        {
          class: "q-mod",
          onsubmit: async (ev: Event) => {
            ev.preventDefault();
            const text = r.answerInput.value.trim();
            const ack = await run(ctx, "qa.answer", { question_id: q.id, text: text || null }, r.answerBtn);
            if (ack) r.answerInput.value = "";
          },
        },
        h("label", { for: aid, class: "sr-only" }, `Answer to: ${q.text}`),
        r.answerInput,
        r.answerBtn,
        r.dismiss,
        r.reopen,
      );
      body.appendChild(form);
    }
    li.append(side, body);
    refs.set(li, r);
    return li;
  }

  function update(li: HTMLElement, q: any): void {
    const r = refs.get(li);
    const you = ctx.you();
    li.className = `question status-${q.status}${ctx.mode === "replay" ? " seekable" : ""}`;
    setText(r.votes, String(q.votes));
    setAttr(r.votes, "aria-label", `${q.votes} ${q.votes === 1 ? "vote" : "votes"}`);
    const who = q.name ?? (q.anonymous ? "Anonymous" : "Someone");
    const mine = !!you && q.author === you.id;
    const status = q.status === "answered" ? "Answered" : q.status === "dismissed" ? "Dismissed" : "";
    const meta = [
      `${who}${q.anonymous && q.name ? " (anonymous to others)" : ""}${mine ? " · you" : ""}`,
      shortTime(q.t),
      status,
      q.status === "answered" && !q.answer && q.answered_by ? `answered live by ${q.answered_by}` : "",
    ]
      .filter(Boolean)
      .join(" · ");
    setText(r.meta, meta);
    const hasAnswer = q.answer !== null && q.answer !== undefined && q.answer !== "";
    show(r.answer, hasAnswer);
    if (hasAnswer) {
      setText(r.answer.querySelector("[data-testid=qa-answer-text]")!, q.answer);
      setText(r.answer.querySelector(".q-answer-label")!, q.answered_by ? `Answer from ${q.answered_by}` : "Answer");
    }
    if (r.up) {
      const closed = q.status !== "open";
      setAttr(r.up, "aria-pressed", String(!!q.upvoted));
      setAttr(r.up, "aria-label", mine ? "Your question (you cannot upvote it)" : q.upvoted ? "Remove your upvote" : "Upvote this question");
      r.up.disabled = mine || closed || !ctx.active();
    }
    if (ctx.mode === "trainer") {
      show(r.dismiss, q.status !== "dismissed");
      show(r.reopen, q.status !== "open");
      setText(r.answerBtn, q.status === "answered" ? "Update answer" : "Answer");
      for (const b of [r.answerBtn, r.dismiss, r.reopen]) b.disabled = !ctx.active();
    }
  }

  return {
    el,
    render(v) {
      const qs = v.questions as any[];
      reconcile(list, cache, qs, (q) => q.id, create, update);
      show(empty, qs.length === 0);
      if (askBtn) askBtn.disabled = !ctx.active();
    },
  };
}

// -- reactions --------------------------------------------------------------------------------------

export interface Reactions {
  bar: HTMLElement;
  overlay: HTMLElement;
  float(emoji: string, name?: string): void;
  setEnabled(on: boolean): void;
}

export function createReactions(ctx: PanelCtx): Reactions {
  const overlay = h("div", { class: "reaction-overlay", "aria-hidden": "true" });
  const buttons: HTMLButtonElement[] = [];
  const bar = h("div", { class: "reaction-bar", role: "group", "aria-label": "Send a reaction" });
  for (const emoji of REACTIONS) {
    const b: HTMLButtonElement = h("button", {
      type: "button",
      class: "reaction-btn",
      "data-testid": "reaction",
      "data-emoji": emoji,
      "aria-label": `React with ${emoji}`,
      text: emoji,
      onclick: () => void run(ctx, "reaction.send", { emoji }),
    });
    buttons.push(b);
    bar.appendChild(b);
  }
  // Reactions rise in lanes, so labels shown together never overlap: a lane takes its next
  // reaction once the last one has risen past its own height (they rise at one steady speed:
  // `reaction-rise` in styles.css, 260 px in 2.6 s) or, without motion, once it has gone. Its
  // animation's own clock says how far it rose (it may start late on a busy page). More at once
  // than the lanes take wait their turn (briefly; at most 30 shown or waiting).
  const LANE_PX = 104; // a reaction is 100 px wide
  const RISEN_MS = 750; // 75 px: more than a reaction's height
  const stillQuery = window.matchMedia?.("(prefers-reduced-motion: reduce)");
  const laneLast: (HTMLElement | null)[] = [];
  const waiting: [string, string | undefined][] = [];
  const born = new WeakMap<HTMLElement, number>();
  let shown = 0;
  let timer = 0;
  const risen = (el: HTMLElement | null): boolean => {
    if (!el || !el.isConnected) return true;
    if (stillQuery?.matches) return false;
    const anim = el.getAnimations?.()[0];
    const ms = anim ? Number(anim.currentTime ?? 0) : performance.now() - (born.get(el) ?? 0);
    return ms >= RISEN_MS;
  };
  function pump(): void {
    timer = 0;
    const width = overlay.clientWidth;
    const lanes = Math.max(1, Math.floor(width / LANE_PX));
    while (laneLast.length < lanes) laneLast.push(null);
    const margin = Math.max(0, (width - lanes * LANE_PX) / 2);
    while (waiting.length) {
      const free: number[] = [];
      for (let i = 0; i < lanes; i++) if (risen(laneLast[i])) free.push(i);
      if (!free.length) break;
      const lane = free[Math.floor(Math.random() * free.length)];
      const [emoji, name] = waiting.shift()!;
      shown++;
      const item = h(
        "span",
        { class: "reaction-float", "data-testid": "reaction-float", style: `left:${Math.round(margin + lane * LANE_PX + 2)}px` },
        h("span", { class: "emoji" }, emoji),
        name ? h("span", { class: "who" }, name) : null,
      );
      overlay.appendChild(item);
      laneLast[lane] = item;
      born.set(item, performance.now());
      setTimeout(() => {
        item.remove();
        shown--;
      }, 2600);
    }
    if (waiting.length) timer = window.setTimeout(pump, 60);
  }
  return {
    bar,
    overlay,
    float(emoji, name) {
      if (shown + waiting.length > 30) return;
      waiting.push([emoji, name]);
      if (!timer) pump();
    },
    setEnabled(on) {
      for (const b of buttons) if (b.disabled === on) b.disabled = !on;
    },
  };
}

// -- page plumbing shared by the live pages ----------------------------------------------------------

export type PanelKey = "status" | "chat" | "people" | "polls" | "qa" | "board" | "chapters";

/** Which panels an event touches (unknown types touch none, but still advance the seq). */
export function panelsFor(type: string): PanelKey[] {
  if (type.startsWith("chat.")) return ["chat"];
  if (type.startsWith("poll.")) return ["polls"];
  if (type.startsWith("qa.")) return ["qa"];
  if (type.startsWith("wb.")) return ["board"];
  if (type === "chapter.marked") return ["chapters"];
  if (type.startsWith("participant.") || type.startsWith("hand.")) return ["people", "chat"];
  if (type.startsWith("floor.")) return ["people"];
  if (type === "session.started" || type === "session.ended")
    return ["status", "people", "chat", "polls", "qa", "board", "chapters"];
  if (type.startsWith("recording.")) return ["status"];
  return [];
}

/** A frame-coalescing scheduler of panel renders. */
export function scheduler(renderAll: (dirty: Set<PanelKey>) => void): (keys: Iterable<PanelKey>) => void {
  const dirty = new Set<PanelKey>();
  let frame = 0;
  return (keys) => {
    for (const k of keys) dirty.add(k);
    if (frame || !dirty.size) return;
    frame = 1;
    nextFrame(() => {
      frame = 0;
      const set = new Set(dirty);
      dirty.clear();
      renderAll(set);
    });
  };
}

/** Ask before an action that cannot be undone: a modal <dialog> (focus kept inside, named by its
 * title, described by its message). Escape and Cancel answer false; focus returns where it was. */
export function confirmDialog(opts: { title: string; message: string; confirm: string; cancel?: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const titleId = nextId("dlg");
    const messageId = nextId("dlg");
    const before = document.activeElement as HTMLElement | null;
    const cancel = h("button", { type: "button", class: "btn", "data-testid": "dialog-cancel", text: opts.cancel ?? "Cancel" });
    const ok = h("button", { type: "button", class: "btn btn-danger-solid", "data-testid": "dialog-confirm", text: opts.confirm });
    const dialog = h(
      "dialog",
      { class: "dialog", "data-testid": "dialog", "aria-labelledby": titleId, "aria-describedby": messageId },
      h("h2", { id: titleId }, opts.title),
      h("p", { id: messageId }, opts.message),
      h("div", { class: "dialog-actions" }, cancel, ok),
    );
    let done = false;
    const finish = (answer: boolean) => {
      if (done) return;
      done = true;
      if (dialog.open) dialog.close();
      dialog.remove();
      before?.focus?.();
      resolve(answer);
    };
    cancel.addEventListener("click", () => finish(false));
    ok.addEventListener("click", () => finish(true));
    dialog.addEventListener("close", () => finish(false)); // Escape
    document.body.appendChild(dialog);
    dialog.showModal();
    cancel.focus(); // the safe answer is the default
  });
}

export function errorPage(root: HTMLElement, title: string, message: string, extra?: Node): void {
  root.replaceChildren(
    h("div", { class: "notice" }, h("h1", null, title), h("p", null, message), extra ?? null),
  );
}

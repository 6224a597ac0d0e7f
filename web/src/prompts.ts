// Prompts: what happens far from where a learner is looking (a new poll opening below the fold, the
// trainer answering their question, their hand lowered) comes to them as a small fixed card, with
// the text announced to screen readers. Only events pushed live make one: never the join snapshot,
// a resume's recovered events or history pages. The card's action reveals the panel: it tells the
// page's layout (tabs) with a `classcast:reveal` event, then scrolls the item into view.
import { h, setText } from "./dom";
import type { Live } from "./live";
import type { WireEvent } from "./reducer";

export type RevealPanel = "polls" | "qa" | "people";

export interface Prompts {
  el: HTMLElement;
  /** Events folded as they happened, or recovered by a resume after a short disconnection (both
   * new to this learner; never a snapshot or a history page): those that concern them prompt. */
  arrived(events: WireEvent[]): void;
}

const MAX_CARDS = 3;

interface Card {
  key: string;
  text: string;
  action: string;
  panel: RevealPanel;
  /** The element to bring into view (looked up when the action is taken). */
  target: () => HTMLElement | null;
  /** Focused after revealing, for keyboard users. */
  focus?: () => HTMLElement | null;
}

const css = (value: string) => CSS.escape(value);

/** Tell the layout to show a panel (another tab may hold it), then bring `target` into view. */
export function reveal(panel: RevealPanel, target: () => HTMLElement | null, focus?: () => HTMLElement | null): void {
  document.dispatchEvent(new CustomEvent("classcast:reveal", { detail: { panel } }));
  // After the layout reacted (a tab switch renders synchronously or on the next frame).
  requestAnimationFrame(() => {
    const el = target();
    if (!el) return;
    el.scrollIntoView({ block: "center", inline: "nearest" });
    const f = focus?.() ?? el;
    if (f === el && !el.hasAttribute("tabindex")) el.setAttribute("tabindex", "-1");
    f.focus({ preventScroll: true });
  });
}

export function createPrompts(live: Live, mode: "learner" | "trainer"): Prompts {
  const stack = h("div", { class: "prompt-stack", "data-testid": "prompts" });
  // Announced politely; the cards themselves are not a live region (their buttons would be read too).
  const announcer = h("div", { class: "sr-only", role: "status", "aria-live": "polite", "data-testid": "prompt-announcer" });
  const el = h("div", { class: "prompts" }, announcer, stack);
  document.body.appendChild(el);
  const cards = new Map<string, HTMLElement>();

  const remove = (key: string) => {
    cards.get(key)?.remove();
    cards.delete(key);
  };

  function show(c: Card): void {
    remove(c.key);
    const dismiss = h("button", {
      type: "button",
      class: "icon-btn prompt-dismiss",
      "data-testid": "prompt-dismiss",
      "aria-label": "Dismiss",
      text: "✕",
      onclick: () => remove(c.key),
    });
    const action = h("button", {
      type: "button",
      class: "btn btn-primary btn-small",
      "data-testid": "prompt-action",
      text: c.action,
      onclick: () => {
        remove(c.key);
        reveal(c.panel, c.target, c.focus);
      },
    });
    const card = h(
      "div",
      { class: "prompt-card", "data-testid": "prompt", "data-kind": c.key.split(":")[0] },
      h("p", { class: "prompt-text", "data-testid": "prompt-text" }, c.text),
      h("div", { class: "prompt-actions" }, action, dismiss),
    );
    cards.set(c.key, card);
    stack.appendChild(card);
    while (cards.size > MAX_CARDS) remove(cards.keys().next().value as string);
    // Re-set even when unchanged, so the same text is announced again.
    setText(announcer, "");
    requestAnimationFrame(() => setText(announcer, c.text));
  }

  function pollPrompt(e: WireEvent): void {
    const id = String(e.data.id);
    const card = () => document.querySelector<HTMLElement>(`[data-testid="poll"][data-id="${css(id)}"]`);
    show({
      key: `poll:${id}`,
      text: `New poll: ${e.data.question}`,
      action: "Answer",
      panel: "polls",
      target: () => card() ?? document.querySelector(".polls-panel"),
      focus: () => card()?.querySelector<HTMLInputElement>('[data-testid="poll-choice"]:not(:disabled)') ?? null,
    });
  }

  function answeredPrompt(e: WireEvent): void {
    const id = String(e.data.id);
    const me = live.you?.id;
    const q = live.state?.questions.get(id);
    if (!me || !q || q.author !== me || e.actor === me) return;
    show({
      key: `qa:${id}`,
      text: "The trainer answered your question",
      action: "Read the answer",
      panel: "qa",
      target: () =>
        document.querySelector<HTMLElement>(`[data-testid="question"][data-id="${css(id)}"]`) ??
        document.querySelector(".qa-panel"),
    });
  }

  function loweredPrompt(e: WireEvent): void {
    const me = live.you?.id;
    if (!me || e.data.id !== me || e.actor === me) return;
    show({
      key: "hand:",
      text: "Your hand was lowered",
      action: "Show",
      panel: "people",
      target: () =>
        document.querySelector<HTMLElement>(`[data-testid="participant"][data-id="${css(me)}"]`) ??
        document.querySelector(".people-panel"),
    });
  }

  return {
    el,
    arrived(events) {
      if (mode !== "learner") return;
      for (const e of events) {
        if (e.type === "poll.opened") pollPrompt(e);
        else if (e.type === "poll.closed") remove(`poll:${e.data.poll_id}`);
        else if (e.type === "poll.voted" && e.actor === live.you?.id) remove(`poll:${e.data.poll_id}`);
        else if (e.type === "qa.answered") answeredPrompt(e);
        else if (e.type === "hand.lowered") loweredPrompt(e);
        else if (e.type === "hand.raised" && e.data.id === live.you?.id) remove("hand:");
        else if (e.type === "session.ended") for (const k of [...cards.keys()]) remove(k);
      }
    },
  };
}

// The learner's classroom (/s/{id}/join?token=…): a name, then the stage (the whiteboard, and a
// hidden place for the trainer's video once there is media), chat, polls, Q&A, hand, reactions and
// the people in the room. Wide screens keep the board in view beside the tabbed panels; on a phone
// the board is a tab too, and tabs not shown count what happened in them.
import { activityOf, createLivePanels, driveLivePanels, nameForm } from "../livepage";
import { api, app, h, location_, setAttr, setText, show, store } from "../dom";
import { Live, type Update } from "../live";
import { brand, expose, initPage, setTitle, shellTitle } from "../page";
import { createPublishControls, createStage, MEDIA_EVENTS } from "../stage";
import { createTabs } from "../tabs";
import { errorPage, run } from "../ui";

/** Wider than this, the board stays in view beside the tabs (styles.css uses the same width). */
const WIDE = "(min-width: 801px)";

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
      if (err.code === "session_ended") {
        // Ended means ended: a new learner is not added to the class (docs/protocol.md, `join`);
        // the learner link opens the replay instead, when there is one.
        live.close();
        endedPage();
        return;
      }
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

/** The class is over: say so, and offer the replay (the learner link opens it) if it was recorded. */
function endedPage(): void {
  const replay = `/s/${encodeURIComponent(sessionId)}/replay?token=${encodeURIComponent(token)}`;
  const extra = h("p", { class: "muted", "data-testid": "ended-replay" }, "Looking for the replay…");
  errorPage(root, "This class has ended", "The class is over, so it cannot be joined any more.", extra);
  setTitle(shellTitle() || "Class", "Ended");
  void api(`/api/recordings/${encodeURIComponent(sessionId)}`, token)
    .then(() => {
      extra.className = "";
      extra.replaceChildren(h("a", { class: "btn btn-primary", href: replay, "data-testid": "replay-link" }, "Watch the replay"));
    })
    .catch(() => setText(extra, "There is no replay of this class."));
}

function buildNameForm(live: Live, problem?: string) {
  return nameForm(
    root,
    live,
    {
      id: "name",
      inputTestId: "name-input",
      buttonTestId: "join-button",
      autocomplete: "nickname",
      placeholder: "e.g. Ada Lovelace",
      heading: (title) => (title ? `Join “${title}”` : "Join the class"),
      lead: "Enter your name to join. The trainer and other learners will see it.",
      button: "Join the class",
      busy: "Joining…",
      empty: "Please enter the name others will see.",
    },
    store.get(NAME_KEY),
    (name) => store.set(NAME_KEY, name),
    problem,
  );
}

function buildClassroom(live: Live) {
  const panels = createLivePanels(live, "learner", sessionId);
  const { ctx, active, board, status, chat, people, polls, qa, reactions } = panels;

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

  // The media stage: hidden until someone publishes; until then the board has the room. A learner
  // given the floor gets a microphone (and maybe camera) control beside the hand.
  const media = h("div", { class: "media-stage", "data-testid": "media-stage", role: "region", "aria-label": "Trainer's video", hidden: true });
  const mediaStage = createStage(live, media);
  const speak = createPublishControls(live, "learner");
  const stage = h("section", { class: "stage", "aria-label": "Stage" }, media, board.el, reactions.overlay);
  const tabs = createTabs({
    label: "Class panels",
    tabs: [
      { key: "board", label: "Board", content: [stage, h("div", { class: "stage-actions" }, hand, reactions.bar, speak.el, speak.preview)], dot: true },
      { key: "chat", label: "Chat", content: chat.el },
      { key: "qa", label: "Q&A", content: qa.el },
      { key: "polls", label: "Polls", content: polls.el },
      { key: "people", label: "People", content: people.el },
    ],
    initial: (wide) => (wide ? "chat" : "board"),
    pinned: { key: "board", media: WIDE },
  });
  const { board: boardPanel, ...sidePanels } = tabs.panels;
  boardPanel.classList.add("col-main");

  root.replaceChildren(
    h(
      "div",
      { class: "page page-live page-learner" },
      h("header", { class: "topbar" }, brand(), h("div", { class: "topbar-title" }, title, youLabel), status.el),
      h(
        "div",
        { class: "layout layout-live" },
        tabs.tablist,
        boardPanel,
        h("aside", { class: "col-side", "aria-label": "Chat, questions, polls and people" }, ...Object.values(sidePanels)),
      ),
    ),
  );

  const driven = driveLivePanels(live, sessionId, panels, (v, dirty) => {
    if (dirty.has("status")) {
      setText(title, v.title);
      setTitle(v.title, v.status === "live" ? "Live" : "");
      setText(youLabel, `You are ${live.you!.name}`);
    }
    if (dirty.has("people") || dirty.has("status")) {
      const online = v.participants.filter((p: any) => p.online).length;
      tabs.setCount("people", online, `${online} online`);
      const me = v.participants.find((p: any) => p.id === live.you!.id);
      const raised = !!me?.hand;
      setAttr(hand, "aria-pressed", String(raised));
      setText(hand, raised ? "✋ Lower hand" : "✋ Raise hand");
      hand.disabled = !active();
      show(reactions.bar, v.status !== "ended");
      show(hand, v.status !== "ended");
    }
  });
  return {
    update(u: Update) {
      driven.update(u);
      if (u.snapshot || u.events.some((e) => MEDIA_EVENTS.test(e.type))) {
        mediaStage.refresh();
        speak.refresh();
      }
      // What others did in a tab not shown: a badge on its tab until it is opened.
      for (const [key, n] of activityOf(u, live.you?.id)) if (key !== "people") tabs.activity(key, n);
    },
    statusChanged() {
      driven.statusChanged();
      mediaStage.refresh();
      speak.refresh();
    },
  };
}

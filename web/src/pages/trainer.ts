// The trainer's console (/s/{id}/trainer?token=…): start and end the session, recording, chapters,
// the whiteboard with pages and the learners' drawing switch, people (hands, mute), chat
// moderation, polls and Q&A moderation.
import { activityOf, createLivePanels, driveLivePanels, nameForm } from "../livepage";
import { api, app, h, linkField, location_, setAttr, setText, shortTime, show, toast, reconcile } from "../dom";
import { Live, type Update } from "../live";
import { brand, expose, initPage, setTitle } from "../page";
import { createPublishControls, createStage, MEDIA_EVENTS } from "../stage";
import { createTabs } from "../tabs";
import { confirmDialog, errorPage, run } from "../ui";

initPage();
const root = app();
const { sessionId, token } = location_();
// The trainer's name is kept across classes on this browser (localStorage, unlike the per-tab store).
const TRAINER_NAME_KEY = "classcast:trainer-name";
const savedName = {
  get(): string | null {
    try {
      return localStorage.getItem(TRAINER_NAME_KEY);
    } catch {
      return null;
    }
  },
  set(name: string): void {
    try {
      localStorage.setItem(TRAINER_NAME_KEY, name);
    } catch {
      /* storage unavailable: the name is asked for again next time */
    }
  },
};

if (!sessionId || !token) {
  expose({ view: () => null, you: null, status: () => "connecting" });
  errorPage(root, "This link is incomplete", "Open the full trainer link you were given.");
} else {
  main();
}

function main(): void {
  let built: ReturnType<typeof buildConsole> | null = null;
  const live = new Live({
    sessionId,
    linkToken: token,
    role: "trainer",
    onUpdate: (u) => {
      if (!built) built = buildConsole(live);
      built.update(u);
    },
    onStatus: () => built?.statusChanged(),
    onFatal: (err) => {
      live.close();
      const messages: Record<string, string> = {
        expired_token: "This trainer link has expired. Create a new one from the home page or the API.",
        invalid_token: "This trainer link does not work. Check that you copied all of it.",
        wrong_session: "This link belongs to another session.",
        not_found: "This session does not exist any more.",
      };
      errorPage(root, "The console cannot open", messages[err.code] ?? err.message);
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
    root.replaceChildren(h("div", { class: "notice", role: "status" }, h("p", null, "Opening the trainer console…")));
    live.start();
  } else askName(live);
}

/** Trainers have names too, so co-trainers (and the chat, Q&A answers and the replay) can tell
 * them apart. The last name used on this browser is offered. */
function askName(live: Live): void {
  nameForm(
    root,
    live,
    {
      id: "trainer-name",
      inputTestId: "trainer-name-input",
      buttonTestId: "trainer-name-submit",
      autocomplete: "name",
      placeholder: "e.g. Tess Trainer",
      heading: (title) => (title ? `Teach “${title}”` : "Open the trainer console"),
      lead: "Your name is shown to learners and other trainers next to what you write.",
      button: "Open the console",
      busy: "Opening…",
      empty: "Please enter the name learners will see.",
    },
    savedName.get(),
    (name) => savedName.set(name),
  );
}

function buildConsole(live: Live) {
  const panels = createLivePanels(live, "trainer", sessionId);
  const { ctx, active, board, status, chat, people, polls, qa, reactions } = panels;

  // -- session controls ------------------------------------------------------------------------
  const title = h("h1", { class: "session-title" });
  const startBtn: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn btn-primary",
    "data-testid": "session-start",
    text: "Start session",
    onclick: () => void run(ctx, "session.start", {}, startBtn).then((ack) => ack && toast("The session is live.")),
  });
  const endBtn: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn btn-danger",
    "data-testid": "session-end",
    text: "End session",
    onclick: async () => {
      const before = live.state?.status === "created";
      const sure = await confirmDialog({
        title: before ? "Cancel this session?" : "End the session for everyone?",
        message: before
          ? "The session has not started; ending it now cancels it. Nobody can join it afterwards."
          : "Every learner leaves the class and nothing more can be added. This cannot be undone.",
        confirm: before ? "Cancel the session" : "End session",
        cancel: "Keep the session",
      });
      if (sure) void run(ctx, "session.end", {}, endBtn);
    },
  });
  const recBtn: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn",
    "data-testid": "recording-toggle",
    onclick: () => {
      const paused = live.state?.recording === "paused";
      void run(ctx, paused ? "recording.resume" : "recording.pause", {}, recBtn);
    },
  });
  const markBtn: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn",
    "data-testid": "mark-chapter",
    text: "Mark chapter",
    title: "Mark this moment as a chapter of the replay",
    onclick: () => {
      const n = (live.state?.chapters.length ?? 0) + 1;
      const answer = window.prompt("Chapter title", `Chapter ${n}`);
      if (answer === null) return;
      const text = answer.trim();
      if (!text) {
        toast("A chapter needs a title.", "error");
        return;
      }
      void run(ctx, "session.mark", { title: text.slice(0, 200) }, markBtn).then(
        (ack) => ack && toast(`Chapter “${text}” marked.`),
      );
    },
  });
  const recPill = h("span", { class: "pill" });
  const handsPill = h("span", { class: "pill pill-hand", hidden: true });
  const lowerAllBtn: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn btn-small",
    "data-testid": "lower-all-hands",
    text: "Lower all hands",
    hidden: true,
    onclick: () => void run(ctx, "hand.lower_all", {}, lowerAllBtn),
  });

  // -- invite and chapters -----------------------------------------------------------------------
  const invite = h(
    "section",
    { class: "panel invite-panel", "aria-labelledby": "invite-h" },
    h("div", { class: "panel-head" }, h("h2", { id: "invite-h" }, "Invite")),
    h("p", { class: "muted" }, "Loading the links…"),
  );
  void api(`/api/sessions/${encodeURIComponent(sessionId)}`, token)
    .then((info) => {
      invite.replaceChildren(
        invite.firstElementChild!,
        h("p", { class: "muted" }, "Send the learner link to your participants. Each learner enters a name."),
        linkField("Learner link", "invite-url", info.join_url),
        ...(info.recording ? [linkField("Replay link", "invite-replay-url", info.replay_url)] : []),
        ...(info.recording ? [h("a", { href: `/s/${encodeURIComponent(sessionId)}/report?token=${encodeURIComponent(token)}`, target: "_blank", rel: "noopener", class: "btn btn-small", "data-testid": "report-link" }, "Engagement report")] : []),
      );
    })
    .catch((err) => {
      invite.replaceChildren(invite.firstElementChild!, h("p", { class: "muted" }, `The links could not be loaded: ${err.message}`));
    });

  const chapterList = h("ol", { class: "chapter-list", "aria-label": "Chapters" });
  const chapterEmpty = h("p", { class: "empty" }, "No chapters yet. Use “Mark chapter” to add one.");
  const chapters = h(
    "section",
    { class: "panel chapters-panel", "aria-labelledby": "chapters-h" },
    h("div", { class: "panel-head" }, h("h2", { id: "chapters-h" }, "Chapters")),
    chapterList,
    chapterEmpty,
  );
  const chapterCache = new Map<string, HTMLElement>();

  // The board stays in view; everything else is a tab of the side panel beside it.
  // Media: what co-trainers and learners with the floor publish above the board (hidden when
  // nobody does), the trainer's own camera as a small preview beside the controls, under the
  // board with the reactions.
  const mediaStage = createStage(live);
  const publish = createPublishControls(live, "trainer");
  const boardArea = h(
    "div",
    { class: "col-main", "data-testid": "board-area" },
    h("div", { class: "stage stage-trainer" }, mediaStage.el, board.el, reactions.overlay),
    h("div", { class: "stage-actions" }, publish.el, reactions.bar, publish.preview),
  );
  const tabs = createTabs({
    label: "Class panels",
    tabs: [
      { key: "chat", label: "Chat", content: chat.el },
      { key: "qa", label: "Q&A", content: qa.el },
      { key: "people", label: "People", content: people.el },
      { key: "polls", label: "Polls", content: polls.el },
      { key: "session", label: "Session", content: [invite, chapters] },
    ],
    initial: "chat",
    outside: { board: boardArea },
  });

  root.replaceChildren(
    h(
      "div",
      { class: "page page-live page-trainer" },
      h(
        "header",
        { class: "topbar" },
        brand(),
        h("div", { class: "topbar-title" }, title, h("span", { class: "pills" }, recPill, handsPill, lowerAllBtn)),
        status.el,
        h("div", { class: "controls", role: "group", "aria-label": "Session controls" }, startBtn, endBtn, recBtn, markBtn),
      ),
      h(
        "div",
        { class: "layout layout-live" },
        boardArea,
        tabs.tablist,
        h("aside", { class: "col-side", "aria-label": "Room" }, ...Object.values(tabs.panels)),
      ),
    ),
  );

  const driven = driveLivePanels(live, sessionId, panels, (v, dirty) => {
    if (dirty.has("status")) {
      setText(title, v.title);
      setTitle(v.title, v.status === "live" ? "Live" : v.status === "ended" ? "Ended" : "Trainer");
      const connected = live.status === "live";
      show(startBtn, v.status === "created");
      show(endBtn, v.status !== "ended");
      startBtn.disabled = !connected;
      endBtn.disabled = !connected;
      setAttr(endBtn, "title", v.status === "created" ? "Ending before the start cancels the session" : "End the session for everyone");
      const rec = v.recording as string;
      setText(recBtn, rec === "paused" ? "Resume recording" : rec === "off" ? "Not recorded" : "Pause recording");
      setAttr(recBtn, "aria-pressed", rec === "paused" ? "true" : "false");
      recBtn.disabled = !active() || rec === "off";
      show(recBtn, v.status !== "ended");
      markBtn.disabled = !active() || rec === "off";
      show(markBtn, v.status !== "ended");
      setText(recPill, rec === "on" ? (v.status === "live" ? "● Recording" : "Will be recorded") : rec === "paused" ? "❚❚ Recording paused" : "Not recorded");
      recPill.className = `pill pill-rec-${rec}${v.status === "live" ? " is-live" : ""}`;
    }
    if (dirty.has("people") || dirty.has("status")) {
      const online = v.participants.filter((p: any) => p.online).length;
      tabs.setCount("people", online, `${online} online`);
      const hands = v.participants.filter((p: any) => p.hand).length;
      show(handsPill, hands > 0);
      setText(handsPill, `✋ ${hands} ${hands === 1 ? "hand" : "hands"} raised`);
      show(lowerAllBtn, hands > 0);
      lowerAllBtn.disabled = !active();
      show(reactions.bar, v.status !== "ended");
    }
    if (dirty.has("qa")) {
      const open = v.questions.filter((q: any) => q.status === "open").length;
      tabs.setCount("qa", open || null, `${open} open`);
    }
    if (dirty.has("polls")) {
      const open = v.polls.filter((p: any) => p.status === "open").length;
      tabs.setCount("polls", open || null, `${open} open`);
    }
    if (dirty.has("chapters")) {
      reconcile(
        chapterList,
        chapterCache,
        v.chapters as any[],
        (c) => c.id,
        (c) => h("li", null, h("span", { class: "time" }, shortTime(c.t)), " ", h("span", null, c.title)),
        () => {},
      );
      show(chapterEmpty, v.chapters.length === 0);
    }
  });
  return {
    update(u: Update) {
      driven.update(u);
      if (u.snapshot || u.events.some((e) => MEDIA_EVENTS.test(e.type))) {
        mediaStage.refresh();
        publish.refresh();
      }
      // Chat counts what came while the tab was not shown; the other tabs count what is open.
      const news = activityOf(u, live.you?.id);
      tabs.activity("chat", news.get("chat") ?? 0);
    },
    statusChanged() {
      driven.statusChanged();
      mediaStage.refresh();
      publish.refresh();
    },
  };
}

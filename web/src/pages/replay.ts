// The replay player (/s/{id}/replay?token=…): loads the recording's manifest, then the bounded
// state at the playhead (`GET …/state?t=`, what a live join gets) and the events of the next
// WINDOW ms, which it folds with the shared reducer as it plays on its own clock, fetching the next
// window ahead of the playhead. A seek back (or far ahead) loads the state there again, so opening
// or seeking in a huge recording costs the same as in a short one. Older chat, polls and questions
// come page by page (`state/chat|polls|questions`); a page the board switches to that the state
// did not carry makes the player load the state at that moment. Chat, whiteboard, polls and Q&A
// show exactly as they were at the current time. Viewers can answer the polls as a quiz and ask
// questions anchored to a moment. Only the search reads every event, on its first use.
import { type AssigneeProgress, STATUS_TEXT } from "../assignments";
import { createBoard } from "../board";
import {
  ApiError,
  api,
  app,
  clock,
  copyText,
  duration as fmtDuration,
  h,
  linkTime,
  location_,
  nextFrame,
  parseTime,
  persist,
  reconcile,
  setAttr,
  setText,
  shortTime,
  show,
  store,
  toast,
  toggleClass,
} from "../dom";
import { brand, expose, initPage, setTitle } from "../page";
import {
  SNAPSHOT_CHAT,
  SNAPSHOT_POLLS,
  SNAPSHOT_QUESTIONS,
  apply,
  empty,
  fromView,
  mergeReply,
  view,
  type State,
  type WireEvent,
} from "../reducer";
import {
  createChat,
  createParticipants,
  createPolls,
  createQA,
  createReactions,
  errorPage,
  panelsFor,
  scheduler,
  type PanelCtx,
  type PanelKey,
} from "../ui";

initPage();
const root = app();
const { sessionId, token, params } = location_();
const base = `/api/recordings/${encodeURIComponent(sessionId)}`;
const WINDOW = 30_000; // the events fetched ahead of the playhead, per request
const SPEEDS = [0.5, 1, 1.5, 2];
const ALL: PanelKey[] = ["status", "chat", "people", "polls", "qa", "board", "chapters"];

let loaded = false;
let player: Player | null = null;
let pendingSeek: number | null = null;

expose({
  view: () => (player ? view(player.state, "learner", null) : null),
  you: null,
  status: () => (loaded ? "live" : "connecting"),
  seek: (ms: number) => {
    if (player) player.seek(ms);
    else pendingSeek = ms;
  },
  time: () => (player ? player.now : 0),
});

interface Manifest {
  id: string;
  title: string;
  status: string;
  started_at: number | null;
  created_at: number;
  duration_ms: number;
  questions?: { t: number; id: string; text: string }[];
  /** Trainer marks (`mark`, with `id`) and whiteboard page changes (`page`, with the `page` id). */
  chapters: { t: number; kind: string; title: string; id?: string; page?: string }[];
  /** Every poll opening: shown once, as a poll marker on the timeline. */
  polls?: { t: number; id: string; question: string }[];
  pauses: [number, number | null][];
  counts: Record<string, number>;
  trainers: string[];
  anonymized: boolean;
  /** Who is asking; a viewer's own link (an assignee's personal link) names the viewer. */
  you: { role: string; manages: boolean; viewer_id?: string; name?: string; assignment?: string | null };
  /** Recorded media files on the session clock (docs/protocol.md, the manifest's `media`). */
  media?: MediaEntry[];
}

interface MediaEntry {
  file: string;
  publisher: string | null;
  start_ms: number;
  duration_ms: number | null;
  end_ms: number | null;
  status: string;
  content_type: string;
  tracks: { id: string; kind: string; codec: string; start_ms: number; offset_ms: number }[];
}

interface ViewerQuestion {
  id: string;
  name: string;
  t: number;
  text: string;
  created: number;
  answer: string | null;
  answered_by: string | null;
}

interface QuizResult {
  poll_id: string;
  choices: number[];
  correct: number[] | null;
  is_correct: boolean | null;
  live: { counts: number[]; voters: number } | null;
}

interface Player {
  state: State;
  now: number;
  seek(ms: number): void;
}

if (!sessionId || !token) {
  errorPage(root, "This replay link is incomplete", "Open the full replay link you were given.");
} else {
  root.replaceChildren(h("div", { class: "notice", role: "status" }, h("p", null, "Loading the recording…")));
  void load();
}

async function load(): Promise<void> {
  let manifest: Manifest;
  try {
    manifest = await api<Manifest>(base, token);
  } catch (err) {
    const e = err as ApiError;
    const messages: Record<string, string> = {
      not_found: "There is no recording of this session.",
      expired_token: "This replay link has expired.",
      invalid_token: "This replay link does not work.",
      wrong_session: "This link belongs to another session.",
      forbidden: "This link cannot open the replay.",
      recording_damaged: "This recording is damaged and cannot be played.",
    };
    errorPage(root, "The replay cannot be opened", messages[e.code] ?? e.message);
    return;
  }
  player = buildPlayer(manifest);
}

function buildPlayer(manifest: Manifest): Player {
  // -- folding -------------------------------------------------------------------------------------
  // `state` is the server's bounded state at some time, plus the events of `buf` folded up to the
  // playhead; `buf` holds every event with a t up to `bufTo` after that state (`cursor`: how many
  // of them are folded). `gen` counts loads: a reply for an older one is dropped.
  let state = empty(sessionId, manifest.title, "on");
  let buf: WireEvent[] = [];
  let cursor = 0;
  let bufTo = -1;
  let gen = 0;
  let loading = 0; // the gen of the load in flight (0: none)
  let fetchingMore = false;
  let foldedAt = 0; // the state holds every event up to this time
  let retryAfter = 0; // after a failed request, the player asks again from this performance.now()
  let duration = manifest.duration_ms;
  let now = 0;
  let playing = false;
  let speed = 1;

  /** Up to where the events are all known: a live recording may still get events at its last ms. */
  const knownEnd = () => (manifest.status === "live" ? duration - 1 : duration);

  async function loadAt(t: number): Promise<void> {
    const g = ++gen;
    loading = g;
    const to = Math.min(t + WINDOW, knownEnd());
    try {
      const [v, w] = await Promise.all([
        api<any>(`${base}/state?t=${t}`, token),
        to > t ? api<{ events: WireEvent[] }>(`${base}/events?from=${t + 1}&to=${to}`, token) : { events: [] },
      ]);
      if (g !== gen) return;
      state = fromView(v, null);
      foldedAt = t;
      buf = w.events;
      cursor = 0;
      bufTo = Math.max(t, to);
      loading = 0;
      loaded = true;
      retryAfter = 0;
      foldTo(now, false);
      schedule(ALL);
      maybeFetchMore();
      void loadOlder(g, "polls", v.more?.polls ?? 0);
      void loadOlder(g, "questions", v.more?.questions ?? 0);
    } catch (err) {
      if (g !== gen) return;
      loading = 0;
      retryAfter = performance.now() + 5000;
      toast(`This moment cannot be shown: ${(err as Error).message}`, "error");
    }
  }

  /** Polls and questions older than the bounded state carries, page by page, so the panels list
   * every one shown at the playhead (they are few; the chat pages only on demand). A page is asked
   * for as of the folded state's time and asked again if events were folded while it came (they
   * may have changed the items it holds, and folds ignore items the state does not hold). */
  async function loadOlder(g: number, kind: "polls" | "questions", more: number): Promise<void> {
    if (more <= 0) return;
    // The state holds the most recent ones (polls: and older open ones): page on from the oldest
    // of the recent run.
    const held = [...((kind === "polls" ? state.polls : state.questions) as Map<string, { seq: number }>).values()]
      .map((x) => x.seq)
      .sort((a, b) => b - a);
    let before = held.length ? held[Math.min(held.length, kind === "polls" ? SNAPSHOT_POLLS : SNAPSHOT_QUESTIONS) - 1] : state.seq + 1;
    for (let tries = 0; ; ) {
      const seq = state.seq;
      const r = await api<any>(`${base}/state/${kind}?t=${state.t}&before=${before}&limit=100`, token).catch(() => null);
      if (!r || g !== gen) return;
      if (state.seq !== seq && ++tries < 5) continue;
      mergeReply(state, kind === "polls" ? "poll.history" : "qa.history", r, null);
      schedule([kind === "polls" ? "polls" : "qa"]);
      const page: { seq: number }[] = kind === "polls" ? r.polls : r.questions;
      if (!r.more || !page.length) return;
      before = Math.min(...page.map((x) => x.seq));
    }
  }

  /** Fetch the next window of events when the playhead nears the end of what is here. */
  function maybeFetchMore(): void {
    if (fetchingMore || loading || bufTo >= knownEnd() || now < bufTo - WINDOW / 2 || performance.now() < retryAfter) return;
    fetchingMore = true;
    const g = gen;
    const from = bufTo + 1;
    const to = Math.min(bufTo + WINDOW, knownEnd());
    api<{ events: WireEvent[] }>(`${base}/events?from=${from}&to=${to}`, token)
      .then((r) => {
        if (g !== gen) return;
        const last = buf.length ? buf[buf.length - 1].seq : state.seq;
        buf.push(...r.events.filter((e) => e.seq > last));
        bufTo = to;
        if (playing) schedule(foldTo(now, true));
      })
      .catch(() => {
        retryAfter = performance.now() + 5000; // then the next tick tries again
      })
      .finally(() => {
        fetchingMore = false;
        if (g === gen) maybeFetchMore();
      });
  }

  function foldTo(t: number, floatReactions: boolean): Set<PanelKey> {
    const dirty = new Set<PanelKey>();
    foldedAt = Math.max(foldedAt, t);
    while (cursor < buf.length && buf[cursor].t <= t) {
      const e = buf[cursor++];
      if (!apply(state, e)) continue;
      for (const k of panelsFor(e.type)) dirty.add(k);
      if (floatReactions && e.type === "reaction") reactions.float(e.data.emoji, state.participants.get(e.data.id)?.name);
    }
    if (cursor > 5000) {
      buf = buf.slice(cursor); // what is folded is not needed again: a seek back loads the state
      cursor = 0;
    }
    // The board switched to a page the loaded state did not carry: load the state here, which does.
    if (state.unloaded.has(state.current) && !loading && performance.now() >= retryAfter) void loadAt(Math.min(Math.floor(t), duration));
    return dirty;
  }

  // -- panels ---------------------------------------------------------------------------------------
  // The chat shows the last messages at the playhead, as a live join does; "Load earlier
  // messages" (or scrolling to the top) shows more, and a seek starts over.
  let chatShown = SNAPSHOT_CHAT;
  const ctx: PanelCtx = {
    mode: "replay",
    sessionId,
    you: () => null,
    active: () => false,
    seek: (t) => seek(t),
    earlier: {
      has: () => state.chat.size > chatShown || state.olderChat,
      load: async () => {
        if (state.chat.size <= chatShown && state.olderChat) {
          // Older messages than the loaded state holds: the next page, as they were at this time.
          const g = gen;
          const oldest = state.chat.values().next().value?.seq ?? state.seq + 1;
          const r = await api<any>(`${base}/state/chat?t=${state.t}&before=${oldest}&limit=${SNAPSHOT_CHAT}`, token);
          if (g !== gen) return false;
          mergeReply(state, "chat.history", r, null);
        }
        chatShown += SNAPSHOT_CHAT;
        schedule(new Set<PanelKey>(["chat"]));
        return state.chat.size > chatShown || state.olderChat;
      },
    },
  };
  // The viewer's identity on this recording (quiz answers, questions, progress reports): kept in
  // this browser's localStorage, so one person is one viewer however often they come back. An
  // assignee's personal link carries their own identity instead, kept nowhere.
  const viewerKey = `classcast:${sessionId}:viewer`;
  let viewer: { token: string; name: string; viewer_id: string } | null = null;
  try {
    viewer = JSON.parse(persist.get(viewerKey) ?? store.get(viewerKey) ?? "null");
  } catch {
    viewer = null;
  }
  const assignee = !!(manifest.you.viewer_id && manifest.you.assignment);
  if (manifest.you.viewer_id) viewer = { token, name: manifest.you.name ?? "Viewer", viewer_id: manifest.you.viewer_id };
  const quizResults = new Map<string, QuizResult>();
  const quizBoxes = new Map<string, () => void>();

  const chat = createChat(ctx);
  const people = createParticipants(ctx);
  const qa = createQA(ctx);
  const reactions = createReactions(ctx);
  const polls = createPolls(ctx, {
    extra: (p) => quizBox(p),
    updateExtra: (p) => quizBoxes.get(p.id)?.(),
  });
  const board = createBoard({
    getState: () => state,
    mode: "replay",
    you: () => null,
    active: () => false,
    toast: (m) => toast(m),
  });

  // -- viewer identity (quiz answers and questions) -------------------------------------------------
  const nameInput = h("input", {
    id: "viewer-name",
    type: "text",
    "data-testid": "viewer-name",
    maxlength: 60,
    autocomplete: "nickname",
    placeholder: "Viewer",
  });
  const whoami = h("p", { class: "muted" });
  const nameRow = h(
    "div",
    { class: "viewer-name" },
    h("label", { for: "viewer-name", class: "field-label" }, "Your name (for quiz answers and questions, optional)"),
    nameInput,
  );
  const renderViewer = () => {
    show(nameRow, !viewer);
    show(whoami, !!viewer);
    if (viewer) setText(whoami, `You are watching as ${viewer.name}.`);
  };

  let registering: Promise<string> | null = null;
  async function viewerToken(): Promise<string> {
    if (viewer) return viewer.token;
    if (!registering) {
      const name = nameInput.value.trim();
      registering = api<{ viewer_id: string; name: string; token: string }>(`${base}/viewers`, token, {
        method: "POST",
        body: name ? { name } : {},
      })
        .then((r) => {
          viewer = { token: r.token, name: r.name, viewer_id: r.viewer_id };
          persist.set(viewerKey, JSON.stringify(viewer));
          renderViewer();
          return r.token;
        })
        .finally(() => (registering = null));
    }
    return registering;
  }

  // -- quiz -----------------------------------------------------------------------------------------
  // A poll's class results (and its right answer) stay hidden until the viewer answers it as a quiz,
  // so the replay never gives the answer away right above the question. After answering, the quiz
  // box shows the viewer's answer, whether it was right and how the class answered; "Show results"
  // reveals the results as they were at this moment without answering.
  const revealed = new Set<string>(); // polls whose results the viewer chose to see unanswered
  const resultsAt = new Map<string, boolean>(); // whether a poll's results were shared at the playhead
  function quizBox(p: any): HTMLElement {
    const inputs: HTMLInputElement[] = [];
    const fieldset = h("fieldset", { class: "choices" }, h("legend", { class: "quiz-title" }, p.quiz ? "Quiz: what is your answer?" : "What would you answer?"));
    (p.options as string[]).forEach((opt, i) => {
      const input = h("input", {
        type: p.multiple ? "checkbox" : "radio",
        name: `quiz-${p.id}`,
        value: String(i),
        "data-testid": "poll-choice",
      });
      inputs.push(input);
      fieldset.appendChild(h("label", { class: "choice" }, input, h("span", null, opt)));
    });
    const result = h("div", { class: "quiz-result", "aria-live": "polite" });
    const button: HTMLButtonElement = h("button", {
      type: "button",
      class: "btn btn-primary",
      "data-testid": "quiz-answer",
      text: p.quiz ? "Check my answer" : "Answer",
      onclick: async () => {
        const choices = inputs.filter((x) => x.checked).map((x) => +x.value);
        if (!choices.length) {
          toast("Choose an answer first.", "error");
          return;
        }
        button.disabled = true;
        try {
          const vt = await viewerToken();
          const r = await api<QuizResult>(`${base}/quiz/${encodeURIComponent(p.id)}`, vt, { method: "POST", body: { choices } });
          quizResults.set(p.id, r);
          void refreshAssignment();
          revealed.delete(p.id); // the quiz box now shows the results
          paint();
          schedule(["polls"]);
        } catch (err) {
          toast((err as Error).message, "error");
        } finally {
          button.disabled = false;
        }
      },
    });
    const reveal: HTMLButtonElement = h("button", {
      type: "button",
      class: "btn btn-ghost",
      "data-testid": "quiz-reveal",
      "aria-pressed": "false",
      text: "Show results",
      onclick: () => {
        if (revealed.has(p.id)) revealed.delete(p.id);
        else revealed.add(p.id);
        paint();
        schedule(["polls"]);
      },
    });
    const hiddenNote = h("p", { class: "muted quiz-hidden-note", "data-testid": "quiz-hidden-note" });
    const box = h("div", { class: "quiz", "data-testid": "quiz" }, fieldset, h("div", { class: "poll-actions" }, button, reveal), hiddenNote, result);
    let painted = "";
    function paint(): void {
      const r = quizResults.get(p.id);
      const shared = !!resultsAt.get(p.id);
      const open = revealed.has(p.id);
      const key = JSON.stringify([r ?? null, shared, open]);
      if (key === painted) return;
      painted = key;
      // Before an answer: offer the results (if the class saw them by now) without giving them away.
      show(reveal, !r && shared);
      setText(reveal, open ? "Hide results" : "Show results");
      setAttr(reveal, "aria-pressed", open ? "true" : "false");
      show(hiddenNote, !r && shared && !open);
      setText(hiddenNote, "The class results are hidden until you answer.");
      if (!r) {
        result.replaceChildren();
        return;
      }
      inputs.forEach((x, i) => (x.checked = r.choices.includes(i)));
      const parts: HTMLElement[] = [];
      parts.push(h("p", { "data-testid": "quiz-your-answer" }, `Your answer: ${r.choices.map((i) => p.options[i]).join(", ")}`));
      if (r.is_correct === true) parts.push(h("p", { class: "quiz-verdict good" }, "✓ Correct!"));
      else if (r.is_correct === false) parts.push(h("p", { class: "quiz-verdict bad" }, "✗ Not quite."));
      else parts.push(h("p", { class: "quiz-verdict" }, "Answer saved (this poll had no right answer)."));
      if (r.correct) parts.push(h("p", null, `Correct answer: ${r.correct.map((i) => p.options[i]).join(", ")}`));
      if (r.live) {
        const total = r.live.counts.reduce((a, b) => a + b, 0);
        parts.push(h("p", { class: "muted" }, `How the class answered (${r.live.voters} voted):`));
        (p.options as string[]).forEach((opt, i) => {
          const n = r.live!.counts[i] ?? 0;
          const pct = total ? Math.round((n / total) * 100) : 0;
          const right = !!r.correct?.includes(i);
          const yours = r.choices.includes(i);
          parts.push(
            h(
              "div",
              { class: `bar-row${right ? " correct" : ""}${yours ? " chosen" : ""}`, "data-testid": "quiz-live-result" },
              h("span", { class: "bar-label" }, h("span", { class: "opt" }, opt), h("span", { class: "mark" }, `${right ? " ✓ correct" : ""}${yours ? " · your answer" : ""}`)),
              h("span", { class: "bar", "aria-hidden": "true" }, h("span", { class: "fill", style: `width:${pct}%` })),
              h("span", { class: "bar-count" }, `${n} (${pct}%)`),
            ),
          );
        });
      } else {
        parts.push(h("p", { class: "muted" }, "The class results of this poll were not shared."));
      }
      result.replaceChildren(...parts);
    }
    quizBoxes.set(p.id, paint);
    return box;
  }

  /** The polls as the polls panel shows them: results and the right answer only once revealed. */
  function pollsShown(v: any): any {
    resultsAt.clear();
    const polls = (v.polls as any[]).map((p) => {
      resultsAt.set(p.id, !!p.counts);
      return revealed.has(p.id) ? p : { ...p, counts: null, correct: null };
    });
    return { ...v, polls };
  }

  if (viewer) {
    void api<{ answers: QuizResult[] }>(`${base}/quiz`, viewer.token)
      .then((r) => {
        for (const a of r.answers) quizResults.set(a.poll_id, a);
        schedule(["polls"]);
      })
      .catch(() => {
        // The viewer token expired or belongs to an older server secret: register again when needed.
        if (manifest.you.viewer_id) return; // the link's own identity: nothing to forget
        viewer = null;
        persist.remove(viewerKey);
        store.remove(viewerKey);
        renderViewer();
      });
  }

  // -- viewer questions anchored in time ---------------------------------------------------------
  let vQuestions: ViewerQuestion[] = [];
  const vqList = h("ol", { class: "vq-list", "aria-label": "Viewers' questions up to this point" });
  const vqEmpty = h("p", { class: "empty" }, "No viewer questions up to this point.");
  const vqCache = new Map<string, HTMLElement>();
  const vqInput = h("textarea", {
    id: "vq-input",
    "data-testid": "replay-question-input",
    rows: 2,
    maxlength: 1000,
    placeholder: "Ask about this moment…",
  });
  const vqDraft = `classcast:${sessionId}:draft:replay-question`;
  vqInput.value = store.get(vqDraft) ?? "";
  vqInput.addEventListener("input", () => (vqInput.value ? store.set(vqDraft, vqInput.value) : store.remove(vqDraft)));
  const askBtn: HTMLButtonElement = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "replay-ask", text: "Ask" });
  const askForm = h(
    "form",
    {
      class: "composer",
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        const text = vqInput.value.trim();
        if (!text) return;
        askBtn.disabled = true;
        try {
          const vt = await viewerToken();
          const t = Math.max(0, Math.min(Math.floor(now), manifest.duration_ms));
          const q = await api<ViewerQuestion>(`${base}/questions`, vt, { method: "POST", body: { t, text } });
          vQuestions.push(q);
          vQuestions.sort((a, b) => a.t - b.t || a.created - b.created);
          vqInput.value = "";
          store.remove(vqDraft);
          renderVQ();
          toast(`Question saved at ${clock(t)}.`);
        } catch (err) {
          toast((err as Error).message, "error");
        } finally {
          askBtn.disabled = false;
        }
      },
    },
    h("label", { for: "vq-input", class: "sr-only" }, "Your question about this moment"),
    vqInput,
    askBtn,
  );
  // Trainers (and admins) answer viewers' questions here; every later viewer sees the answer.
  function answerForm(q: ViewerQuestion): HTMLElement {
    const input: HTMLInputElement = h("input", {
      type: "text",
      "data-testid": "replay-answer-input",
      "aria-label": `Answer to: ${q.text}`,
      placeholder: q.answer ? "Change the answer…" : "Answer this question…",
      maxlength: 2000,
    });
    const button: HTMLButtonElement = h("button", {
      type: "button",
      class: "btn small",
      "data-testid": "replay-answer",
      text: q.answer ? "Update" : "Answer",
      onclick: async () => {
        const text = input.value.trim();
        if (!text) return;
        button.disabled = true;
        try {
          const done = await api<ViewerQuestion>(`${base}/questions/${encodeURIComponent(q.id)}/answer`, token, {
            method: "POST",
            body: { text },
          });
          vQuestions = vQuestions.map((x) => (x.id === done.id ? done : x));
          renderVQ();
        } catch (err) {
          toast((err as ApiError).message);
          button.disabled = false;
        }
      },
    });
    return h("div", { class: "answer-row" }, input, button);
  }

  function renderVQ(): void {
    const visible = vQuestions.filter((q) => q.t <= now);
    reconcile(
      vqList,
      vqCache,
      visible,
      (q) => `${q.id}:${q.answer ?? ""}`,
      (q) => {
        const li = h(
          "li",
          { class: "vq seekable", "data-testid": "replay-question", "data-id": q.id },
          h(
            "div",
            { class: "msg-head" },
            h("span", { class: "name" }, q.name),
            h("button", { type: "button", class: "link-btn time", "aria-label": `Go to ${clock(q.t)}`, text: shortTime(q.t), onclick: () => seek(q.t) }),
          ),
          h("p", { class: "text" }, q.text),
        );
        if (q.answer) {
          li.appendChild(
            h("div", { class: "q-answer" }, h("span", { class: "q-answer-label" }, `Answer from ${q.answered_by ?? "the trainer"}`), h("p", null, q.answer)),
          );
        }
        if (manifest.you.manages) li.appendChild(answerForm(q));
        return li;
      },
      () => {},
    );
    show(vqEmpty, visible.length === 0);
  }
  void api<{ questions: ViewerQuestion[] }>(`${base}/questions`, token)
    .then((r) => {
      vQuestions = r.questions;
      renderVQ();
    })
    .catch(() => {});

  // -- progress reports and the assignee's card ------------------------------------------------------
  // What was played, as intervals of recording time: a stretch starts when playback starts (or a
  // seek lands while playing) and closes at a pause, a seek, the end, and every REPORT_MS; so
  // seeking and the speed change nothing but which stretches are reported. Each is POSTed to
  // `…/viewers/{viewer}/progress` (merged first, a few per round: the route allows 30 per 30 s),
  // and what is left when the page goes away leaves with `fetch(…, {keepalive})`. Trainers and
  // admins previewing the replay report nothing: the report counts viewers.
  const REPORT_MS = 5000;
  const PER_ROUND = 4;
  const ASSIGNMENT_MS = 15_000;
  let assignmentAt = 0; // when the assignee's card was last refreshed (performance.now())
  const reportsOn = !manifest.you.manages;
  let stretchFrom: number | null = null; // where the stretch being played began
  let pending: [number, number][] = [];
  let sending = false;

  function closeStretch(): void {
    if (stretchFrom !== null) {
      const a = Math.max(0, Math.floor(stretchFrom));
      const b = Math.min(duration, Math.ceil(now));
      if (b > a) pending.push([a, b]);
    }
    stretchFrom = playing ? now : null;
  }

  function mergedPending(): [number, number][] {
    const out: [number, number][] = [];
    for (const [a, b] of pending.sort((x, y) => x[0] - y[0])) {
      const last = out[out.length - 1];
      if (last && a <= last[1]) last[1] = Math.max(last[1], b);
      else out.push([a, b]);
    }
    return out;
  }

  async function sendProgress(): Promise<void> {
    if (!reportsOn) return;
    closeStretch();
    if (sending || !pending.length) return;
    sending = true;
    const list = mergedPending();
    pending = [];
    let sent = 0;
    try {
      const vt = await viewerToken();
      const path = `${base}/viewers/${encodeURIComponent(viewer!.viewer_id)}/progress`;
      while (list.length && sent < PER_ROUND) {
        const [a, b] = list[0];
        try {
          await api(path, vt, { method: "POST", body: { from: a, to: b } });
          sent++;
          list.shift();
        } catch (err) {
          const code = (err as ApiError).code;
          if (code === "rate_limited" || code === "network" || code === "http_error" || code === "internal_error") break; // later
          if ((code === "expired_token" || code === "invalid_token") && !manifest.you.viewer_id) {
            // This browser's viewer token expired (or the server's secret changed): the next
            // round registers again.
            viewer = null;
            persist.remove(viewerKey);
            renderViewer();
            break;
          }
          list.shift(); // refused for good (beyond the recording, over the limit): dropped
        }
      }
    } catch {
      /* registering failed: the next round tries again */
    } finally {
      pending.push(...list);
      sending = false;
    }
    // The assignee's card follows: at once when playback stopped, else every ASSIGNMENT_MS at most
    // (each refresh folds the report on the server).
    if (sent && (!playing || performance.now() - assignmentAt >= ASSIGNMENT_MS)) void refreshAssignment();
  }

  /** The page goes away (closed, navigated, hidden on a phone): what is left, with keepalive. */
  function sendBeforeLeaving(): void {
    if (!reportsOn) return;
    closeStretch();
    if (!viewer || sending || !pending.length) return;
    const path = `${base}/viewers/${encodeURIComponent(viewer.viewer_id)}/progress`;
    for (const [a, b] of mergedPending().slice(0, PER_ROUND)) {
      void fetch(path, {
        method: "POST",
        keepalive: true,
        headers: { Authorization: `Bearer ${viewer.token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ from: a, to: b }),
      }).catch(() => {});
    }
    pending = [];
  }
  window.setInterval(() => {
    if (playing || pending.length) void sendProgress();
  }, REPORT_MS);
  window.addEventListener("pagehide", sendBeforeLeaving);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") sendBeforeLeaving();
  });

  interface MyAssignment extends AssigneeProgress {
    id: string;
    title: string;
    name: string;
    deadline: string;
    threshold: number;
    quiz_required: boolean;
  }
  const asgDeadline = h("p", { "data-testid": "assignment-deadline" });
  const asgStatus = h("span", { class: "badge", "data-testid": "assignment-status" });
  const asgBar = h("progress", { max: 1, value: 0, "aria-label": "Share of the replay watched" }) as HTMLProgressElement;
  const asgProgress = h("span", { "data-testid": "assignment-progress" });
  const asgQuiz = h("p", { "data-testid": "assignment-quiz" });
  const asgCard = h(
    "section",
    { class: "panel assignment-card", "data-testid": "assignment", "aria-labelledby": "asg-h", hidden: true },
    h("div", { class: "panel-head" }, h("h2", { id: "asg-h" }, "Your assignment"), asgStatus),
    asgDeadline,
    h("p", { class: "assignment-progress" }, asgBar, " ", asgProgress),
    asgQuiz,
    h(
      "a",
      {
        class: "btn btn-small",
        "data-testid": "assignment-ics",
        href: `${base}/assignment.ics?token=${encodeURIComponent(token)}`,
        download: `${sessionId}-deadline.ics`,
      },
      "Add to calendar",
    ),
  );
  let asgTimer = 0;
  async function refreshAssignment(): Promise<void> {
    if (!assignee) return;
    window.clearTimeout(asgTimer);
    assignmentAt = performance.now();
    try {
      const a = await api<MyAssignment>(`${base}/assignment`, token);
      show(asgCard, true);
      const due = new Date(a.deadline);
      setText(asgDeadline, `Due ${due.toLocaleString()} · watch at least ${Math.round(a.threshold * 100)}% of the replay${a.quiz_required ? " and answer its quiz" : ""}.`);
      setAttr(asgDeadline, "data-deadline", a.deadline);
      setText(asgStatus, STATUS_TEXT[a.status] + (a.late ? " (late)" : ""));
      setAttr(asgStatus, "data-status", a.status);
      asgStatus.className = `badge badge-status-${a.status}`;
      asgBar.value = a.watched_share;
      setText(asgProgress, `Watched ${Math.floor(a.watched_share * 1000) / 10}% of the ${Math.round(a.threshold * 100)}% needed`);
      setAttr(asgProgress, "data-share", String(a.watched_share));
      show(asgQuiz, a.quiz_required);
      setText(asgQuiz, `Quiz: ${a.quiz_answered} of ${a.quiz_total} answered`);
    } catch (err) {
      show(asgCard, true);
      setText(asgDeadline, `Your assignment cannot be shown: ${(err as Error).message}`);
    }
    asgTimer = window.setTimeout(() => void refreshAssignment(), 60_000); // the deadline may pass
  }
  void refreshAssignment();

  // -- player controls --------------------------------------------------------------------------------
  const playBtn: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn btn-primary play-btn",
    "data-testid": "play",
    "aria-label": "Play",
    onclick: () => (playing ? pause() : play()),
  });
  const back: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn",
    "data-testid": "skip-back",
    "aria-label": "Back 10 seconds",
    text: "↺ 10 s",
    onclick: () => seek(now - 10_000),
  });
  const fwd: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn",
    "data-testid": "skip-forward",
    "aria-label": "Forward 10 seconds",
    text: "10 s ↻",
    onclick: () => seek(now + 10_000),
  });
  const clockEl = h("span", { class: "clock", "data-testid": "clock", "aria-live": "off" }, clock(0));
  const totalEl = h("span", { class: "clock-total" });
  const speedSel = h(
    "select",
    {
      id: "speed",
      "data-testid": "speed",
      onchange: () => {
        speed = parseFloat(speedSel.value) || 1;
        media.sync(now, playing, speed, true);
      },
    },
    ...SPEEDS.map((s) => h("option", { value: String(s), selected: s === 1 }, `${s}×`)),
  );
  speedSel.value = "1";
  const media = replayMedia(manifest);
  const timeline = h("input", {
    type: "range",
    class: "timeline-range",
    "data-testid": "timeline",
    "aria-label": "Timeline",
    min: 0,
    max: duration,
    step: 1,
    value: 0,
  });
  timeline.addEventListener("input", () => seek(+timeline.value));
  let dragging = false; // while the thumb is held, the playhead follows it
  timeline.addEventListener("pointerdown", () => (dragging = true));
  timeline.addEventListener("pointerup", () => (dragging = false));
  const markers = h("div", { class: "markers" });
  const pausesBar = h("div", { class: "pauses", "aria-hidden": "true" });
  const copyLink: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn btn-small btn-ghost",
    "data-testid": "copy-time-link",
    text: "Copy link to this moment",
    onclick: async () => {
      const url = new URL(location.href);
      url.searchParams.set("t", linkTime(now));
      const ok = await copyText(url.toString());
      toast(ok ? `Link to ${clock(now)} copied.` : "Copying failed; copy the address bar instead.");
    },
  });
  const atStatus = h("p", { class: "at-status", "aria-live": "off" });

  // Each thing on the timeline once, with one role: chapters (trainer marks and page changes, also
  // in the chapter list), polls (also in the polls panel) and learners' questions. The legend says
  // in words what each marker shape stands for.
  const MARKER_KINDS: { kind: string; label: string; legend: string }[] = [
    { kind: "mark", label: "Chapter", legend: "Chapter marked by the trainer" },
    { kind: "page", label: "Page change", legend: "Whiteboard page change" },
    { kind: "poll", label: "Poll", legend: "Poll opened" },
    { kind: "question", label: "Question", legend: "Question asked" },
  ];
  const markerLabel = (kind: string) => MARKER_KINDS.find((k) => k.kind === kind)?.label ?? kind;
  const legend = h("ul", { class: "marker-legend", "data-testid": "marker-legend", "aria-label": "Timeline markers" });
  function renderMarkers(): void {
    const list: { t: number; kind: string; title: string }[] = manifest.chapters.map((c) => ({ t: c.t, kind: c.kind, title: c.title }));
    for (const p of manifest.polls ?? []) list.push({ t: p.t, kind: "poll", title: p.question });
    for (const q of manifest.questions ?? []) list.push({ t: q.t, kind: "question", title: q.text });
    list.sort((a, b) => a.t - b.t);
    const seen = new Set<string>();
    const shown = list.filter((m) => {
      const k = `${m.kind}|${m.t}|${m.title}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    markers.replaceChildren(
      ...shown.map((m) =>
        h("button", {
          type: "button",
          class: `marker marker-${m.kind}`,
          "data-testid": "marker",
          "data-t": m.t,
          "data-kind": m.kind,
          style: `left:${duration ? (m.t / duration) * 100 : 0}%`,
          "aria-label": `${markerLabel(m.kind)}: ${m.title}, at ${clock(m.t)}`,
          title: `${clock(m.t)} · ${markerLabel(m.kind)}: ${m.title}`,
          onclick: () => seek(m.t),
        }),
      ),
    );
    const present = new Set(shown.map((m) => m.kind));
    const items = MARKER_KINDS.filter((k) => present.has(k.kind)).map((k) =>
      h(
        "li",
        { class: "legend-item", "data-testid": "legend-item", "data-kind": k.kind },
        h("span", { class: `legend-swatch marker-${k.kind}`, "aria-hidden": "true" }),
        k.legend,
      ),
    );
    if (manifest.pauses.length)
      items.push(
        h(
          "li",
          { class: "legend-item", "data-testid": "legend-item", "data-kind": "pause" },
          h("span", { class: "legend-swatch legend-pause", "aria-hidden": "true" }),
          "Recording paused",
        ),
      );
    legend.replaceChildren(...items);
    show(legend, items.length > 0);
    pausesBar.replaceChildren(
      ...manifest.pauses.map(([a, b]) => {
        const end = b ?? duration;
        return h("span", {
          class: "pause-seg",
          style: `left:${duration ? (a / duration) * 100 : 0}%;width:${duration ? ((end - a) / duration) * 100 : 0}%`,
        });
      }),
    );
  }

  // Chapters list
  const chapterList = h("ol", { class: "chapter-list" });
  const chapterButtons: { t: number; el: HTMLElement }[] = [];
  function renderChapters(): void {
    chapterButtons.length = 0;
    chapterList.replaceChildren(
      ...manifest.chapters.map((c) => {
        const b = h(
          "button",
          { type: "button", class: "chapter-btn", "data-testid": "chapter", "data-kind": c.kind, "data-t": c.t, onclick: () => seek(c.t) },
          h("span", { class: "time" }, shortTime(c.t)),
          h("span", { class: `kind kind-${c.kind}` }, c.kind === "mark" ? "Chapter" : c.kind === "page" ? "Page" : c.kind),
          h("span", { class: "chapter-title" }, c.title),
        );
        chapterButtons.push({ t: c.t, el: b });
        return h("li", null, b);
      }),
    );
  }

  // Search across chat and questions
  const searchInput = h("input", {
    id: "replay-search",
    type: "search",
    "data-testid": "search-input",
    placeholder: "Search chat and questions",
    autocomplete: "off",
  });
  const searchResults = h("ol", { class: "search-results", "aria-label": "Search results" });
  const searchInfo = h("p", { class: "muted", "aria-live": "polite" });
  let searchTimer = 0;
  searchInput.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = window.setTimeout(() => void runSearch(), 120);
  });
  // The search reads every event: fetched on its first use (and again for a growing recording).
  let allEvents: Promise<WireEvent[]> | null = null;
  let allEventsAt = 0;
  async function runSearch(): Promise<void> {
    const q = searchInput.value.trim().toLowerCase();
    if (!q) {
      searchResults.replaceChildren();
      setText(searchInfo, "");
      return;
    }
    if (!allEvents || (manifest.status === "live" && allEventsAt < duration)) {
      setText(searchInfo, "Searching the recording…");
      allEventsAt = duration;
      allEvents = api<{ events: WireEvent[] }>(`${base}/events`, token).then((r) => r.events);
      allEvents.catch(() => (allEvents = null));
    }
    let events: WireEvent[];
    try {
      events = await allEvents;
    } catch (err) {
      setText(searchInfo, `The search failed: ${(err as Error).message}`);
      return;
    }
    if (q !== searchInput.value.trim().toLowerCase()) return; // typed on meanwhile
    const deleted = new Set(events.filter((e) => e.type === "chat.deleted").map((e) => e.data.id));
    const hits: { t: number; who: string; text: string; kind: string }[] = [];
    for (const e of events) {
      if (e.type === "chat.message" && !deleted.has(e.data.id)) {
        if (`${e.data.name} ${e.data.text}`.toLowerCase().includes(q)) hits.push({ t: e.t, who: e.data.name, text: e.data.text, kind: "Chat" });
      } else if (e.type === "qa.asked") {
        if (`${e.data.name ?? ""} ${e.data.text}`.toLowerCase().includes(q))
          hits.push({ t: e.t, who: e.data.name ?? "Anonymous", text: e.data.text, kind: "Question" });
      }
    }
    setText(searchInfo, hits.length ? `${hits.length} ${hits.length === 1 ? "result" : "results"}` : "No results");
    searchResults.replaceChildren(
      ...hits.slice(0, 200).map((r) =>
        h(
          "li",
          null,
          h(
            "button",
            { type: "button", class: "search-result", "data-testid": "search-result", "data-t": r.t, onclick: () => seek(r.t) },
            h("span", { class: "time" }, shortTime(r.t)),
            h("span", { class: "badge" }, r.kind),
            h("span", { class: "name" }, r.who),
            h("span", { class: "text" }, r.text),
          ),
        ),
      ),
    );
  }

  // -- layout ------------------------------------------------------------------------------------------
  const started = manifest.started_at ?? manifest.created_at;
  const exportLink = (name: string, label: string) =>
    h("a", { class: "btn btn-small btn-ghost", href: `${base}/export/${name}?token=${encodeURIComponent(token)}`, download: `${sessionId}-${name}` }, label);
  setTitle(manifest.title, "Replay");
  root.replaceChildren(
    h(
      "div",
      { class: "page page-replay" },
      h(
        "header",
        { class: "topbar" },
        brand(),
        h(
          "div",
          { class: "topbar-title" },
          h("h1", { class: "session-title" }, manifest.title),
          h(
            "span",
            { class: "muted" },
            `Replay · ${new Date(started * 1000).toLocaleString()} · ${fmtDuration(duration)}` +
              (manifest.trainers.length ? ` · with ${manifest.trainers.join(", ")}` : "") +
              (manifest.status === "live" ? " · still live" : ""),
          ),
        ),
        h("div", { class: "controls" }, copyLink, exportLink("chat.txt", "Chat (.txt)"), exportLink("chat.vtt", "Subtitles (.vtt)"), ...media.downloads),
      ),
      h(
        "div",
        { class: "layout" },
        h(
          "div",
          { class: "col-main" },
          asgCard,
          h("div", { class: "stage" }, media.el, board.el, reactions.overlay),
          h(
            "section",
            { class: "player", "aria-label": "Playback" },
            h("div", { class: "timeline" }, markers, h("div", { class: "track" }, pausesBar, timeline)),
            legend,
            h(
              "div",
              { class: "player-row" },
              back,
              playBtn,
              fwd,
              h("span", { class: "time-box" }, clockEl, totalEl),
              h("label", { class: "speed", for: "speed" }, "Speed ", speedSel),
            ),
            atStatus,
            h("p", { class: "hint" }, "Keys: Space play/pause · ← → 5 seconds"),
          ),
          h(
            "section",
            { class: "panel chapters-panel", "aria-labelledby": "ch-h" },
            h("div", { class: "panel-head" }, h("h2", { id: "ch-h" }, "Chapters")),
            manifest.chapters.length ? chapterList : h("p", { class: "empty" }, "No chapters in this recording."),
          ),
          h("div", { class: "pair" }, polls.el, qa.el),
        ),
        h(
          "aside",
          { class: "col-side", "aria-label": "Chat, search and questions" },
          h(
            "section",
            { class: "panel search-panel", "aria-labelledby": "search-h" },
            h("div", { class: "panel-head" }, h("h2", { id: "search-h" }, "Search")),
            h("label", { for: "replay-search", class: "sr-only" }, "Search chat and questions"),
            searchInput,
            searchInfo,
            searchResults,
          ),
          chat.el,
          h(
            "section",
            { class: "panel vq-panel", "aria-labelledby": "vq-h" },
            h("div", { class: "panel-head" }, h("h2", { id: "vq-h" }, "Viewers' questions")),
            h("p", { class: "muted" }, "Questions are tied to the moment you ask them; the trainer may answer later."),
            nameRow,
            whoami,
            vqList,
            vqEmpty,
            askForm,
          ),
          people.el,
        ),
      ),
    ),
  );
  renderViewer();
  renderMarkers();
  renderChapters();

  // -- rendering ---------------------------------------------------------------------------------------
  let lastSecond = -1;
  function renderClock(): void {
    if (!dragging) timeline.value = String(Math.round(now));
    const sec = Math.floor(now / 1000);
    if (sec !== lastSecond) {
      lastSecond = sec;
      setText(clockEl, clock(now));
      setAttr(timeline, "aria-valuetext", `${clock(now)} of ${clock(duration)}`);
      renderVQ();
      let current: HTMLElement | null = null;
      for (const c of chapterButtons) if (c.t <= now) current = c.el;
      for (const c of chapterButtons) setAttr(c.el, "aria-current", c.el === current ? "true" : null);
      const paused = manifest.pauses.some(([a, b]) => now >= a && now < (b ?? Infinity));
      const st = state.status;
      setText(
        atStatus,
        st === "created" ? "Before the session started" : st === "ended" ? "The session has ended here" : paused ? "Recording was paused here" : "",
      );
    }
    setText(totalEl, ` / ${clock(duration)}`);
    setText(playBtn, playing ? "❚❚ Pause" : "▶ Play");
    setAttr(playBtn, "aria-label", playing ? "Pause" : "Play");
    toggleClass(playBtn, "is-playing", playing);
  }

  const renderAll = (dirty: Set<PanelKey>) => {
    if ([...dirty].some((k) => k !== "board")) {
      const recent = state.chat.size > chatShown ? new Map([...state.chat].slice(-chatShown)) : state.chat;
      const v = view({ ...state, pages: new Map(), chat: recent } as State, "learner", null);
      if (dirty.has("chat")) chat.render(v);
      if (dirty.has("people") || dirty.has("status")) people.render(v);
      if (dirty.has("polls")) polls.render(pollsShown(v));
      if (dirty.has("qa")) qa.render(v);
    }
    if (dirty.has("board")) board.invalidate();
  };
  const schedule = scheduler(renderAll);

  // -- playback -------------------------------------------------------------------------------------
  function seek(ms: number): void {
    const t = Math.max(0, Math.min(duration, Math.round(Number.isFinite(ms) ? ms : 0)));
    closeStretch(); // what was played up to here; playing on, a new stretch starts at t
    now = t;
    if (stretchFrom !== null) stretchFrom = t;
    chatShown = SNAPSHOT_CHAT;
    // Forward within the events here: fold on. Back, or beyond them: load the state there.
    if (loaded && !loading && t >= foldedAt && t <= bufTo) {
      schedule(foldTo(t, false));
      maybeFetchMore();
    } else void loadAt(t);
    lastSecond = -1;
    renderClock();
    media.sync(now, playing, speed, true);
  }

  let lastTs = 0;
  function tick(ts: number): void {
    if (!playing) return;
    const dt = Math.min(1000, ts - lastTs);
    lastTs = ts;
    now = Math.min(duration, now + dt * speed);
    media.sync(now, playing, speed, false);
    schedule(foldTo(now, true));
    maybeFetchMore();
    renderClock();
    if (now >= duration) {
      pause();
      return;
    }
    requestAnimationFrame(tick);
  }
  function play(): void {
    if (playing) return;
    if (now >= duration) seek(0);
    playing = true;
    closeStretch(); // a stretch starts here
    lastTs = performance.now();
    requestAnimationFrame(tick);
    renderClock();
    media.sync(now, playing, speed, true);
  }
  function pause(): void {
    const was = playing;
    playing = false;
    if (was) void sendProgress(); // closes the stretch at the pause and reports it
    renderClock();
    media.sync(now, playing, speed, true);
  }

  document.addEventListener("keydown", (ev) => {
    const target = ev.target as HTMLElement;
    const tag = target?.tagName;
    const typing =
      (tag === "INPUT" && !["range", "checkbox", "radio", "button"].includes((target as HTMLInputElement).type)) ||
      tag === "TEXTAREA" ||
      tag === "SELECT" ||
      target?.isContentEditable;
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === " " || ev.code === "Space") {
      if (tag === "BUTTON" || tag === "A" || (tag === "INPUT" && target !== timeline)) return; // activates the control
      ev.preventDefault();
      if (playing) pause();
      else play();
    } else if (ev.key === "ArrowLeft" || ev.key === "ArrowRight") {
      if (tag === "INPUT" && target !== timeline) return; // radio groups use arrows
      ev.preventDefault();
      seek(now + (ev.key === "ArrowLeft" ? -5000 : 5000));
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (playing) lastTs = performance.now();
  });

  // A recording still being made grows: read its manifest again every 10 s; the playhead's
  // windows of events then reach further.
  if (manifest.status === "live") {
    const refresh = async () => {
      try {
        const m = await api<Manifest>(base, token);
        manifest.chapters = m.chapters;
        manifest.polls = m.polls;
        manifest.questions = m.questions;
        manifest.pauses = m.pauses;
        manifest.duration_ms = m.duration_ms;
        manifest.status = m.status;
        media.update(m.media);
        duration = Math.max(duration, m.duration_ms);
        maybeFetchMore();
        timeline.max = String(duration);
        renderMarkers();
        renderChapters();
        lastSecond = -1;
        renderClock();
        if (m.status !== "live") return;
      } catch {
        /* try again later */
      }
      setTimeout(refresh, 10_000);
    };
    setTimeout(refresh, 10_000);
  }

  // -- start --------------------------------------------------------------------------------------------
  const deep = parseTime(params.get("t"));
  const start = pendingSeek ?? deep ?? 0;
  pendingSeek = null;
  seek(start);
  schedule(ALL);
  nextFrame(() => renderClock());

  return {
    get state() {
      return state;
    },
    get now() {
      return now;
    },
    seek,
  };
}

/** The recorded voice and video (issue 10): one <video> (or <audio>) per media file, placed at
 * playhead − the file's start on the session clock, played, paused and sped up with the replay
 * clock and hidden outside its range. The replay clock leads; the media follows it. */
function replayMedia(manifest: Manifest) {
  // Beyond JUMP (s) off the clock an element jumps there; within IN_STEP it is in step.
  const JUMP = 1;
  const IN_STEP = 0.05;
  const entries = (manifest.media ?? []).filter((m) => m.status !== "damaged");
  const el = h("div", { class: "replay-media", "data-testid": "replay-media", hidden: true });
  // `lag`: how long the element's last jump took to land (s), `jumped`: when it started.
  const items: { m: MediaEntry; node: HTMLMediaElement; video: boolean; lag: number; jumped: number }[] = [];
  function add(m: MediaEntry) {
    const video = m.tracks.some((t) => t.kind === "video") || m.content_type.startsWith("video/");
    const src = `${base}/media/${encodeURIComponent(m.file)}?token=${encodeURIComponent(token)}`;
    const node = h(video ? "video" : "audio", {
      src,
      preload: "auto",
      playsinline: true,
      hidden: true,
      "data-testid": video ? "replay-video" : "replay-audio",
      "data-file": m.file,
      "data-start": m.start_ms,
    }) as HTMLMediaElement;
    el.appendChild(node);
    const item = { m, node, video, lag: 0, jumped: 0 };
    node.addEventListener("seeked", () => {
      if (item.jumped) item.lag = (performance.now() - item.jumped) / 1000;
      item.jumped = 0;
      if (last) sync(last.now, last.playing, last.speed, false);
    });
    items.push(item);
  }
  entries.forEach(add);
  /** A recording still being made: files that started since, and the end of those now closed. */
  function update(list: MediaEntry[] | undefined): void {
    for (const m of list ?? []) {
      if (m.status === "damaged") continue;
      const known = items.find((i) => i.m.file === m.file);
      if (known) known.m = m;
      else add(m);
    }
  }
  const downloads = manifest.you.manages
    ? entries.map((m, i) =>
        h(
          "a",
          {
            class: "btn btn-small btn-ghost",
            "data-testid": "media-download",
            href: `${base}/media/${encodeURIComponent(m.file)}?token=${encodeURIComponent(token)}&download=1`,
            download: `${sessionId}-${m.file}`,
          },
          entries.length > 1 ? `Media ${i + 1} (.${m.file.split(".").pop()})` : `Media (.${m.file.split(".").pop()})`,
        ),
      )
    : [];

  let last: { now: number; playing: boolean; speed: number } | null = null;
  function sync(now: number, playing: boolean, speed: number, hard: boolean): void {
    last = { now, playing, speed };
    let shown = false;
    for (const item of items) {
      const { m, node, video } = item;
      const local = (now - m.start_ms) / 1000;
      const end = m.end_ms ?? (manifest.status === "live" ? Infinity : m.start_ms + (m.duration_ms ?? Infinity));
      const inside = local >= 0 && now < end;
      if (video) node.hidden = !inside;
      if (!inside) {
        if (!node.paused) node.pause();
        continue;
      }
      if (video) shown = true;
      // Ahead (+) or behind (−) the clock. A seek of the replay, or far off: the element jumps
      // there (while playing, ahead by what its last jump took, so it lands in step). A little
      // off while playing: it plays a little faster or slower until in step again (a jump per
      // small drift could chase the clock for ever on a slow disk or machine).
      const drift = node.currentTime - local;
      let rate = speed;
      if ((hard || !playing) && Math.abs(drift) > IN_STEP) {
        // A seek of the replay (or paused): exactly there, also over a jump still in flight.
        const lead = playing ? Math.min(1, item.lag) * speed : 0;
        item.jumped = performance.now();
        node.currentTime = local + lead;
      } else if (node.seeking) {
        /* let the jump land */
      } else if (Math.abs(drift) > JUMP) {
        item.jumped = performance.now();
        node.currentTime = local + Math.min(1, item.lag) * speed;
      } else if (playing && Math.abs(drift) > IN_STEP) {
        rate = speed * (1 - Math.max(-0.25, Math.min(0.25, drift * 0.5)));
      }
      if (Math.abs(node.playbackRate - rate) > 0.001) node.playbackRate = rate;
      if (playing && node.paused) void node.play().catch(() => {});
      else if (!playing && !node.paused) node.pause();
    }
    el.hidden = !shown;
  }
  return { el, downloads, sync, update };
}

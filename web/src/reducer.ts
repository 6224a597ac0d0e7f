// The one fold of Classcast's event stream in the browser, for live pages and replay alike.
// It mirrors classroom/core (state.py and the feature modules) rule for rule: a state is
// rebuilt from a snapshot view, each event is folded into it, and view() renders the same
// shape the server's snapshot has. A test feeds recorded events to both and compares.

export type Role = "trainer" | "learner";
export type Audience = Role;

export interface WireEvent {
  seq: number;
  t: number;
  type: string;
  actor: string | null;
  data: Record<string, any>;
}

export interface Participant {
  id: string;
  name: string;
  role: Role;
  online: boolean;
  hand: boolean;
  muted: boolean;
}

export interface ChatMessage {
  id: string;
  author: string | null;
  name: string;
  role: Role;
  text: string;
  t: number;
  seq: number;
}

interface PollState {
  id: string;
  question: string;
  options: string[];
  multiple: boolean;
  anonymous: boolean;
  quiz: boolean;
  correct: number[] | null;
  status: "open" | "closed";
  shared: boolean;
  counts: number[];
  voters: number;
  votes: Map<string, number[]>;
  t: number;
  seq: number;
}

/** A poll a trainer prepared and has not opened (trainers only; classroom/core/polls.py). */
type DraftState = Pick<PollState, "id" | "question" | "options" | "multiple" | "anonymous" | "quiz" | "correct" | "t" | "seq">;

interface QuestionState {
  id: string;
  text: string;
  anonymous: boolean;
  author: string | null;
  name: string | null;
  status: "open" | "answered" | "dismissed";
  votes: number;
  upvoters: Set<string>;
  answer: string | null;
  answered_by: string | null;
  t: number;
  seq: number;
}

export interface Element {
  id: string;
  kind: "stroke" | "line" | "rect" | "ellipse" | "arrow" | "text";
  author: string | null;
  z: number;
  color: string;
  [key: string]: any;
}

export interface MediaTrack {
  id: string; // "<publisher>:<label>"
  publisher: string;
  label: "mic" | "camera" | "screen";
  kind: "audio" | "video";
  codec: string;
}

export interface MediaState {
  tracks: MediaTrack[];
  floor: Record<string, { camera: boolean }>;
}

export interface State {
  id: string;
  title: string;
  status: "created" | "live" | "ended";
  recording: "on" | "paused" | "off";
  seq: number;
  t: number;
  participants: Map<string, Participant>;
  chat: Map<string, ChatMessage>;
  chapters: { id: string; title: string; t: number }[];
  polls: Map<string, PollState>;
  drafts: Map<string, DraftState>;
  questions: Map<string, QuestionState>;
  pages: Map<string, Map<string, Element>>;
  current: string;
  learnersCanDraw: boolean;
  media: MediaState; // live tracks (server-told) and who besides trainers holds the floor
  index: Map<string, string>; // element id -> page id
  // After a bounded snapshot (classroom/core/history.py): pages whose elements were not sent
  // (their events are skipped until fetched), pages fetched later with the seq of the reply
  // (their events up to it are already in), and whether older chat may exist on the server.
  unloaded: Set<string>;
  loaded: Map<string, number>;
  olderChat: boolean;
}

// The bounds of a join snapshot, as in classroom/core/history.py.
export const SNAPSHOT_CHAT = 100;
export const SNAPSHOT_POLLS = 20;
export const SNAPSHOT_QUESTIONS = 50;
export const SNAPSHOT_OFFLINE = 100;
export const SNAPSHOT_CHAPTERS = 100;

const copyChoices = (c: number[] | null) => (c ? [...c] : null);
const copyMedia = (m: MediaState): MediaState => ({
  tracks: m.tracks.map((t) => ({ ...t })),
  floor: Object.fromEntries(Object.entries(m.floor).map(([id, f]) => [id, { ...f }])),
});

const copyEl = (el: Element): Element => (el.points ? { ...el, points: [...el.points] } : { ...el });

// -- snapshots ------------------------------------------------------------------------------------

export function fromView(v: any, viewer: string | null): State {
  const s: State = {
    id: v.id,
    title: v.title,
    status: v.status,
    recording: v.recording,
    seq: v.seq,
    t: v.t,
    participants: new Map(v.participants.map((p: Participant) => [p.id, { ...p }])),
    chat: new Map(v.chat.map((m: ChatMessage) => [m.id, { ...m }])),
    chapters: v.chapters.map((c: any) => ({ ...c })),
    polls: new Map(),
    drafts: new Map(
      (v.drafts ?? []).map((x: DraftState) => [x.id, { ...x, options: [...x.options], correct: copyChoices(x.correct) }]),
    ),
    questions: new Map(),
    pages: new Map(),
    current: v.board.current,
    learnersCanDraw: v.board.learners_can_draw,
    media: copyMedia(v.media ?? { tracks: [], floor: {} }),
    index: new Map(),
    unloaded: new Set(),
    loaded: new Map(),
    olderChat: (v.more?.chat ?? 0) > 0,
  };
  for (const p of v.polls) {
    const votes = new Map<string, number[]>(Object.entries(p.votes ?? {}) as [string, number[]][]);
    if (viewer && p.my_choices) votes.set(viewer, [...p.my_choices]);
    const { my_choices: _mine, ...rest } = p;
    s.polls.set(p.id, {
      ...rest,
      counts: [...(p.counts ?? p.options.map(() => 0))],
      voters: p.voters ?? 0,
      votes,
    });
  }
  for (const q of [...v.questions].sort((a: any, b: any) => a.seq - b.seq)) {
    const { upvoted, ...rest } = q;
    s.questions.set(q.id, { ...rest, upvoters: new Set(upvoted && viewer ? [viewer] : []) });
  }
  for (const page of v.board.pages) {
    s.pages.set(page.id, new Map());
    if (page.elements === null) s.unloaded.add(page.id);
    else insert(s, page.id, page.elements);
  }
  return s;
}

const lastOf = <T>(items: Map<string, T>, n: number): Map<string, T> =>
  items.size <= n ? items : new Map([...items].slice(-n));

function recentPolls(s: State): Map<string, PollState> {
  const recent = lastOf(s.polls, SNAPSHOT_POLLS);
  if (recent.size === s.polls.size) return recent;
  const olderOpen = [...s.polls.values()].filter((p) => p.status === "open" && !recent.has(p.id));
  return new Map([...olderOpen.slice(-SNAPSHOT_POLLS).map((p) => [p.id, p] as const), ...recent]);
}

function shownPeople(s: State): Map<string, Participant> {
  const keep: Participant[] = [];
  let offline = 0;
  for (const p of [...s.participants.values()].reverse()) {
    if (p.online || p.muted) keep.push(p);
    else if (offline < SNAPSHOT_OFFLINE) {
      offline++;
      keep.push(p);
    }
  }
  if (keep.length === s.participants.size) return s.participants;
  return new Map(keep.reverse().map((p) => [p.id, p]));
}

/** What `viewer` sees. `bounded`: the form of a join snapshot (recent chat, the current page's
 * elements only, …, and `more`), as classroom/core/history.py renders it; else all held. */
export function view(s: State, audience: Audience, viewer: string | null, bounded = false): any {
  if (!bounded) return render(s, audience, viewer, undefined);
  const polls = recentPolls(s);
  const people = shownPeople(s);
  const bs: State = {
    ...s,
    chat: lastOf(s.chat, SNAPSHOT_CHAT),
    polls,
    questions: lastOf(s.questions, SNAPSHOT_QUESTIONS),
    participants: people,
    chapters: s.chapters.slice(-SNAPSHOT_CHAPTERS),
  };
  const shown = s.unloaded.has(s.current) ? null : s.current;
  const out = render(bs, audience, viewer, shown);
  out.more = {
    chat: Math.max(0, s.chat.size - SNAPSHOT_CHAT),
    polls: s.polls.size - polls.size,
    questions: Math.max(0, s.questions.size - SNAPSHOT_QUESTIONS),
    participants: s.participants.size - people.size,
    chapters: Math.max(0, s.chapters.length - SNAPSHOT_CHAPTERS),
  };
  return out;
}

function render(s: State, audience: Audience, viewer: string | null, onlyPage: string | null | undefined): any {
  const trainer = audience === "trainer";
  const order = { open: 0, answered: 1, dismissed: 2 } as const;
  const questions = [...s.questions.values()].sort((a, b) => {
    const ka = [order[a.status], a.status === "open" ? -a.votes : 0, a.seq];
    const kb = [order[b.status], b.status === "open" ? -b.votes : 0, b.seq];
    return ka[0] - kb[0] || ka[1] - kb[1] || ka[2] - kb[2];
  });
  return {
    id: s.id,
    title: s.title,
    status: s.status,
    recording: s.recording,
    seq: s.seq,
    t: s.t,
    chat: [...s.chat.values()].map((m) => ({ ...m })),
    chapters: s.chapters.map((c) => ({ ...c })),
    polls: [...s.polls.values()].map((p) => {
      const visible = trainer || p.shared;
      const mine = viewer !== null ? p.votes.get(viewer) : undefined;
      return {
        id: p.id,
        question: p.question,
        options: [...p.options],
        multiple: p.multiple,
        anonymous: p.anonymous,
        quiz: p.quiz,
        correct: visible && p.correct ? [...p.correct] : null,
        status: p.status,
        shared: p.shared,
        counts: visible ? [...p.counts] : null,
        voters: visible ? p.voters : null,
        votes: trainer && !p.anonymous ? Object.fromEntries([...p.votes].map(([k, c]) => [k, [...c]])) : null,
        my_choices: mine ? [...mine] : null,
        t: p.t,
        seq: p.seq,
      };
    }),
    participants: [...s.participants.values()].map((p) => ({ ...p })),
    drafts: trainer
      ? [...s.drafts.values()].map((x) => ({ ...x, options: [...x.options], correct: copyChoices(x.correct) }))
      : [],
    questions: questions.map((q) => {
      const hidden = !trainer && q.anonymous && q.author !== viewer;
      return {
        id: q.id,
        text: q.text,
        anonymous: q.anonymous,
        author: hidden ? null : q.author,
        name: hidden ? null : q.name,
        status: q.status,
        votes: q.votes,
        upvoted: viewer !== null && q.upvoters.has(viewer),
        answer: q.answer,
        answered_by: q.answered_by,
        t: q.t,
        seq: q.seq,
      };
    }),
    board: {
      pages: [...s.pages].map(([id, items]) => ({
        id,
        elements: onlyPage === undefined || onlyPage === id ? [...items.values()].map(copyEl) : null,
      })),
      current: s.current,
      learners_can_draw: s.learnersCanDraw,
    },
    more: { chat: 0, polls: 0, questions: 0, participants: 0, chapters: 0 },
    media: copyMedia(s.media),
  };
}

// -- the fold -------------------------------------------------------------------------------------

function insert(s: State, page: string, elements: Element[]): void {
  let items = s.pages.get(page);
  if (!items) s.pages.set(page, (items = new Map()));
  const last = [...items.values()].pop();
  const lastZ = last ? last.z : 0;
  for (const el of elements) {
    items.set(el.id, copyEl(el));
    s.index.set(el.id, page);
  }
  if (elements.some((el) => el.z < lastZ)) {
    s.pages.set(page, new Map([...items].sort((a, b) => a[1].z - b[1].z)));
  }
}

function remove(s: State, page: string, ids: string[]): void {
  const items = s.pages.get(page);
  if (!items) return;
  for (const id of ids) {
    items.delete(id);
    s.index.delete(id);
  }
}

type Fold = (s: State, e: WireEvent) => void;
const d = (e: WireEvent) => e.data;

/** What a drafted and an opened poll share, from the event that made it. */
const pollFields = (e: WireEvent): DraftState => {
  const x = d(e);
  return {
    id: x.id,
    question: x.question,
    options: [...x.options],
    multiple: x.multiple,
    anonymous: x.anonymous,
    quiz: x.quiz,
    correct: copyChoices(x.correct),
    t: e.t,
    seq: e.seq,
  };
};

const FOLDS: Record<string, Fold> = {
  "session.started": (s) => {
    s.status = "live";
  },
  "session.ended": (s) => {
    s.status = "ended";
    for (const p of s.participants.values()) p.hand = false;
  },
  "recording.paused": (s) => {
    s.recording = "paused";
  },
  "recording.resumed": (s) => {
    s.recording = "on";
  },
  "chapter.marked": (s, e) => {
    s.chapters.push({ id: d(e).id, title: d(e).title, t: e.t });
  },
  "participant.joined": (s, e) => {
    const p = s.participants.get(d(e).id);
    if (p) Object.assign(p, { name: d(e).name, online: true });
    else
      s.participants.set(d(e).id, {
        id: d(e).id,
        name: d(e).name,
        role: d(e).role,
        online: true,
        hand: false,
        muted: false,
      });
  },
  "participant.left": (s, e) => {
    const p = s.participants.get(d(e).id);
    if (p) p.online = false;
  },
  "hand.raised": (s, e) => {
    const p = s.participants.get(d(e).id);
    if (p) p.hand = true;
  },
  "hand.lowered": (s, e) => {
    const p = s.participants.get(d(e).id);
    if (p) p.hand = false;
  },
  "participant.muted": (s, e) => {
    const p = s.participants.get(d(e).id);
    if (p) p.muted = true;
  },
  "participant.unmuted": (s, e) => {
    const p = s.participants.get(d(e).id);
    if (p) p.muted = false;
  },
  "chat.message": (s, e) => {
    s.chat.set(d(e).id, {
      id: d(e).id,
      author: e.actor,
      name: d(e).name,
      role: d(e).role,
      text: d(e).text,
      t: e.t,
      seq: e.seq,
    });
  },
  "media.tracks": (s, e) => {
    s.media.tracks = d(e).tracks.map((t: MediaTrack) => ({ ...t }));
  },
  "floor.given": (s, e) => {
    s.media.floor[d(e).id] = { camera: !!d(e).camera };
  },
  "floor.taken": (s, e) => {
    delete s.media.floor[d(e).id];
  },
  "chat.deleted": (s, e) => {
    s.chat.delete(d(e).id);
  },
  "poll.drafted": (s, e) => {
    s.drafts.set(d(e).id, pollFields(e));
  },
  "poll.discarded": (s, e) => {
    s.drafts.delete(d(e).poll_id);
  },
  "poll.opened": (s, e) => {
    const x = d(e);
    s.drafts.delete(x.id); // an opened draft is a poll like any other from now on
    s.polls.set(x.id, {
      ...pollFields(e),
      status: "open",
      shared: false,
      counts: x.options.map(() => 0),
      voters: 0,
      votes: new Map(),
    });
  },
  "poll.voted": (s, e) => {
    const p = s.polls.get(d(e).poll_id);
    if (!p) return;
    if ("counts" in d(e)) {
      p.counts = [...d(e).counts];
      p.voters = d(e).voters;
    }
    if (e.actor !== null && "choices" in d(e)) p.votes.set(e.actor, [...d(e).choices]);
  },
  "poll.closed": (s, e) => {
    const p = s.polls.get(d(e).poll_id);
    if (!p) return;
    p.status = "closed";
    if ("counts" in d(e)) {
      p.counts = [...d(e).counts];
      p.voters = d(e).voters;
    }
  },
  "poll.shared": (s, e) => {
    const p = s.polls.get(d(e).poll_id);
    if (!p) return;
    Object.assign(p, {
      shared: true,
      counts: [...d(e).counts],
      voters: d(e).voters,
      correct: d(e).correct ? [...d(e).correct] : null,
    });
  },
  "qa.asked": (s, e) => {
    const x = d(e);
    s.questions.set(x.id, {
      id: x.id,
      text: x.text,
      anonymous: x.anonymous,
      author: e.actor,
      name: x.name,
      status: "open",
      votes: 0,
      upvoters: new Set(),
      answer: null,
      answered_by: null,
      t: e.t,
      seq: e.seq,
    });
  },
  "qa.upvoted": (s, e) => {
    const q = s.questions.get(d(e).id);
    if (!q) return;
    q.votes = d(e).votes;
    if (e.actor !== null) q.upvoters.add(e.actor);
  },
  "qa.unvoted": (s, e) => {
    const q = s.questions.get(d(e).id);
    if (!q) return;
    q.votes = d(e).votes;
    if (e.actor !== null) q.upvoters.delete(e.actor);
  },
  "qa.answered": (s, e) => {
    const q = s.questions.get(d(e).id);
    if (q) Object.assign(q, { status: "answered", answer: d(e).answer, answered_by: d(e).by });
  },
  "qa.dismissed": (s, e) => {
    const q = s.questions.get(d(e).id);
    if (q) q.status = "dismissed";
  },
  "qa.reopened": (s, e) => {
    const q = s.questions.get(d(e).id);
    if (q) q.status = "open";
  },
  "wb.element.added": (s, e) => {
    insert(s, d(e).page, [{ ...d(e).element, author: e.actor, z: e.seq }]);
  },
  "wb.stroke.extended": (s, e) => {
    const el = s.pages.get(d(e).page)?.get(d(e).id);
    if (el) el.points.push(...d(e).points);
  },
  "wb.stroke.ended": (s, e) => {
    const el = s.pages.get(d(e).page)?.get(d(e).id);
    if (el) el.done = true;
  },
  "wb.element.removed": (s, e) => remove(s, d(e).page, d(e).ids),
  "wb.page.cleared": (s, e) => remove(s, d(e).page, d(e).ids),
  "wb.element.restored": (s, e) => insert(s, d(e).page, d(e).elements),
  "wb.page.added": (s, e) => {
    s.pages.set(d(e).page, new Map());
  },
  "wb.page.switched": (s, e) => {
    s.current = d(e).page;
  },
  "wb.permission": (s, e) => {
    s.learnersCanDraw = d(e).learners_can_draw;
  },
};

/** Is this a drawing event on a page not fetched yet, or one a fetched page already holds? */
function notLoaded(s: State, e: WireEvent): boolean {
  if (!e.type.startsWith("wb.") || e.type === "wb.page.switched") return false;
  const page = e.data?.page;
  return s.unloaded.has(page) || e.seq <= (s.loaded.get(page) ?? 0);
}

/** Fold one event; events at or below the state's seq were already folded and are ignored. */
export function apply(s: State, e: WireEvent): boolean {
  if (e.seq <= s.seq) return false;
  if (!notLoaded(s, e)) FOLDS[e.type]?.(s, e);
  s.seq = e.seq;
  s.t = e.t;
  return true;
}

function mergeBySeq<T extends { seq: number }>(held: Map<string, T>, older: [string, T][]): Map<string, T> {
  const added = older.filter(([id]) => !held.has(id));
  if (!added.length) return held;
  return new Map([...held, ...added].sort((a, b) => a[1].seq - b[1].seq));
}

/** Fold the reply of a history command (chat.history, poll.history, qa.history, board.page.get)
 * into the state, as classroom/core/history.py's merge_reply does. */
export function mergeReply(s: State, command: string, reply: any, viewer: string | null): void {
  if (command === "chat.history") {
    s.chat = mergeBySeq(s.chat, reply.messages.map((m: ChatMessage) => [m.id, { ...m }]));
    s.olderChat = !!reply.more;
  } else if (command === "poll.history" || command === "qa.history") {
    const tmp = fromView(
      {
        id: s.id,
        title: s.title,
        status: s.status,
        recording: s.recording,
        seq: 0,
        t: 0,
        participants: [],
        chat: [],
        chapters: [],
        polls: command === "poll.history" ? reply.polls : [],
        questions: command === "qa.history" ? reply.questions : [],
        board: { pages: [], current: s.current, learners_can_draw: false },
      },
      viewer,
    );
    if (command === "poll.history") s.polls = mergeBySeq(s.polls, [...tmp.polls]);
    else s.questions = mergeBySeq(s.questions, [...tmp.questions]);
  } else if (command === "board.page.get") {
    const page = reply.page;
    for (const id of s.pages.get(page.id)?.keys() ?? []) s.index.delete(id);
    s.pages.set(page.id, new Map());
    insert(s, page.id, page.elements);
    s.unloaded.delete(page.id);
    s.loaded.set(page.id, reply.seq);
  }
}

/** The state before anything happened, for a replay that folds from the start. */
export function empty(id: string, title: string, recording: State["recording"] = "on"): State {
  return fromView(
    {
      id,
      title,
      status: "created",
      recording,
      seq: 0,
      t: 0,
      participants: [],
      chat: [],
      chapters: [],
      polls: [],
      questions: [],
      board: { pages: [{ id: "w1", elements: [] }], current: "w1", learners_can_draw: false },
    },
    null,
  );
}

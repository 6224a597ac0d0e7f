// The engagement report (/s/{id}/report?token=<trainer token>): attendance and activity over time
// (SVG charts drawn here), sortable tables of participants and replay viewers, polls and the most
// upvoted questions, from GET /api/sessions/{id}/report. Live sessions refresh every 15 s.
// Every name and text from the server goes in as text, never as HTML.
import { type AssigneeProgress, STATUS_TEXT } from "../assignments";
import { ApiError, api, app, copyText, duration, h, location_, setAttr, setText, shortTime, toast } from "../dom";
import { brand, expose, initPage, setTitle, shellTitle } from "../page";

initPage();

const { sessionId, token } = location_();
const root = app();
const REFRESH_MS = 15_000;
const SVG = "http://www.w3.org/2000/svg";

interface Join {
  joined: number;
  left: number | null;
}
interface Participant {
  id: string;
  name: string;
  role: string;
  joins: Join[];
  present_ms: number;
  present_share: number | null;
  chat: number;
  questions: number;
  upvotes: number;
  upvotes_received: number;
  reactions: number;
  hands: number;
  poll_votes: number;
  quiz_correct: number;
  quiz_answered: number;
  quiz_total: number;
  quiz_score: number | null;
}
interface Viewer {
  id: string;
  name: string;
  watched: [number, number][];
  watched_ms: number;
  watched_share: number | null;
  quiz_correct: number;
  quiz_answered: number;
  quiz_total: number;
  quiz_score: number | null;
  questions: { t: number; text: string }[];
}
interface Minute {
  minute: number;
  attendance: number;
  chat: number;
  questions: number;
  upvotes: number;
  votes: number;
  reactions: number;
  hands: number;
}
interface Report {
  session: { id: string; title: string; status: string; start_t: number; end_t: number; duration_ms: number; final: boolean };
  totals: Record<string, number>;
  participants: Participant[];
  polls: { id: string; question: string; t: number; quiz: boolean; anonymous: boolean; voters: number; eligible: number; participation: number | null }[];
  timeline: Minute[];
  top_questions: { id: string; text: string; name: string | null; votes: number; status: string; t: number }[];
  replay: { duration_ms: number; viewers: Viewer[] };
}

let current: Report | null = null;
expose({ view: () => current, you: null, status: () => "live" });

/** A length of time: tenths of a second under 10 s, else as `duration` says it. */
function span(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : duration(ms);
}

/** m:ss, or m:ss.t when the interval is shorter than a few seconds. */
function at(ms: number, precise: boolean): string {
  return precise ? `${shortTime(ms)}.${Math.floor((ms % 1000) / 100)}` : shortTime(ms);
}

function percent(share: number | null): string {
  return share === null ? "—" : `${Math.round(share * 1000) / 10}%`;
}

// -- a table that sorts by any column ------------------------------------------------------------------

interface Column<T> {
  key: string;
  label: string;
  value: (row: T) => number | string; // what it sorts by
  text?: (row: T) => string; // what it shows (default: the value)
  numeric?: boolean;
}

/** A table whose column headers are buttons: activating one sorts by it, again reverses. The
 * header's aria-sort says the order, so screen readers announce it. */
class SortTable<T> {
  readonly el: HTMLElement;
  private body = h("tbody");
  private heads = new Map<string, HTMLTableCellElement>();
  private rows: T[] = [];
  private sortKey: string;
  private ascending = true;

  constructor(
    private columns: Column<T>[],
    label: string,
    testid: string,
    private rowKey: (row: T) => string,
    initial: string,
  ) {
    this.sortKey = initial;
    const headRow = h("tr");
    for (const col of columns) {
      const th = h("th", { scope: "col", class: col.numeric ? "num" : "" });
      const button = h(
        "button",
        { type: "button", class: "sort", "data-key": col.key, onclick: () => this.sortBy(col.key) },
        col.label,
        h("span", { class: "sort-mark", "aria-hidden": "true" }),
      );
      th.appendChild(button);
      this.heads.set(col.key, th);
      headRow.appendChild(th);
    }
    this.el = h(
      "div",
      { class: "table-wrap" },
      h("table", { class: "report-table", "data-testid": testid }, h("caption", { class: "sr-only" }, label), h("thead", null, headRow), this.body),
    );
  }

  sortBy(key: string): void {
    if (this.sortKey === key) this.ascending = !this.ascending;
    else {
      this.sortKey = key;
      this.ascending = !this.columns.find((c) => c.key === key)?.numeric; // numbers: largest first
    }
    this.render();
  }

  set(rows: T[]): void {
    this.rows = rows;
    this.render();
  }

  private render(): void {
    const col = this.columns.find((c) => c.key === this.sortKey) ?? this.columns[0];
    const dir = this.ascending ? 1 : -1;
    const sorted = [...this.rows].sort((a, b) => {
      const x = col.value(a);
      const y = col.value(b);
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return c * dir || this.rowKey(a).localeCompare(this.rowKey(b));
    });
    for (const [key, th] of this.heads) {
      const mark = th.querySelector(".sort-mark")!;
      if (key === col.key) {
        th.setAttribute("aria-sort", this.ascending ? "ascending" : "descending");
        setText(mark, this.ascending ? " ▲" : " ▼");
      } else {
        th.removeAttribute("aria-sort");
        setText(mark, "");
      }
    }
    this.body.replaceChildren(
      ...sorted.map((row) =>
        h(
          "tr",
          { "data-id": this.rowKey(row) },
          ...this.columns.map((c, i) =>
            h(i === 0 ? "th" : "td", { class: c.numeric ? "num" : "", ...(i === 0 ? { scope: "row" } : {}) }, c.text ? c.text(row) : String(c.value(row))),
          ),
        ),
      ),
    );
  }
}

// -- charts: SVG drawn here ---------------------------------------------------------------------------

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

const W = 640;
const H = 180;
const PAD = { left: 36, right: 8, top: 10, bottom: 24 };

/** Minute-by-minute values as bars (activity) or a stepped area (attendance), with axes. */
function chart(label: string, testid: string, values: { minute: number; value: number }[], kind: "bars" | "area"): SVGSVGElement {
  const el = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, class: `chart chart-${kind}`, "data-testid": testid });
  el.appendChild(svg("title", {}, label));
  const n = Math.max(1, values.length);
  const max = Math.max(1, ...values.map((v) => v.value));
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const x = (i: number) => PAD.left + (i * iw) / n;
  const y = (v: number) => PAD.top + ih - (v * ih) / max;
  // Grid and y labels: 0, half, max.
  for (const v of [0, Math.round(max / 2), max]) {
    el.appendChild(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "chart-grid" }));
    el.appendChild(svg("text", { x: PAD.left - 6, y: y(v) + 4, class: "chart-axis", "text-anchor": "end" }, String(v)));
  }
  // x labels: about six minutes marks.
  const step = Math.max(1, Math.ceil(n / 6));
  for (let i = 0; i < values.length; i += step) {
    el.appendChild(svg("text", { x: x(i) + 2, y: H - 6, class: "chart-axis" }, `${values[i].minute} min`));
  }
  if (kind === "bars") {
    const bw = Math.max(1, iw / n - 2);
    values.forEach((v, i) => {
      const bar = svg("rect", { x: x(i) + 1, y: y(v.value), width: bw, height: Math.max(0, PAD.top + ih - y(v.value)), class: "chart-bar" });
      bar.appendChild(svg("title", {}, `minute ${v.minute}: ${v.value}`));
      el.appendChild(bar);
    });
  } else {
    let d = `M ${x(0)} ${y(0)}`;
    values.forEach((v, i) => (d += ` L ${x(i)} ${y(v.value)} L ${x(i + 1)} ${y(v.value)}`));
    d += ` L ${x(values.length)} ${y(0)} Z`;
    el.appendChild(svg("path", { d, class: "chart-area" }));
  }
  return el;
}

// -- the page --------------------------------------------------------------------------------------------

const title = h("h1", { class: "report-title" }, shellTitle() || "Engagement report");
const subtitle = h("p", { class: "muted", "data-testid": "report-status", "aria-live": "polite" }, "Loading…");
const csvLink = h(
  "a",
  {
    class: "btn btn-small",
    "data-testid": "report-csv",
    href: `/api/sessions/${encodeURIComponent(sessionId)}/report?format=csv&token=${encodeURIComponent(token)}`,
    download: `${sessionId}-report.csv`,
  },
  "Download CSV",
);
const refreshBtn = h("button", {
  type: "button",
  class: "btn btn-small",
  text: "Refresh",
  "data-testid": "report-refresh",
  onclick: () => {
    void load();
    void loadAssignments();
  },
});
const totalsBox = h("dl", { class: "report-totals", "data-testid": "report-totals" });
const charts = h("div", { class: "report-charts" });
const pollsBox = h("div");
const questionsBox = h("ol", { class: "report-questions", "data-testid": "top-questions" });

const people = new SortTable<Participant>(
  [
    { key: "name", label: "Name", value: (p) => p.name },
    { key: "role", label: "Role", value: (p) => p.role },
    { key: "joins", label: "Joins", value: (p) => p.joins.length, numeric: true },
    { key: "present", label: "Present", value: (p) => p.present_ms, text: (p) => span(p.present_ms), numeric: true },
    { key: "share", label: "Share", value: (p) => p.present_share ?? -1, text: (p) => percent(p.present_share), numeric: true },
    { key: "chat", label: "Chat", value: (p) => p.chat, numeric: true },
    { key: "questions", label: "Questions", value: (p) => p.questions, numeric: true },
    { key: "upvotes", label: "Upvotes", value: (p) => p.upvotes, numeric: true },
    { key: "votes", label: "Poll votes", value: (p) => p.poll_votes, numeric: true },
    {
      key: "quiz",
      label: "Quiz",
      value: (p) => p.quiz_score ?? -1,
      text: (p) => (p.quiz_total ? `${p.quiz_correct}/${p.quiz_total}` : "—"),
      numeric: true,
    },
    { key: "reactions", label: "Reactions", value: (p) => p.reactions, numeric: true },
    { key: "hands", label: "Hands", value: (p) => p.hands, numeric: true },
  ],
  "Participants of the live session",
  "participants-table",
  (p) => p.id,
  "name",
);

const viewers = new SortTable<Viewer>(
  [
    { key: "name", label: "Name", value: (v) => v.name },
    { key: "watched", label: "Watched", value: (v) => v.watched_ms, text: (v) => span(v.watched_ms), numeric: true },
    { key: "share", label: "Share", value: (v) => v.watched_share ?? -1, text: (v) => percent(v.watched_share), numeric: true },
    {
      key: "parts",
      label: "Parts watched",
      value: (v) => v.watched.length,
      text: (v) => v.watched.map(([a, b]) => `${at(a, b - a < 10_000)}–${at(b, b - a < 10_000)}`).join(", ") || "—",
      numeric: true,
    },
    {
      key: "quiz",
      label: "Quiz",
      value: (v) => v.quiz_score ?? -1,
      text: (v) => (v.quiz_total ? `${v.quiz_correct}/${v.quiz_total}` : "—"),
      numeric: true,
    },
    { key: "questions", label: "Questions", value: (v) => v.questions.length, numeric: true },
  ],
  "Replay viewers",
  "viewers-table",
  (v) => v.id,
  "name",
);

function section(heading: string, id: string, ...children: (Node | string)[]): HTMLElement {
  return h("section", { class: "card report-section", "aria-labelledby": id }, h("h2", { id }, heading), ...children);
}

const viewersEmpty = h("p", { class: "muted" }, "Nobody has watched the replay yet.");
const assignBox = h("div", { "data-testid": "assignments" }); // filled below

root.replaceChildren(
  h(
    "div",
    { class: "page page-report" },
    h(
      "header",
      { class: "topbar" },
      brand(),
      h("div", { class: "topbar-title" }, title, subtitle),
      h("div", { class: "controls" }, refreshBtn, csvLink),
    ),
    h(
      "div",
      { class: "report" },
      section("Summary", "sum-h", totalsBox),
      section("Over time", "time-h", charts),
      section("Participants", "people-h", people.el),
      section("Polls", "polls-h", pollsBox),
      section("Most upvoted questions", "top-h", questionsBox),
      section("Replay viewers", "viewers-h", viewersEmpty, viewers.el),
      section("Replay assignments", "assign-h", assignBox),
    ),
  ),
);

function render(r: Report): void {
  current = r;
  setText(title, r.session.title || "Engagement report");
  setTitle(r.session.title || "Engagement report", "Report");
  setText(
    subtitle,
    `${r.session.final ? "Final" : "Live, so far"} · ${duration(r.session.duration_ms)} · ${r.totals.learners} ${r.totals.learners === 1 ? "learner" : "learners"}`,
  );
  const t = r.totals;
  const facts: [string, string][] = [
    ["Learners", String(t.learners)],
    ["Peak attendance", String(t.peak_attendance)],
    ["Average attendance", String(t.average_attendance)],
    ["Chat messages", String(t.chat)],
    ["Questions", String(t.questions)],
    ["Poll votes", String(t.votes)],
    ["Reactions", String(t.reactions)],
    ["Hands raised", String(t.hands)],
  ];
  totalsBox.replaceChildren(...facts.map(([k, v]) => h("div", { class: "fact" }, h("dt", null, k), h("dd", null, v))));
  const activity = (m: Minute) => m.chat + m.questions + m.upvotes + m.votes + m.reactions + m.hands;
  charts.replaceChildren(
    h("h3", null, "Attendance (learners online, per minute)"),
    chart("Attendance per minute", "attendance-chart", r.timeline.map((m) => ({ minute: m.minute, value: m.attendance })), "area"),
    h("h3", null, "Activity (chat, questions, upvotes, votes, reactions, hands per minute)"),
    chart("Activity per minute", "activity-chart", r.timeline.map((m) => ({ minute: m.minute, value: activity(m) })), "bars"),
  );
  people.set(r.participants);
  pollsBox.replaceChildren(
    r.polls.length
      ? h(
          "ul",
          { class: "report-polls", "data-testid": "report-polls" },
          ...r.polls.map((p) =>
            h(
              "li",
              null,
              h("span", { class: "name" }, p.question),
              h("span", { class: "muted" }, ` — ${p.voters} of ${p.eligible} voted (${percent(p.participation)})${p.quiz ? " · quiz" : ""}${p.anonymous ? " · anonymous" : ""}`),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No polls."),
  );
  questionsBox.replaceChildren(
    ...r.top_questions.map((q) =>
      h("li", null, h("span", null, q.text), h("span", { class: "muted" }, ` — ${q.votes} ${q.votes === 1 ? "upvote" : "upvotes"} · ${q.name ?? "anonymous"} · ${shortTime(q.t)}`)),
    ),
  );
  if (!r.top_questions.length) questionsBox.replaceChildren(h("li", { class: "muted" }, "No upvoted questions."));
  viewersEmpty.hidden = r.replay.viewers.length > 0;
  viewers.el.hidden = r.replay.viewers.length === 0;
  viewers.set(r.replay.viewers);
}

let timer: number | undefined;
async function load(): Promise<void> {
  window.clearTimeout(timer);
  try {
    const r = await api<Report>(`/api/sessions/${encodeURIComponent(sessionId)}/report`, token);
    render(r);
    if (!r.session.final) timer = window.setTimeout(() => void load(), REFRESH_MS);
  } catch (err) {
    const e = err as ApiError;
    setText(subtitle, `The report could not be loaded: ${e.message}`);
  }
}

void load();

// -- replay assignments ------------------------------------------------------------------------------
// Trainers send the replay to learners with a deadline (POST /api/sessions/{id}/assignments) and
// follow each one's status, refreshed every REFRESH_MS; each assignee's personal link is copyable.

interface AssigneeRow extends AssigneeProgress {
  id: string;
  name: string;
  email: string | null;
  reason: string | null;
  link: string;
}
interface AssignmentItem {
  id: string;
  created_at: string;
  deadline: string;
  threshold: number;
  quiz_required: boolean;
  audience: "list" | "missed";
  counts: Record<AssigneeRow["status"], number>;
  assignees: AssigneeRow[];
}

const REASON_TEXT: Record<string, string> = { missed: "missed the session", left_early: "left early" };
const assignPath = `/api/sessions/${encodeURIComponent(sessionId)}/assignments`;

/** "Name <e-mail>", "Name, e-mail" or just "Name", one learner a line. */
function parseAssignees(text: string): { name: string; email?: string }[] {
  const out: { name: string; email?: string }[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^(.*?)[\s,;]*<?([^\s<>,;]+@[^\s<>,;]+?)>?$/.exec(line);
    if (m && m[1].trim()) out.push({ name: m[1].trim(), email: m[2] });
    else out.push({ name: line });
  }
  return out;
}

function assignmentsPanel(): HTMLElement {
  const inAWeek = new Date(Date.now() + 7 * 86_400_000);
  inAWeek.setSeconds(0, 0);
  const local = new Date(inAWeek.getTime() - inAWeek.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  const deadline = h("input", { id: "assign-deadline", type: "datetime-local", required: true, value: local, "data-testid": "assign-deadline" });
  const threshold = h("input", { id: "assign-threshold", type: "number", min: 1, max: 100, step: 1, value: 90, required: true, "data-testid": "assign-threshold" });
  const quiz = h("input", { id: "assign-quiz", type: "checkbox", "data-testid": "assign-quiz" });
  const toList = h("input", { type: "radio", name: "assign-audience", value: "list", checked: true, "data-testid": "assign-audience-list" });
  const toMissed = h("input", { type: "radio", name: "assign-audience", value: "missed", "data-testid": "assign-audience-missed" });
  const peopleLabel = h("label", { for: "assign-people", class: "field-label" });
  const people = h("textarea", { id: "assign-people", "data-testid": "assign-people", placeholder: "Ada Lovelace <ada@example.org>\nAlan Turing" });
  const error = h("p", { class: "form-error", role: "alert", "data-testid": "assign-error" });
  const submit: HTMLButtonElement = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "assign-create", text: "Assign the replay" });
  const labelPeople = () =>
    setText(
      peopleLabel,
      toMissed.checked
        ? "Who was expected (optional, one a line: name and e-mail): those who never came are assigned too"
        : "Learners, one a line: name, optionally an e-mail (Name <e-mail>)",
    );
  toList.addEventListener("change", labelPeople);
  toMissed.addEventListener("change", labelPeople);
  labelPeople();
  const form = h(
    "form",
    {
      class: "assignment-form",
      "data-testid": "assign-form",
      onsubmit: async (ev: Event) => {
        ev.preventDefault();
        setText(error, "");
        const when = new Date(deadline.value);
        if (Number.isNaN(when.getTime())) {
          setText(error, "Choose a deadline.");
          return;
        }
        const body = {
          deadline: when.toISOString(),
          threshold: Math.min(100, Math.max(1, Number(threshold.value) || 90)) / 100,
          quiz_required: quiz.checked,
          audience: toMissed.checked ? "missed" : "list",
          assignees: parseAssignees(people.value),
        };
        submit.disabled = true;
        try {
          const made = await api<AssignmentItem>(assignPath, token, { method: "POST", body });
          people.value = "";
          toast(`Assigned to ${made.assignees.length} ${made.assignees.length === 1 ? "learner" : "learners"}.`);
          await loadAssignments();
        } catch (err) {
          setText(error, (err as ApiError).message);
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("div", null, h("label", { for: "assign-deadline", class: "field-label" }, "Deadline"), deadline),
    h("div", null, h("label", { for: "assign-threshold", class: "field-label" }, "Share to watch (%)"), threshold),
    h("label", { class: "choice" }, quiz, h("span", null, "The replay's quiz must be answered")),
    h(
      "fieldset",
      { class: "wide" },
      h("legend", { class: "field-label" }, "Assign to"),
      h("label", { class: "choice" }, toList, h("span", null, "These learners")),
      h("label", { class: "choice" }, toMissed, h("span", null, "Everyone who missed the live session or left early")),
    ),
    h("div", { class: "wide" }, peopleLabel, people),
    h("p", { class: "muted wide" }, "Left early: their last time online ended more than 5 minutes before the session did."),
    h("div", { class: "wide" }, submit, error),
  );
  return h(
    "div",
    null,
    form,
    h(
      "p",
      { class: "assignment-actions" },
      h("a", { class: "btn btn-small", "data-testid": "assign-csv", href: `${assignPath}?format=csv&token=${encodeURIComponent(token)}`, download: `${sessionId}-assignments.csv` }, "Download CSV"),
    ),
    assignmentList,
  );
}

const assignmentList = h("div", { class: "assignment-list", "data-testid": "assignment-list", "aria-live": "polite" });

function assignmentView(a: AssignmentItem): HTMLElement {
  const due = new Date(a.deadline).toLocaleString();
  const c = a.counts;
  const rows = a.assignees.map((p) => {
    const input = h("input", { type: "text", readonly: true, value: p.link, "aria-label": `Personal link of ${p.name}`, "data-testid": "assignee-link" });
    const copy = h("button", {
      type: "button",
      class: "btn btn-small",
      text: "Copy",
      onclick: async () => toast((await copyText(p.link, input)) ? `Link for ${p.name} copied.` : "Copying failed; select the link and copy it."),
    });
    const status = h("span", { class: `badge badge-status-${p.status}`, "data-testid": "assignee-status", "data-status": p.status }, STATUS_TEXT[p.status] + (p.late ? " (late)" : ""));
    const row = h(
      "tr",
      { "data-testid": "assignee-row" },
      h("th", { scope: "row" }, p.name),
      h("td", null, p.email ?? "—"),
      h("td", null, p.reason ? REASON_TEXT[p.reason] ?? p.reason : "—"),
      h("td", null, status),
      h("td", { class: "num", "data-testid": "assignee-watched" }, percent(p.watched_share)),
      h("td", { class: "num" }, p.quiz_total ? `${p.quiz_answered}/${p.quiz_total}` : "—"),
      h("td", null, p.completed_at ? new Date(p.completed_at).toLocaleString() : "—"),
      h("td", null, h("div", { class: "assignment-link" }, input, copy)),
    );
    setAttr(row, "data-name", p.name);
    return row;
  });
  return h(
    "article",
    { class: "assignment-item", "data-testid": "assignment-item", "data-id": a.id },
    h("h3", null, `Due ${due} · at least ${Math.round(a.threshold * 100)}% watched${a.quiz_required ? " · quiz required" : ""}${a.audience === "missed" ? " · for those who missed it or left early" : ""}`),
    h("p", { class: "muted", "data-testid": "assignment-counts" }, `${c.completed} completed · ${c.in_progress} in progress · ${c.not_started} not started · ${c.overdue} overdue`),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "report-table" },
        h("caption", { class: "sr-only" }, `Assignees, due ${due}`),
        h(
          "thead",
          null,
          h("tr", null, ...["Name", "E-mail", "Why", "Status", "Watched", "Quiz", "Completed", "Personal link"].map((t) => h("th", { scope: "col" }, t))),
        ),
        h("tbody", null, ...rows),
      ),
    ),
  );
}

let assignTimer: number | undefined;
async function loadAssignments(): Promise<void> {
  window.clearTimeout(assignTimer);
  try {
    const r = await api<{ assignments: AssignmentItem[] }>(assignPath, token);
    assignmentList.replaceChildren(
      ...(r.assignments.length ? r.assignments.map(assignmentView) : [h("p", { class: "muted" }, "No assignments yet.")]),
    );
  } catch (err) {
    assignmentList.replaceChildren(h("p", { class: "form-error" }, `The assignments could not be loaded: ${(err as Error).message}`));
  }
  assignTimer = window.setTimeout(() => void loadAssignments(), REFRESH_MS);
}
assignBox.replaceChildren(assignmentsPanel());
void loadAssignments();

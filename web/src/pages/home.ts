// The home page (/): what Classcast is, creating a session with the admin key, and the recordings.
import { ApiError, api, app, duration, h, linkField, setText, show, store } from "../dom";
import { brand, expose, initPage } from "../page";

initPage();
expose({ view: () => null, you: null, status: () => "live" });

const KEY = "classcast:admin-key";
const root = app();

interface Session {
  id: string;
  title: string;
  status: string;
  recording: boolean;
  trainer_url: string;
  join_url: string;
  replay_url: string;
}

interface Recording {
  id: string;
  title?: string;
  date?: number;
  status?: string;
  duration_ms?: number;
  participants?: number;
  size_bytes?: number;
  error?: string;
  damage?: { error: string; recovered_events: number };
}

// -- create a session -------------------------------------------------------------------------------
const keyInput = h("input", {
  id: "admin-key",
  type: "password",
  "data-testid": "admin-key",
  autocomplete: "off",
  spellcheck: "false",
  placeholder: "From data/admin.key",
  value: store.get(KEY) ?? "",
});
const showKey = h("button", {
  type: "button",
  class: "btn btn-small btn-ghost",
  "aria-label": "Show the admin key",
  "aria-pressed": "false",
  text: "Show",
  onclick: () => {
    const visible = keyInput.type === "password";
    keyInput.type = visible ? "text" : "password";
    showKey.setAttribute("aria-pressed", String(visible));
    showKey.textContent = visible ? "Hide" : "Show";
  },
});
const titleInput = h("input", {
  id: "title",
  type: "text",
  "data-testid": "title-input",
  maxlength: 200,
  required: true,
  placeholder: "e.g. Intro to SQL",
  autocomplete: "off",
});
const recording = h("input", { type: "checkbox", "data-testid": "record-replay", checked: true });
const anonymize = h("input", { type: "checkbox", "data-testid": "anonymize-replay" });
const createBtn = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "create-session", text: "Create session" });
const formError = h("p", { class: "form-error", role: "alert", hidden: true });
const result = h("div", { class: "created", "aria-live": "polite" });

const form = h(
  "form",
  { class: "card", "aria-labelledby": "create-h", onsubmit: (ev: Event) => (ev.preventDefault(), void create()) },
  h("h2", { id: "create-h" }, "Create a session"),
  h("label", { for: "admin-key", class: "field-label" }, "Admin key"),
  h("div", { class: "link-row" }, keyInput, showKey),
  h("label", { for: "title", class: "field-label" }, "Title"),
  titleInput,
  h(
    "div",
    { class: "composer-row" },
    h("label", { class: "check" }, recording, "Record for replay"),
    h("label", { class: "check" }, anonymize, "Anonymise learners in the replay"),
  ),
  formError,
  createBtn,
  result,
);

function fail(el: HTMLElement, message: string): void {
  el.hidden = false;
  setText(el, message);
}

async function create(): Promise<void> {
  formError.hidden = true;
  const key = keyInput.value.trim();
  const title = titleInput.value.trim();
  if (!key) return fail(formError, "Enter the admin key (it is in data/admin.key on the server).");
  if (!title) {
    titleInput.focus();
    return fail(formError, "Give the session a title.");
  }
  createBtn.disabled = true;
  setText(createBtn, "Creating…");
  try {
    const s = await api<Session>("/api/sessions", key, {
      method: "POST",
      body: { title, recording: recording.checked, anonymize: anonymize.checked },
    });
    store.set(KEY, key);
    titleInput.value = "";
    result.replaceChildren(
      h("h3", null, `“${s.title}” is ready`),
      h("p", { class: "muted" }, "Open the trainer link to run the class and send the learner link to participants."),
      linkField("Trainer link", "trainer-url", s.trainer_url),
      linkField("Learner link", "join-url", s.join_url),
      linkField("Replay link", "replay-url", s.replay_url),
    );
    void loadRecordings();
  } catch (err) {
    const e = err as ApiError;
    fail(formError, e.code === "forbidden" || e.code === "unauthorized" ? "That admin key is not right." : e.message);
  } finally {
    createBtn.disabled = false;
    setText(createBtn, "Create session");
  }
}

// -- recordings -------------------------------------------------------------------------------------
const recList = h("ul", { class: "recordings", "data-testid": "recordings", "aria-label": "Recordings" });
const recInfo = h("p", { class: "muted", "aria-live": "polite" }, "Enter the admin key above to list the recordings.");
const refresh = h("button", {
  type: "button",
  class: "btn btn-small",
  text: "Refresh",
  "aria-label": "Refresh the recordings",
  onclick: () => void loadRecordings(),
});
const recordings = h(
  "section",
  { class: "card", "aria-labelledby": "rec-h" },
  h("div", { class: "panel-head" }, h("h2", { id: "rec-h" }, "Recordings"), refresh),
  recInfo,
  recList,
);

let loading = 0;
async function loadRecordings(): Promise<void> {
  const key = keyInput.value.trim();
  if (!key) {
    setText(recInfo, "Enter the admin key above to list the recordings.");
    return;
  }
  const mine = ++loading;
  setText(recInfo, "Loading…");
  try {
    const [{ recordings: recs }, sessions] = await Promise.all([
      api<{ recordings: Recording[] }>("/api/recordings", key),
      api<{ sessions: Session[] }>("/api/sessions", key).catch(() => ({ sessions: [] as Session[] })),
    ]);
    if (mine !== loading) return;
    store.set(KEY, key);
    const replay = new Map(sessions.sessions.map((s) => [s.id, s.replay_url]));
    // The replay link of a recording comes from its session (GET /api/sessions/{id}).
    await Promise.all(
      recs
        .filter((r) => !r.error && !replay.has(r.id))
        .map((r) =>
          api<Session>(`/api/sessions/${encodeURIComponent(r.id)}`, key)
            .then((s) => replay.set(r.id, s.replay_url))
            .catch(() => undefined),
        ),
    );
    if (mine !== loading) return;
    setText(recInfo, recs.length ? `${recs.length} ${recs.length === 1 ? "recording" : "recordings"}` : "No recordings yet.");
    recList.replaceChildren(...recs.map((r) => recordingItem(r, replay.get(r.id))));
  } catch (err) {
    if (mine !== loading) return;
    const e = err as ApiError;
    recList.replaceChildren();
    setText(recInfo, e.code === "forbidden" || e.code === "unauthorized" ? "That admin key is not right." : e.message);
  }
}

function recordingItem(r: Recording, url: string | undefined): HTMLElement {
  if (r.error) {
    return h("li", { class: "recording broken", "data-testid": "recording", "data-id": r.id }, h("span", { class: "name" }, r.title ?? r.id), h("span", { class: "muted" }, ` — ${r.error}`));
  }
  const when = r.date ? new Date(r.date * 1000) : null;
  const title = r.title || r.id;
  return h(
    "li",
    { class: "recording", "data-testid": "recording", "data-id": r.id },
    h(
      "div",
      { class: "rec-main" },
      url ? h("a", { href: url, class: "rec-title" }, title) : h("span", { class: "rec-title" }, title),
      h(
        "span",
        { class: "rec-meta" },
        [
          when ? when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "",
          duration(r.duration_ms ?? 0),
          `${r.participants ?? 0} ${r.participants === 1 ? "learner" : "learners"}`,
          r.status === "live" ? "live now" : "",
          r.damage ? "partly damaged" : "",
        ]
          .filter(Boolean)
          .join(" · "),
      ),
    ),
    url ? h("a", { href: url, class: "btn btn-small", "aria-label": `Watch the replay of ${title}` }, "Watch replay") : null,
  );
}

keyInput.addEventListener("change", () => void loadRecordings());

// -- page ---------------------------------------------------------------------------------------------
const health = h("p", { class: "muted server-state" });
void fetch("/healthz")
  .then((r) => (r.ok ? r.json() : null))
  .then((d) => {
    if (d) setText(health, `Server ${d.version} is running · ${d.live_sessions} live ${d.live_sessions === 1 ? "session" : "sessions"} right now.`);
  })
  .catch(() => undefined);

root.replaceChildren(
  h(
    "div",
    { class: "page page-home" },
    h("header", { class: "topbar" }, brand()),
    h(
      "div",
      { class: "home" },
      h(
        "section",
        { class: "hero" },
        h("h1", null, "Live classes you can replay"),
        h(
          "p",
          { class: "lead" },
          "Classcast is a self-hosted live-classroom server. A trainer runs the session; learners join from a plain link with just a name — no account, no install.",
        ),
        h(
          "ul",
          { class: "features" },
          h("li", null, "Chat, polls and quizzes, Q&A with upvotes, raised hands and reactions"),
          h("li", null, "A shared whiteboard with pages; the trainer decides who draws"),
          h("li", null, "Every session is recorded as it happens and can be replayed with chapters, search and a quiz"),
          h("li", null, "Reconnects pick up exactly where they left off"),
        ),
        health,
      ),
      form,
      recordings,
    ),
  ),
);
show(refresh, true);
if (keyInput.value) void loadRecordings();

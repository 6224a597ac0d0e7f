// Tiny DOM helpers. User text always goes in as text nodes or textContent, never as HTML.

export type Child = Node | string | number | null | undefined | false | Child[];
type Handler = (ev: any) => void;
export type Attrs = Record<string, string | number | boolean | Handler | null | undefined>;

// Properties set as DOM properties (so they reflect live state), not attributes.
const PROPS = new Set(["value", "checked", "disabled", "hidden", "selected", "indeterminate", "readOnly"]);

/** Build an element. `on<event>` attributes become listeners; `text` sets textContent. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) {
        if (PROPS.has(key)) (el as any)[key] = false;
        continue;
      }
      if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2).toLowerCase(), value as EventListener);
      } else if (key === "text") {
        el.textContent = String(value);
      } else if (key === "class") {
        el.className = String(value);
      } else if (key === "style") {
        el.style.cssText = String(value); // through the CSSOM: the CSP refuses style attributes
      } else if (PROPS.has(key)) {
        (el as any)[key] = value;
      } else {
        el.setAttribute(key, value === true ? "" : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(parent, c);
    else if (c instanceof Node) parent.appendChild(c);
    else parent.appendChild(document.createTextNode(String(c)));
  }
}

/** Set textContent only when it changes (avoids needless layout and screen reader chatter). */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

export function setAttr(el: Element, name: string, value: string | null): void {
  if (value === null) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

export function show(el: HTMLElement, visible: boolean): void {
  if (el.hidden === visible) el.hidden = !visible;
}

export function toggleClass(el: Element, name: string, on: boolean): void {
  if (el.classList.contains(name) !== on) el.classList.toggle(name, on);
}

/**
 * Keyed list rendering: keeps one element per key, creates missing ones, updates all, removes
 * those gone and puts them in order, moving as few nodes as possible. Focus (and a text caret)
 * inside a moved item is restored, so typing in a list item survives a re-sort.
 */
export function reconcile<T>(
  container: HTMLElement,
  cache: Map<string, HTMLElement>,
  items: T[],
  key: (item: T) => string,
  create: (item: T) => HTMLElement,
  update: (el: HTMLElement, item: T) => void,
): void {
  const active = document.activeElement as HTMLElement | null;
  const caret =
    active && (active instanceof HTMLInputElement || active instanceof HTMLTextAreaElement)
      ? saveCaret(active)
      : null;
  const seen = new Set<string>();
  const wanted: HTMLElement[] = [];
  for (const item of items) {
    const k = key(item);
    seen.add(k);
    let el = cache.get(k);
    if (!el) {
      el = create(item);
      cache.set(k, el);
    }
    update(el, item);
    wanted.push(el);
  }
  for (const [k, el] of cache) {
    if (!seen.has(k)) {
      el.remove();
      cache.delete(k);
    }
  }
  let cursor: ChildNode | null = container.firstChild;
  for (const el of wanted) {
    if (cursor === el) {
      cursor = el.nextSibling;
    } else {
      container.insertBefore(el, cursor);
    }
  }
  if (active && active !== document.activeElement && active.isConnected) {
    active.focus({ preventScroll: true });
    if (caret) caret();
  }
}

function saveCaret(el: HTMLInputElement | HTMLTextAreaElement): (() => void) | null {
  try {
    const { selectionStart: s, selectionEnd: e } = el;
    if (s === null || e === null) return null;
    return () => {
      try {
        el.setSelectionRange(s, e);
      } catch {
        /* inputs without selection */
      }
    };
  } catch {
    return null;
  }
}

// -- storage (sessionStorage can throw in private modes or sandboxed frames) ---------------------

export const store = {
  get(key: string): string | null {
    try {
      return sessionStorage.getItem(key);
    } catch {
      return null;
    }
  },
  set(key: string, value: string): void {
    try {
      sessionStorage.setItem(key, value);
    } catch {
      /* storage unavailable: the feature degrades to this page's lifetime */
    }
  },
  remove(key: string): void {
    try {
      sessionStorage.removeItem(key);
    } catch {
      /* ignore */
    }
  },
};

/** localStorage, for what should outlast the tab: a replay viewer's identity in this browser. */
export const persist = {
  get(key: string): string | null {
    try {
      return localStorage.getItem(key);
    } catch {
      return null;
    }
  },
  set(key: string, value: string): void {
    try {
      localStorage.setItem(key, value);
    } catch {
      /* storage unavailable: the identity lasts this page's lifetime */
    }
  },
  remove(key: string): void {
    try {
      localStorage.removeItem(key);
    } catch {
      /* ignore */
    }
  },
};

/** Keep a text field's content in sessionStorage so a reload keeps the draft. */
export function mirrorDraft(field: HTMLInputElement | HTMLTextAreaElement, key: string): void {
  const saved = store.get(key);
  if (saved && !field.value) field.value = saved;
  field.addEventListener("input", () => {
    if (field.value) store.set(key, field.value);
    else store.remove(key);
  });
}

export function clearDraft(field: HTMLInputElement | HTMLTextAreaElement, key: string): void {
  field.value = "";
  store.remove(key);
}

// -- formatting -----------------------------------------------------------------------------------

/** Milliseconds as h:mm:ss (always with hours, as the replay clock shows). */
export function clock(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(total / 3600);
  const mm = Math.floor((total % 3600) / 60);
  const ss = total % 60;
  return `${hh}:${String(mm).padStart(2, "0")}:${String(ss).padStart(2, "0")}`;
}

/** Short session time: m:ss under an hour, else h:mm:ss. */
export function shortTime(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  if (total >= 3600) return clock(ms);
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

/** A duration in words: "1 h 02 min", "12 min 05 s", "40 s". */
export function duration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(total / 3600);
  const mm = Math.floor((total % 3600) / 60);
  const ss = total % 60;
  if (hh) return `${hh} h ${String(mm).padStart(2, "0")} min`;
  if (mm) return `${mm} min ${String(ss).padStart(2, "0")} s`;
  return `${ss} s`;
}

/** Parse a deep-link time: "1h02m03s", "90s", "1m5s", "90" (seconds), "1:02:03". Null if invalid. */
export function parseTime(text: string | null): number | null {
  if (!text) return null;
  const s = text.trim().toLowerCase();
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(parseFloat(s) * 1000);
  const colon = /^(?:(\d+):)?(\d{1,2}):(\d{1,2})$/.exec(s);
  if (colon) return ((+(colon[1] ?? 0) * 60 + +colon[2]) * 60 + +colon[3]) * 1000;
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$/.exec(s);
  if (!m || (!m[1] && !m[2] && !m[3])) return null;
  return Math.round(((+(m[1] ?? 0) * 60 + +(m[2] ?? 0)) * 60 + parseFloat(m[3] ?? "0")) * 1000);
}

/** Format a time for a deep link: 1h02m03s, 5m07s, 42s. */
export function linkTime(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(total / 3600);
  const mm = Math.floor((total % 3600) / 60);
  const ss = total % 60;
  if (hh) return `${hh}h${String(mm).padStart(2, "0")}m${String(ss).padStart(2, "0")}s`;
  if (mm) return `${mm}m${String(ss).padStart(2, "0")}s`;
  return `${ss}s`;
}

// -- page plumbing --------------------------------------------------------------------------------

/** The session id from /s/<id>/<page>, and the token from ?token=. */
export function location_(): { sessionId: string; token: string; params: URLSearchParams } {
  const parts = location.pathname.split("/").filter(Boolean);
  const sessionId = parts[0] === "s" && parts[1] ? decodeURIComponent(parts[1]) : "";
  const params = new URLSearchParams(location.search);
  return { sessionId, token: params.get("token") ?? "", params };
}

export function app(): HTMLElement {
  let root = document.getElementById("app");
  if (!root) {
    root = h("main", { id: "app" });
    document.body.appendChild(root);
  }
  return root;
}

// -- toasts: short, polite messages for refused commands and copy confirmations --------------------

let toastBox: HTMLElement | null = null;

export function toast(message: string, kind: "info" | "error" = "info"): void {
  if (!toastBox || !toastBox.isConnected) {
    toastBox = h("div", { class: "toasts", "aria-live": "polite", role: "status" });
    document.body.appendChild(toastBox);
  }
  const item = h("div", { class: `toast toast-${kind}` }, message);
  toastBox.appendChild(item);
  while (toastBox.childElementCount > 4) toastBox.firstElementChild?.remove();
  setTimeout(() => item.classList.add("toast-out"), 3600);
  setTimeout(() => item.remove(), 4000);
}

/** Copy text to the clipboard (with a fallback for insecure origins); resolves to success. */
export async function copyText(text: string, source?: HTMLInputElement): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* fall through to the selection fallback */
  }
  const field = source ?? h("textarea", { class: "sr-only", "aria-hidden": "true" });
  if (!source) {
    (field as HTMLTextAreaElement).value = text;
    document.body.appendChild(field);
  }
  const prev = document.activeElement as HTMLElement | null;
  field.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  if (!source) field.remove();
  prev?.focus?.({ preventScroll: true });
  return ok;
}

/** A labelled, read-only link field with copy and open buttons. */
export function linkField(label: string, testid: string, url: string): HTMLElement {
  const id = `f-${testid}`;
  const input = h("input", {
    id,
    type: "text",
    readOnly: true,
    value: url,
    "data-testid": testid,
    class: "link-input",
    onfocus: (ev: FocusEvent) => (ev.target as HTMLInputElement).select(),
  });
  const copy = h("button", {
    type: "button",
    class: "btn btn-small",
    "data-testid": "copy",
    "aria-label": `Copy ${label.toLowerCase()}`,
    text: "Copy",
    onclick: async () => {
      const ok = await copyText(input.value, input);
      copy.textContent = ok ? "Copied ✓" : "Press Ctrl+C";
      setTimeout(() => (copy.textContent = "Copy"), 1800);
    },
  });
  return h(
    "div",
    { class: "link-field" },
    h("label", { for: id }, label),
    h(
      "div",
      { class: "link-row" },
      input,
      copy,
      h("a", { class: "btn btn-small btn-ghost", href: url, target: "_blank", rel: "noopener", "aria-label": `Open ${label.toLowerCase()} in a new tab` }, "Open"),
    ),
  );
}

/** Fetch JSON from the API with a bearer token; throws an Error carrying the server's code. */
export class ApiError extends Error {
  constructor(
    public code: string,
    message: string,
    public status: number,
  ) {
    super(message);
  }
}

export async function api<T = any>(
  path: string,
  token: string,
  init: { method?: string; body?: unknown } = {},
): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: init.method ?? "GET",
      headers: {
        Authorization: `Bearer ${token}`,
        Accept: "application/json",
        ...(init.body !== undefined ? { "Content-Type": "application/json" } : {}),
      },
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
    });
  } catch {
    throw new ApiError("network", "The server cannot be reached. Check your connection.", 0);
  }
  const text = await res.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = data?.error;
    throw new ApiError(err?.code ?? "http_error", err?.message ?? `The server answered ${res.status}.`, res.status);
  }
  return data as T;
}

/** requestAnimationFrame, or a short timeout while the page is hidden (rAF pauses then). */
export function nextFrame(cb: () => void): void {
  if (document.visibilityState === "hidden") setTimeout(cb, 50);
  else requestAnimationFrame(() => cb());
}

/** A small favicon so the browser does not ask the server for /favicon.ico. */
export function favicon(): void {
  if (document.querySelector("link[rel~=icon]")) return;
  const svg =
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'><rect width='32' height='32' rx='7' fill='%231d4ed8'/>" +
    "<path d='M9 11h14M9 16h10M9 21h7' stroke='white' stroke-width='3' stroke-linecap='round'/></svg>";
  document.head.appendChild(h("link", { rel: "icon", href: `data:image/svg+xml,${svg}` }));
}

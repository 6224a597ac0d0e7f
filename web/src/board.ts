// The whiteboard: a canvas renderer of the reducer's current page (logical 800 × 450, scaled to
// the element's width, devicePixelRatio-aware) and pointer input for pen, shapes, text and eraser.
// Pen strokes stream: wb.stroke.begin on pointerdown, wb.stroke.extend every ~50 ms, wb.stroke.end
// on pointerup. The board's state is only ever the reducer's; local previews cover the time until
// the server's events arrive.
import getStroke from "perfect-freehand";
import type { Element as BoardElement, State } from "./reducer";
import type { Ack, You } from "./live";
import { h, nextFrame, setAttr, setText, show, toggleClass } from "./dom";

export const BOARD_W = 800;
export const BOARD_H = 450;

export type Tool = "pen" | "line" | "rect" | "ellipse" | "arrow" | "text" | "eraser";

const TOOLS: { id: Tool; label: string; icon: string; key: string }[] = [
  { id: "pen", label: "Pen", icon: "✎", key: "p" },
  { id: "line", label: "Line", icon: "╱", key: "l" },
  { id: "rect", label: "Rectangle", icon: "▭", key: "r" },
  { id: "ellipse", label: "Ellipse", icon: "◯", key: "o" },
  { id: "arrow", label: "Arrow", icon: "➚", key: "a" },
  { id: "text", label: "Text", icon: "T", key: "t" },
  { id: "eraser", label: "Eraser", icon: "⌫", key: "e" },
];

const COLORS: { value: string; name: string }[] = [
  { value: "#111827", name: "Black" },
  { value: "#dc2626", name: "Red" },
  { value: "#2563eb", name: "Blue" },
  { value: "#16a34a", name: "Green" },
  { value: "#d97706", name: "Orange" },
  { value: "#7c3aed", name: "Purple" },
  { value: "#db2777", name: "Pink" },
  { value: "#6b7280", name: "Grey" },
];

const WIDTHS: { value: number; name: string; text: number }[] = [
  { value: 2, name: "Fine", text: 16 },
  { value: 4, name: "Medium", text: 24 },
  { value: 8, name: "Thick", text: 36 },
  { value: 16, name: "Marker", text: 56 },
];

const EXTEND_MS = 50;
const MAX_PAIRS_PER_MESSAGE = 500;
const MAX_PAIRS_PER_STROKE = 5000;

export interface BoardOptions {
  getState: () => State | null;
  mode: "trainer" | "learner" | "replay";
  you: () => You | null;
  send?: (command: string, payload?: Record<string, unknown>) => Promise<Ack>;
  /** Whether the session is live and connected (drawing commands would be accepted). */
  active: () => boolean;
  toast: (message: string) => void;
}

export interface Board {
  el: HTMLElement;
  /** Schedule a redraw and a toolbar refresh (coalesced per animation frame). */
  invalidate(): void;
}

interface LocalStroke {
  id: string | null;
  page: string;
  color: string;
  width: number;
  points: number[]; // flat, logical units
  sent: number; // how many numbers the server has (or is being sent)
  chain: Promise<void>;
  ticking: boolean;
  up: boolean; // the pointer was released
  finished: boolean; // wb.stroke.end acknowledged (or failed)
  failed: boolean;
  doneAt: number;
}

interface PendingShape {
  id: string | null;
  page: string;
  el: BoardElement;
  since: number;
}

const clampX = (x: number) => Math.min(BOARD_W, Math.max(0, Math.round(x * 10) / 10));
const clampY = (y: number) => Math.min(BOARD_H, Math.max(0, Math.round(y * 10) / 10));

export function createBoard(opts: BoardOptions): Board {
  const interactive = opts.mode !== "replay" && !!opts.send;
  let tool: Tool = "pen";
  let color = COLORS[0].value;
  let width = WIDTHS[1].value;

  // -- DOM ---------------------------------------------------------------------------------------
  const canvas = h("canvas", {
    "data-testid": "board",
    class: "board-canvas",
    role: "img",
    "aria-label": "Whiteboard",
  });
  const textInput = h("input", {
    type: "text",
    class: "board-text-input",
    hidden: true,
    maxlength: 500,
    "aria-label": "Text to place on the board (Enter to place, Escape to cancel)",
  });
  const wrap = h("div", { class: "board-wrap" }, canvas, textInput);
  const ctx = canvas.getContext("2d")!;

  const toolButtons = new Map<Tool, HTMLButtonElement>();
  const colorButtons = new Map<string, HTMLButtonElement>();
  const widthButtons = new Map<number, HTMLButtonElement>();

  const toolbar = h("div", { class: "board-toolbar", role: "toolbar", "aria-label": "Whiteboard tools" });
  if (interactive) {
    const toolGroup = h("div", { class: "tool-group", role: "group", "aria-label": "Tool" });
    for (const t of TOOLS) {
      const b = h(
        "button",
        {
          type: "button",
          class: "tool-btn",
          "data-testid": "tool",
          "data-tool": t.id,
          "aria-label": t.label,
          title: `${t.label} (${t.key.toUpperCase()})`,
          "aria-pressed": String(t.id === tool),
          onclick: () => setTool(t.id),
        },
        h("span", { "aria-hidden": "true" }, t.icon),
      );
      toolButtons.set(t.id, b);
      toolGroup.appendChild(b);
    }
    const colorGroup = h("div", { class: "tool-group", role: "group", "aria-label": "Colour" });
    for (const c of COLORS) {
      const b = h("button", {
        type: "button",
        class: "swatch",
        style: `--swatch:${c.value}`,
        "data-testid": "color",
        "data-color": c.value,
        "aria-label": `Colour ${c.name}`,
        title: c.name,
        "aria-pressed": String(c.value === color),
        onclick: () => {
          color = c.value;
          refreshToolbar();
        },
      });
      colorButtons.set(c.value, b);
      colorGroup.appendChild(b);
    }
    const widthGroup = h("div", { class: "tool-group", role: "group", "aria-label": "Width" });
    for (const w of WIDTHS) {
      const b = h(
        "button",
        {
          type: "button",
          class: "width-btn",
          "data-testid": "width",
          "data-width": w.value,
          "aria-label": `Width ${w.name} (${w.value})`,
          title: w.name,
          "aria-pressed": String(w.value === width),
          onclick: () => {
            width = w.value;
            refreshToolbar();
          },
        },
        h("span", { class: "width-dot", style: `--w:${Math.min(14, w.value + 2)}px`, "aria-hidden": "true" }),
      );
      widthButtons.set(w.value, b);
      widthGroup.appendChild(b);
    }
    const historyGroup = h(
      "div",
      { class: "tool-group", role: "group", "aria-label": "History" },
      h("button", { type: "button", class: "tool-btn", "data-testid": "undo", "aria-label": "Undo", title: "Undo (Ctrl+Z)", onclick: () => history("wb.undo") }, h("span", { "aria-hidden": "true" }, "↶")),
      h("button", { type: "button", class: "tool-btn", "data-testid": "redo", "aria-label": "Redo", title: "Redo (Ctrl+Shift+Z)", onclick: () => history("wb.redo") }, h("span", { "aria-hidden": "true" }, "↷")),
    );
    toolbar.append(toolGroup, colorGroup, widthGroup, historyGroup);
    if (opts.mode === "trainer") {
      historyGroup.appendChild(
        h("button", {
          type: "button",
          class: "tool-btn tool-text",
          "data-testid": "board-clear",
          "aria-label": "Clear this page",
          title: "Clear this page (undo restores it)",
          text: "Clear",
          onclick: () => command("wb.clear", { page_id: opts.getState()?.current }),
        }),
      );
    }
  }

  // Pages (trainer: switch and add; everyone: which page this is) and the drawing permission.
  const pagesList = h("div", { class: "page-list", role: "group", "aria-label": "Pages" });
  const pageCache = new Map<string, HTMLButtonElement>();
  const pageInfo = h("span", { class: "page-info" });
  const permit = h("input", {
    type: "checkbox",
    id: "permit-draw",
    "data-testid": "permit-draw",
    onchange: () => {
      const want = permit.checked;
      void command("wb.permit", { learners_can_draw: want }).then((ok) => {
        if (!ok) permit.checked = !want;
      });
    },
  });
  const pageBar = h("div", { class: "board-pages" });
  if (opts.mode === "trainer") {
    pageBar.append(
      h("span", { class: "page-label", id: "pages-label" }, "Pages"),
      pagesList,
      h("button", {
        type: "button",
        class: "btn btn-small",
        "data-testid": "page-add",
        "aria-label": "Add a page",
        text: "+ Page",
        onclick: () => command("wb.page.add", {}),
      }),
      h("label", { class: "check permit" }, permit, "Learners can draw"),
    );
  } else {
    pageBar.append(pageInfo);
  }
  const note = h("span", { class: "board-note" });
  pageBar.appendChild(note);

  // The canvas keeps 16:9 within whatever room its box gets (the live pages size it to the screen).
  const fit = h("div", { class: "board-fit" }, wrap);
  const el = h("section", { class: "board-panel", "aria-label": "Whiteboard" }, toolbar, fit, pageBar);

  // -- drawing state -------------------------------------------------------------------------------
  const strokes: LocalStroke[] = []; // local strokes being drawn or awaiting their final events
  const pendingShapes: PendingShape[] = [];
  const hiddenIds = new Set<string>(); // erased locally, awaiting the server
  let draft: { kind: Tool; x1: number; y1: number; x2: number; y2: number } | null = null;
  let activePointer: number | null = null;
  let activeStroke: LocalStroke | null = null;
  let erasing = false;
  let textAt: { x: number; y: number; page: string } | null = null;

  const canDraw = (): boolean => {
    if (!interactive) return false;
    const s = opts.getState();
    const you = opts.you();
    if (!s || !you || !opts.active() || s.status !== "live") return false;
    return you.role === "trainer" || s.learnersCanDraw;
  };

  function setTool(t: Tool): void {
    tool = t;
    commitText();
    refreshToolbar();
  }

  async function command(name: string, payload: Record<string, unknown>): Promise<Ack | null> {
    if (!opts.send) return null;
    const ack = await opts.send(name, payload);
    if (!ack.ok) {
      opts.toast(ack.error?.message ?? "The board refused that.");
      return null;
    }
    return ack;
  }

  async function history(name: "wb.undo" | "wb.redo"): Promise<void> {
    if (!opts.send) return;
    const ack = await opts.send(name, {});
    if (!ack.ok) {
      const code = ack.error?.code;
      opts.toast(code === "nothing_to_undo" ? (name === "wb.undo" ? "Nothing to undo" : "Nothing to redo") : ack.error?.message ?? "Refused");
    }
  }

  function toLogical(ev: PointerEvent | MouseEvent): { x: number; y: number } {
    const r = canvas.getBoundingClientRect();
    return {
      x: clampX(((ev.clientX - r.left) / (r.width || 1)) * BOARD_W),
      y: clampY(((ev.clientY - r.top) / (r.height || 1)) * BOARD_H),
    };
  }

  // -- pen streaming ---------------------------------------------------------------------------------

  function beginStroke(x: number, y: number): void {
    const s = opts.getState();
    if (!s) return;
    const ls: LocalStroke = {
      id: null,
      page: s.current,
      color,
      width,
      points: [x, y],
      sent: 2,
      chain: Promise.resolve(),
      ticking: false,
      up: false,
      finished: false,
      failed: false,
      doneAt: 0,
    };
    strokes.push(ls);
    activeStroke = ls;
    ls.chain = (async () => {
      const ack = await opts.send!("wb.stroke.begin", {
        page_id: ls.page,
        color: ls.color,
        width: ls.width,
        points: ls.points.slice(0, 2),
      });
      if (!ack.ok || !ack.id) {
        ls.failed = true;
        ls.finished = true;
        opts.toast(ack.error?.message ?? "Drawing was refused.");
        invalidate();
        return;
      }
      ls.id = ack.id;
    })();
    const timer = setInterval(() => {
      if (ls.up || ls.failed) {
        clearInterval(timer);
        return;
      }
      if (!ls.ticking && ls.id && ls.points.length > ls.sent) {
        ls.ticking = true;
        ls.chain = ls.chain.then(() => flush(ls, false)).finally(() => (ls.ticking = false));
      }
    }, EXTEND_MS);
  }

  async function flush(ls: LocalStroke, all: boolean): Promise<void> {
    while (!ls.failed && ls.id && ls.points.length > ls.sent) {
      const chunk = ls.points.slice(ls.sent, ls.sent + MAX_PAIRS_PER_MESSAGE * 2);
      ls.sent += chunk.length;
      const ack = await opts.send!("wb.stroke.extend", { element_id: ls.id, points: chunk });
      if (!ack.ok) {
        const code = ack.error?.code;
        if (code === "rate_limited") {
          // Nothing was added: send these points again shortly.
          ls.sent -= chunk.length;
          if (!all) return;
          await new Promise((r) => setTimeout(r, 250));
          continue;
        }
        // A lost permission, a full stroke or page: keep what the server has and stop.
        ls.failed = code !== "limit_reached" && code !== "stroke_ended";
        ls.points.length = ls.sent - chunk.length;
        ls.sent = ls.points.length;
        if (code !== "stroke_ended") opts.toast(ack.error?.message ?? "Drawing was refused.");
        return;
      }
      if (!all) return;
    }
  }

  function addPoint(ls: LocalStroke, x: number, y: number): void {
    const n = ls.points.length;
    if (n >= MAX_PAIRS_PER_STROKE * 2) return;
    const dx = x - ls.points[n - 2];
    const dy = y - ls.points[n - 1];
    if (dx * dx + dy * dy < 0.5) return;
    ls.points.push(x, y);
  }

  function endStroke(ls: LocalStroke): void {
    ls.up = true;
    activeStroke = null;
    ls.chain = ls.chain
      .then(() => flush(ls, true))
      .then(async () => {
        if (ls.id) {
          const ack = await opts.send!("wb.stroke.end", { element_id: ls.id });
          if (!ack.ok && ack.error?.code !== "stroke_ended") opts.toast(ack.error?.message ?? "Drawing was refused.");
        }
      })
      .finally(() => {
        ls.finished = true;
        ls.doneAt = performance.now();
        invalidate();
      });
  }

  // -- pointer input ---------------------------------------------------------------------------------

  canvas.addEventListener("pointerdown", (ev) => {
    if (!canDraw() || activePointer !== null) return;
    if (ev.pointerType === "mouse" && ev.button !== 0) return;
    ev.preventDefault();
    canvas.focus({ preventScroll: true });
    const p = toLogical(ev);
    if (tool === "text") {
      commitText();
      openText(p.x, p.y);
      return;
    }
    commitText();
    activePointer = ev.pointerId;
    try {
      canvas.setPointerCapture(ev.pointerId);
    } catch {
      /* synthetic events have no capture */
    }
    if (tool === "pen") beginStroke(p.x, p.y);
    else if (tool === "eraser") {
      erasing = true;
      eraseAt(p.x, p.y);
    } else draft = { kind: tool, x1: p.x, y1: p.y, x2: p.x, y2: p.y };
    invalidate();
  });

  canvas.addEventListener("pointermove", (ev) => {
    if (ev.pointerId !== activePointer) return;
    const events = typeof ev.getCoalescedEvents === "function" ? ev.getCoalescedEvents() : [];
    const list = events.length ? events : [ev];
    for (const e of list) {
      const p = toLogical(e);
      if (activeStroke) addPoint(activeStroke, p.x, p.y);
      else if (erasing) eraseAt(p.x, p.y);
      else if (draft) {
        draft.x2 = p.x;
        draft.y2 = p.y;
      }
    }
    invalidate();
  });

  const release = (ev: PointerEvent) => {
    if (ev.pointerId !== activePointer) return;
    activePointer = null;
    if (activeStroke) {
      const p = toLogical(ev);
      if (ev.type === "pointerup") addPoint(activeStroke, p.x, p.y);
      endStroke(activeStroke);
    } else if (erasing) {
      erasing = false;
    } else if (draft) {
      const d = draft;
      draft = null;
      if (ev.type === "pointerup" && Math.hypot(d.x2 - d.x1, d.y2 - d.y1) >= 2) void placeShape(d);
    }
    invalidate();
  };
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);
  canvas.addEventListener("lostpointercapture", (ev) => {
    if (ev.pointerId === activePointer) release(ev);
  });

  async function placeShape(d: { kind: Tool; x1: number; y1: number; x2: number; y2: number }): Promise<void> {
    const s = opts.getState();
    if (!s) return;
    const payload = { page_id: s.current, kind: d.kind, x1: d.x1, y1: d.y1, x2: d.x2, y2: d.y2, color, width };
    const pending: PendingShape = {
      id: null,
      page: s.current,
      el: { ...payload, id: "", kind: d.kind as BoardElement["kind"], author: null, z: 0 },
      since: performance.now(),
    };
    pendingShapes.push(pending);
    const ack = await command("wb.shape", payload);
    if (!ack) pendingShapes.splice(pendingShapes.indexOf(pending), 1);
    else pending.id = ack.id ?? null;
    invalidate();
  }

  // -- text ------------------------------------------------------------------------------------------

  function openText(x: number, y: number): void {
    const s = opts.getState();
    if (!s) return;
    textAt = { x, y, page: s.current };
    const size = textSize();
    textInput.value = "";
    textInput.style.left = `${(x / BOARD_W) * 100}%`;
    textInput.style.top = `${(y / BOARD_H) * 100}%`;
    textInput.style.color = color;
    textInput.style.fontSize = `${(size * (canvas.clientWidth || BOARD_W)) / BOARD_W}px`;
    textInput.hidden = false;
    textInput.focus();
  }

  function textSize(): number {
    return WIDTHS.find((w) => w.value === width)?.text ?? 24;
  }

  function commitText(): void {
    if (!textAt) return;
    const at = textAt;
    textAt = null;
    const text = textInput.value.trim();
    textInput.hidden = true;
    textInput.value = "";
    if (!text) return;
    const payload = { page_id: at.page, x: at.x, y: at.y, text, color, size: textSize() };
    const pending: PendingShape = {
      id: null,
      page: at.page,
      el: { ...payload, id: "", kind: "text", author: null, z: 0 },
      since: performance.now(),
    };
    pendingShapes.push(pending);
    void command("wb.text", payload).then((ack) => {
      if (!ack) pendingShapes.splice(pendingShapes.indexOf(pending), 1);
      else pending.id = ack.id ?? null;
      invalidate();
    });
    invalidate();
  }

  textInput.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      commitText();
      canvas.focus({ preventScroll: true });
    } else if (ev.key === "Escape") {
      ev.preventDefault();
      textAt = null;
      textInput.hidden = true;
      canvas.focus({ preventScroll: true });
    }
  });
  textInput.addEventListener("blur", () => commitText());

  // -- eraser ----------------------------------------------------------------------------------------

  function eraseAt(x: number, y: number): void {
    const s = opts.getState();
    const you = opts.you();
    const page = s?.pages.get(s.current);
    if (!s || !page || !you) return;
    const items = [...page.values()];
    for (let i = items.length - 1; i >= 0; i--) {
      const item = items[i];
      if (hiddenIds.has(item.id)) continue;
      if (you.role !== "trainer" && item.author !== you.id) continue;
      if (!hit(item, x, y)) continue;
      hiddenIds.add(item.id);
      void command("wb.erase", { element_id: item.id }).then((ack) => {
        if (!ack) hiddenIds.delete(item.id);
        invalidate();
      });
      return;
    }
  }

  function hit(item: BoardElement, x: number, y: number): boolean {
    const tol = Math.max(6, (item.width ?? 3) / 2 + 4);
    switch (item.kind) {
      case "stroke": {
        const p = item.points as number[];
        if (p.length === 2) return Math.hypot(p[0] - x, p[1] - y) <= tol;
        for (let i = 0; i + 3 < p.length; i += 2) if (segDist(x, y, p[i], p[i + 1], p[i + 2], p[i + 3]) <= tol) return true;
        return false;
      }
      case "line":
      case "arrow":
        return segDist(x, y, item.x1, item.y1, item.x2, item.y2) <= tol;
      case "rect": {
        const [l, r] = [Math.min(item.x1, item.x2), Math.max(item.x1, item.x2)];
        const [t, b] = [Math.min(item.y1, item.y2), Math.max(item.y1, item.y2)];
        return (
          segDist(x, y, l, t, r, t) <= tol ||
          segDist(x, y, r, t, r, b) <= tol ||
          segDist(x, y, r, b, l, b) <= tol ||
          segDist(x, y, l, b, l, t) <= tol
        );
      }
      case "ellipse": {
        const cx = (item.x1 + item.x2) / 2;
        const cy = (item.y1 + item.y2) / 2;
        const rx = Math.abs(item.x2 - item.x1) / 2 || 1;
        const ry = Math.abs(item.y2 - item.y1) / 2 || 1;
        const k = Math.hypot((x - cx) / rx, (y - cy) / ry);
        return Math.abs(k - 1) * Math.min(rx, ry) <= tol;
      }
      case "text": {
        const box = textBox(item);
        return x >= box.x - 4 && x <= box.x + box.w + 4 && y >= box.y - 4 && y <= box.y + box.h + 4;
      }
    }
    return false;
  }

  function textBox(item: BoardElement): { x: number; y: number; w: number; h: number } {
    const size = item.size ?? 24;
    const lines = String(item.text).split("\n");
    ctx.save();
    ctx.font = font(size);
    const w = Math.max(...lines.map((l) => ctx.measureText(l).width));
    ctx.restore();
    return { x: item.x, y: item.y, w, h: lines.length * size * 1.2 };
  }

  // -- keyboard --------------------------------------------------------------------------------------

  canvas.addEventListener("keydown", (ev) => {
    if (!canDraw()) return;
    const mod = ev.ctrlKey || ev.metaKey;
    if (mod && ev.key.toLowerCase() === "z") {
      ev.preventDefault();
      void history(ev.shiftKey ? "wb.redo" : "wb.undo");
    } else if (mod && ev.key.toLowerCase() === "y") {
      ev.preventDefault();
      void history("wb.redo");
    } else if (!mod && !ev.altKey && ev.key === "Enter" && tool === "text") {
      ev.preventDefault();
      openText(BOARD_W / 2 - 100, BOARD_H / 2 - 12);
    } else if (!mod && !ev.altKey) {
      const t = TOOLS.find((x) => x.key === ev.key.toLowerCase());
      if (t) {
        ev.preventDefault();
        setTool(t.id);
      }
    }
  });

  // -- rendering -------------------------------------------------------------------------------------

  const pathCache = new Map<string, { n: number; done: boolean; width: number; path: Path2D }>();
  let frame = 0;

  function invalidate(): void {
    if (frame) return;
    frame = 1;
    nextFrame(() => {
      frame = 0;
      render();
      refreshToolbar();
    });
  }

  function resize(): void {
    const cssW = wrap.clientWidth;
    if (!cssW) return;
    const dpr = window.devicePixelRatio || 1;
    const cssH = (cssW * BOARD_H) / BOARD_W;
    const w = Math.round(cssW * dpr);
    const hgt = Math.round(cssH * dpr);
    if (canvas.width !== w || canvas.height !== hgt) {
      canvas.width = w;
      canvas.height = hgt;
    }
    if (textAt) textInput.style.fontSize = `${(textSize() * cssW) / BOARD_W}px`;
    render();
  }
  new ResizeObserver(() => resize()).observe(wrap);
  const watchDpr = () => {
    const mq = matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`);
    mq.addEventListener("change", () => {
      resize();
      watchDpr();
    }, { once: true });
  };
  watchDpr();

  function render(): void {
    const W = canvas.width;
    const H = canvas.height;
    if (!W || !H) return;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, W, H);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, W, H);
    ctx.setTransform(W / BOARD_W, 0, 0, H / BOARD_H, 0, 0);
    const s = opts.getState();
    if (!s) return;
    const page = s.pages.get(s.current);
    const now = performance.now();
    // Local strokes stand in for the server's copy until the server has all of their points.
    const previewed = new Set<string>();
    for (let i = strokes.length - 1; i >= 0; i--) {
      const ls = strokes[i];
      const server = ls.id ? s.pages.get(ls.page)?.get(ls.id) : undefined;
      const caughtUp = server && server.done && server.points.length >= ls.points.length;
      if (ls.failed || (ls.finished && (caughtUp || !ls.id || now - ls.doneAt > 3000))) {
        strokes.splice(i, 1);
        continue;
      }
      if (ls.id) previewed.add(ls.id);
    }
    for (let i = pendingShapes.length - 1; i >= 0; i--) {
      const p = pendingShapes[i];
      if ((p.id && s.index.has(p.id)) || now - p.since > 10_000) pendingShapes.splice(i, 1);
    }
    if (page) {
      for (const item of page.values()) {
        if (hiddenIds.has(item.id)) {
          continue;
        }
        if (previewed.has(item.id)) continue;
        drawElement(item);
      }
      if (pathCache.size > page.size * 2 + 64) prune(s);
    }
    for (const ls of strokes) {
      if (ls.page !== s.current) continue;
      ctx.fillStyle = ls.color;
      ctx.fill(strokePath(ls.points, ls.width, ls.up));
    }
    for (const p of pendingShapes) if (p.page === s.current) drawElement(p.el);
    if (draft) {
      drawElement({
        id: "",
        kind: draft.kind as BoardElement["kind"],
        author: null,
        z: 0,
        color,
        width,
        x1: draft.x1,
        y1: draft.y1,
        x2: draft.x2,
        y2: draft.y2,
      });
    }
    for (const id of hiddenIds) if (!s.index.has(id)) hiddenIds.delete(id);
  }

  function prune(s: State): void {
    for (const id of pathCache.keys()) if (!s.index.has(id)) pathCache.delete(id);
  }

  function cachedStroke(item: BoardElement): Path2D {
    const pts = item.points as number[];
    const c = pathCache.get(item.id);
    if (c && c.n === pts.length && c.done === !!item.done && c.width === item.width) return c.path;
    const path = strokePath(pts, item.width ?? 3, !!item.done);
    pathCache.set(item.id, { n: pts.length, done: !!item.done, width: item.width, path });
    return path;
  }

  function drawElement(item: BoardElement): void {
    ctx.strokeStyle = item.color;
    ctx.fillStyle = item.color;
    ctx.lineWidth = item.width ?? 3;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    switch (item.kind) {
      case "stroke":
        ctx.fill(item.id ? cachedStroke(item) : strokePath(item.points, item.width ?? 3, !!item.done));
        break;
      case "line":
        ctx.beginPath();
        ctx.moveTo(item.x1, item.y1);
        ctx.lineTo(item.x2, item.y2);
        ctx.stroke();
        break;
      case "arrow": {
        const angle = Math.atan2(item.y2 - item.y1, item.x2 - item.x1);
        const head = Math.max(10, (item.width ?? 3) * 3.5);
        ctx.beginPath();
        ctx.moveTo(item.x1, item.y1);
        ctx.lineTo(item.x2, item.y2);
        ctx.moveTo(item.x2, item.y2);
        ctx.lineTo(item.x2 - head * Math.cos(angle - Math.PI / 7), item.y2 - head * Math.sin(angle - Math.PI / 7));
        ctx.moveTo(item.x2, item.y2);
        ctx.lineTo(item.x2 - head * Math.cos(angle + Math.PI / 7), item.y2 - head * Math.sin(angle + Math.PI / 7));
        ctx.stroke();
        break;
      }
      case "rect":
        ctx.strokeRect(
          Math.min(item.x1, item.x2),
          Math.min(item.y1, item.y2),
          Math.abs(item.x2 - item.x1),
          Math.abs(item.y2 - item.y1),
        );
        break;
      case "ellipse":
        ctx.beginPath();
        ctx.ellipse(
          (item.x1 + item.x2) / 2,
          (item.y1 + item.y2) / 2,
          Math.abs(item.x2 - item.x1) / 2,
          Math.abs(item.y2 - item.y1) / 2,
          0,
          0,
          Math.PI * 2,
        );
        ctx.stroke();
        break;
      case "text": {
        const size = item.size ?? 24;
        ctx.font = font(size);
        ctx.textBaseline = "top";
        String(item.text)
          .split("\n")
          .forEach((line, i) => ctx.fillText(line, item.x, item.y + i * size * 1.2));
        break;
      }
    }
  }

  // -- toolbar state -------------------------------------------------------------------------------

  let lastCursor = "";
  function refreshToolbar(): void {
    const s = opts.getState();
    const drawable = canDraw();
    for (const [id, b] of toolButtons) setAttr(b, "aria-pressed", String(id === tool));
    for (const [c, b] of colorButtons) setAttr(b, "aria-pressed", String(c === color));
    for (const [w, b] of widthButtons) setAttr(b, "aria-pressed", String(w === width));
    if (opts.mode === "learner") show(toolbar, drawable);
    for (const b of toolbar.querySelectorAll("button")) (b as HTMLButtonElement).disabled = !drawable;
    toggleClass(wrap, "drawable", drawable);
    const cursor = !drawable ? "default" : tool === "text" ? "text" : tool === "eraser" ? "cell" : "crosshair";
    if (cursor !== lastCursor) {
      canvas.style.cursor = cursor;
      lastCursor = cursor;
    }
    setAttr(canvas, "tabindex", drawable ? "0" : null);
    if (!s) return;
    const ids = [...s.pages.keys()];
    const index = ids.indexOf(s.current) + 1;
    const count = s.pages.get(s.current)?.size ?? 0;
    setAttr(
      canvas,
      "aria-label",
      `Whiteboard, page ${index} of ${ids.length}, ${count} ${count === 1 ? "item" : "items"}` +
        (drawable ? `. Tool: ${tool}. Keys: P pen, L line, R rectangle, O ellipse, A arrow, T text, E eraser, Ctrl+Z undo` : ""),
    );
    if (opts.mode === "trainer") {
      const active = opts.active() && s.status === "live";
      ids.forEach((id, i) => {
        let b = pageCache.get(id);
        if (!b) {
          b = h("button", {
            type: "button",
            class: "page-btn",
            "data-testid": "page",
            "data-id": id,
            "aria-label": `Page ${i + 1}`,
            text: String(i + 1),
            onclick: () => {
              if (opts.getState()?.current !== id) void command("wb.page.switch", { page_id: id });
            },
          });
          pageCache.set(id, b);
        }
        setAttr(b, "aria-current", id === s.current ? "page" : null);
        b.disabled = !active;
        if (pagesList.children[i] !== b) pagesList.insertBefore(b, pagesList.children[i] ?? null);
      });
      for (const [id, b] of pageCache) if (!s.pages.has(id)) (b.remove(), pageCache.delete(id));
      permit.checked = s.learnersCanDraw;
      permit.disabled = !active;
      for (const b of pageBar.querySelectorAll<HTMLButtonElement>("[data-testid=page-add]")) b.disabled = !active;
      setText(note, "");
    } else {
      setText(pageInfo, ids.length > 1 ? `Page ${index} of ${ids.length}` : "");
      if (opts.mode === "learner") {
        setText(
          note,
          s.status !== "live" ? "" : drawable ? "You can draw on the board" : "Only the trainer draws on the board right now",
        );
      }
    }
  }

  invalidate();
  return { el, invalidate };
}

function font(size: number): string {
  return `${size}px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif`;
}

function segDist(px: number, py: number, x1: number, y1: number, x2: number, y2: number): number {
  const dx = x2 - x1;
  const dy = y2 - y1;
  const len = dx * dx + dy * dy;
  const t = len ? Math.max(0, Math.min(1, ((px - x1) * dx + (py - y1) * dy) / len)) : 0;
  return Math.hypot(px - (x1 + t * dx), py - (y1 + t * dy));
}

/** A freehand stroke's outline (perfect-freehand) as a fillable path. */
export function strokePath(flat: number[], width: number, done: boolean): Path2D {
  const pts: [number, number][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) pts.push([flat[i], flat[i + 1]]);
  const outline = getStroke(pts, {
    size: Math.max(1, width * 1.3),
    thinning: 0.45,
    smoothing: 0.5,
    streamline: 0.4,
    simulatePressure: true,
    last: done,
  });
  const path = new Path2D();
  if (!outline.length) return path;
  if (outline.length < 4) {
    const r = Math.max(0.5, width / 2);
    path.arc(pts[0][0], pts[0][1], r, 0, Math.PI * 2);
    return path;
  }
  path.moveTo(outline[0][0], outline[0][1]);
  for (let i = 1; i < outline.length - 1; i++) {
    const [x0, y0] = outline[i];
    const [x1, y1] = outline[i + 1];
    path.quadraticCurveTo(x0, y0, (x0 + x1) / 2, (y0 + y1) / 2);
  }
  path.closePath();
  return path;
}

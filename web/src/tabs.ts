// One tab strip over a live page's panels (the WAI-ARIA tabs pattern: role=tablist/tab/tabpanel,
// aria-selected, a roving tabindex, arrow keys, Home and End). Each tab may carry a badge: a count
// (people online, open polls) or, more prominent, unread activity that happened while the panel was
// not shown, cleared once it is. A panel may be pinned: shown beside the tabs, without its tab,
// while a media query holds (the learner's board on a wide screen).
//
// Other parts of the page bring a panel into view with a document event:
//   document.dispatchEvent(new CustomEvent("classcast:reveal", { detail: { panel: "polls" } }))
// The named panel's tab is selected and focused; a panel that is always in view (the trainer's
// board, a pinned panel) is focused and scrolled to instead.
import { h, setAttr, setText, show, toggleClass } from "./dom";

export const REVEAL_EVENT = "classcast:reveal";

export interface TabSpec {
  key: string;
  label: string;
  /** What the tab shows: the panel's own container, placed in the tabpanel. */
  content: HTMLElement | HTMLElement[];
  /** Unread activity shows as a dot rather than a number (e.g. drawing on the board). */
  dot?: boolean;
}

export interface TabsOptions {
  /** The tab strip's accessible name. */
  label: string;
  tabs: TabSpec[];
  /** The tab selected first: a key, or a function of whether the pinned panel is pinned now. */
  initial?: string | ((pinned: boolean) => string);
  /** A panel shown beside the tabs (its tab hidden) while `media` matches. */
  pinned?: { key: string; media: string };
  /** Panels outside the tabs that a reveal may name (they are always in view): focused. */
  outside?: Record<string, HTMLElement>;
}

export interface Tabs {
  tablist: HTMLElement;
  panels: Record<string, HTMLElement>;
  selected(): string;
  /** Whether the panel is on screen now (selected, or pinned). */
  shown(key: string): boolean;
  select(key: string, focus?: boolean): boolean;
  /** Bring a panel into view: select its tab and focus it (or focus a panel that is always shown). */
  reveal(key: string): boolean;
  /** A standing count on the tab (null: none). `spoken` is what a screen reader hears after the
   * tab's name, e.g. "7 online". */
  setCount(key: string, count: number | null, spoken?: string): void;
  /** `n` new things happened in the panel: counted as unread unless it is shown. */
  activity(key: string, n?: number): void;
  unread(key: string): number;
}

let uid = 0;

export function createTabs(opts: TabsOptions): Tabs {
  const id = `tabs-${++uid}`;
  const tablist = h("div", { class: "tablist", role: "tablist", "aria-label": opts.label, "data-testid": "tablist" });
  const panels: Record<string, HTMLElement> = {};
  const tabs = new Map<string, HTMLButtonElement>();
  const badges = new Map<string, { el: HTMLElement; num: HTMLElement }>();
  const counts = new Map<string, { n: number | null; spoken: string }>();
  const unread = new Map<string, number>();
  const specs = new Map(opts.tabs.map((t) => [t.key, t]));
  const pinQuery = opts.pinned ? window.matchMedia(opts.pinned.media) : null;
  const isPinned = (key: string) => !!pinQuery?.matches && opts.pinned!.key === key;

  for (const spec of opts.tabs) {
    const tabId = `${id}-tab-${spec.key}`;
    const panelId = `${id}-panel-${spec.key}`;
    const num = h("span", { class: "tab-badge-num", "aria-hidden": "true" });
    const badge = h("span", { class: "tab-badge", "data-testid": "tab-badge", hidden: true }, num);
    badges.set(spec.key, { el: badge, num });
    const tab: HTMLButtonElement = h(
      "button",
      {
        type: "button",
        class: "tab",
        role: "tab",
        id: tabId,
        "aria-controls": panelId,
        "aria-selected": "false",
        tabindex: "-1",
        "data-testid": `tab-${spec.key}`,
        "data-key": spec.key,
        onclick: () => select(spec.key, true),
      },
      h("span", { class: "tab-name" }, spec.label),
      badge,
    );
    tabs.set(spec.key, tab);
    tablist.appendChild(tab);
    const panel = h(
      "div",
      {
        class: `tabpanel tabpanel-${spec.key}`,
        role: "tabpanel",
        id: panelId,
        "aria-labelledby": tabId,
        tabindex: "-1",
        "data-testid": `tabpanel-${spec.key}`,
        "data-key": spec.key,
        hidden: true,
      },
      ...(Array.isArray(spec.content) ? spec.content : [spec.content]),
    );
    panels[spec.key] = panel;
  }

  const visibleTabs = () => [...tabs.values()].filter((t) => !t.hidden);
  tablist.addEventListener("keydown", (ev: KeyboardEvent) => {
    const list = visibleTabs();
    const at = list.indexOf(document.activeElement as HTMLButtonElement);
    if (at < 0) return;
    let next = -1;
    if (ev.key === "ArrowRight" || ev.key === "ArrowDown") next = (at + 1) % list.length;
    else if (ev.key === "ArrowLeft" || ev.key === "ArrowUp") next = (at - 1 + list.length) % list.length;
    else if (ev.key === "Home") next = 0;
    else if (ev.key === "End") next = list.length - 1;
    if (next < 0) return;
    ev.preventDefault();
    select(list[next].dataset.key!, true);
  });

  const first = (): string => {
    const want = typeof opts.initial === "function" ? opts.initial(!!pinQuery?.matches) : opts.initial;
    if (want && tabs.has(want) && !isPinned(want)) return want;
    return opts.tabs.find((t) => !isPinned(t.key))!.key;
  };
  let current = first();

  function shown(key: string): boolean {
    return (key === current || isPinned(key)) && tabs.has(key);
  }

  function renderBadge(key: string): void {
    const b = badges.get(key);
    if (!b) return;
    const n = unread.get(key) ?? 0;
    const c = counts.get(key);
    const dot = !!specs.get(key)?.dot;
    let text = "";
    let spoken = "";
    if (n > 0) {
      text = dot ? "" : n > 99 ? "99+" : String(n);
      spoken = dot ? "new activity" : `${n} new`;
    } else if (c && c.n !== null) {
      text = String(c.n);
      spoken = c.spoken;
    }
    show(b.el, n > 0 || (!!c && c.n !== null));
    toggleClass(b.el, "tab-badge-unread", n > 0);
    toggleClass(b.el, "tab-badge-dot", n > 0 && dot);
    setText(b.num, text);
    // The name a screen reader hears: the label, then what the badge says ("Chat, 2 new").
    setAttr(tabs.get(key)!, "aria-label", spoken ? `${specs.get(key)!.label}, ${spoken}` : null);
    setAttr(tabs.get(key)!, "data-unread", n > 0 ? String(n) : null);
  }

  function layout(): void {
    for (const [key, tab] of tabs) {
      const pinned = isPinned(key);
      const selected = key === current;
      show(tab, !pinned);
      setAttr(tab, "aria-selected", String(selected));
      setAttr(tab, "tabindex", selected ? "0" : "-1");
      const panel = panels[key];
      show(panel, selected || pinned);
      toggleClass(panel, "is-pinned", pinned);
      // A pinned panel has no tab to name it: it is a plain region then.
      setAttr(panel, "role", pinned ? null : "tabpanel");
      if (shown(key) && unread.get(key)) {
        unread.set(key, 0);
        renderBadge(key);
      }
    }
    toggleClass(tablist, "has-pinned", !!pinQuery?.matches);
  }

  function select(key: string, focus = false): boolean {
    if (!tabs.has(key) || isPinned(key)) return false;
    current = key;
    layout();
    if (focus) tabs.get(key)!.focus();
    return true;
  }

  function reveal(key: string): boolean {
    const out = opts.outside?.[key] ?? (isPinned(key) ? panels[key] : null);
    if (out) {
      if (!out.hasAttribute("tabindex")) out.setAttribute("tabindex", "-1");
      out.scrollIntoView({ block: "nearest" });
      out.focus({ preventScroll: true });
      return true;
    }
    if (!select(key, true)) return false;
    tabs.get(key)!.scrollIntoView({ block: "nearest", inline: "nearest" });
    return true;
  }

  pinQuery?.addEventListener("change", () => {
    if (isPinned(current)) current = first();
    layout();
  });
  document.addEventListener(REVEAL_EVENT, (ev) => {
    const panel = (ev as CustomEvent).detail?.panel;
    if (typeof panel === "string") reveal(panel);
  });
  layout();

  return {
    tablist,
    panels,
    selected: () => current,
    shown,
    select,
    reveal,
    setCount(key, n, spoken) {
      const before = counts.get(key);
      const next = { n, spoken: spoken ?? (n === null ? "" : String(n)) };
      if (before && before.n === next.n && before.spoken === next.spoken) return;
      counts.set(key, next);
      renderBadge(key);
    },
    activity(key, n = 1) {
      if (!tabs.has(key) || shown(key) || n <= 0) return;
      unread.set(key, (unread.get(key) ?? 0) + n);
      renderBadge(key);
    },
    unread: (key) => unread.get(key) ?? 0,
  };
}

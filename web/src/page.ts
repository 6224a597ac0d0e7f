// Bits every page shares: the test hook on window, the top bar, the session title.
import type { Status, You } from "./live";
import { favicon, h } from "./dom";

export interface ClasscastHook {
  view: () => any;
  readonly you: You | null;
  status: () => Status;
  seek?: (ms: number) => void;
  time?: () => number;
}

declare global {
  interface Window {
    classcast: ClasscastHook;
  }
}

export function expose(hook: ClasscastHook): void {
  window.classcast = hook;
}

export function initPage(): void {
  favicon();
}

/** The session title the server put in the shell's <title> ("Intro — Classcast"). */
export function shellTitle(): string {
  const t = document.title.replace(/\s+—\s+Classcast$/, "").trim();
  return t && t !== "Classcast" ? t : "";
}

export function setTitle(title: string, suffix = ""): void {
  const full = `${title}${suffix ? ` · ${suffix}` : ""} — Classcast`;
  if (document.title !== full) document.title = full;
}

export function brand(): HTMLElement {
  return h(
    "a",
    { class: "brand", href: "/", "aria-label": "Classcast home" },
    h("span", { class: "brand-mark", "aria-hidden": "true" }, "▶"),
    h("span", { class: "brand-name" }, "Classcast"),
  );
}

// Helpers every staff console uses: the logged-in user, API calls with the CSRF header, logout,
// a tiny element builder, time formatting.

import { h } from "../shared/dom.js";
import { both, holdBoth } from "../shared/i18n.js";

export { h, mount } from "../shared/dom.js";

const HOME = { agent: "/agent", supervisor: "/supervisor", auditor: "/auditor", admin: "/" };

let csrf = sessionStorage.getItem("rc.csrf");

/** Go to the console of ``role``. */
export function goHome(role) {
  location.assign(HOME[role] ?? "/");
}

/** An API error with the server's code and reason (shown to the person as is). */
/** A refused call: its message is the server's words, zh-CN then English where it sends both
 * (``reason_zh``); the code stays on ``code`` for the page to branch on, never to show. */
export class ApiError extends Error {
  constructor(status, code, reason, reasonZh = null) {
    // Codes the console words itself (a helper in the call holds checks): its own table, both languages.
    super(holdBoth(code) ?? (reasonZh ? `${reasonZh} ${reason}` : reason));
    this.status = status;
    this.code = code;
    this.reason = reason;
    this.reasonZh = reasonZh;
  }
}

/** Call the API; JSON in and out; the CSRF header on state-changing calls; 401 goes to the login page. */
export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const init = { method, credentials: "same-origin", headers: { ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && csrf) init.headers["X-CSRF-Token"] = csrf;
  const resp = await fetch(path, init);
  const data = await resp.json().catch(() => ({}));
  if (resp.status === 401 && data.error?.code === "login_required") {
    location.assign("/login");
    throw new ApiError(401, "login_required", "log in first");
  }
  if (!resp.ok) throw new ApiError(resp.status, data.error?.code ?? "http", data.error?.reason ?? `HTTP ${resp.status}`, data.error?.reason_zh ?? null);
  return data;
}

/** The logged-in user, if their role is one of ``roles``; otherwise go to the login page (or their console). */
export async function requireUser(...roles) {
  const me = await api("/api/auth/me");
  csrf = me.csrf_token;
  sessionStorage.setItem("rc.csrf", csrf);
  if (roles.length && !roles.includes(me.user.role)) {
    goHome(me.user.role);
    throw new ApiError(403, "forbidden", "not your console");
  }
  return me.user;
}

/** Log out and go to the login page. */
export async function logout() {
  try {
    await api("/api/auth/logout", { method: "POST" });
  } finally {
    sessionStorage.removeItem("rc.csrf");
    location.assign("/login");
  }
}

/** Wire the header's user name and logout button (ids ``me`` and ``btn-logout``). */
export function header(user) {
  document.getElementById("me").textContent = `${user.display_name} (${user.username})`;
  document.getElementById("btn-logout").addEventListener("click", logout);
}

/** Seconds as "m:ss" (or "h:mm:ss"). */
export function mmss(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** A fraction as a percentage, or a dash. */
export function pct(x) {
  return x === null || x === undefined ? "–" : `${Math.round(x * 1000) / 10}%`;
}

/** ISO time as local "HH:MM:SS". */
export function clock(isoText) {
  if (!isoText) return "";
  const d = new Date(isoText);
  return d.toLocaleTimeString("zh-CN", { hour12: false });
}

/** Show a message in the element with id ``toast``: information goes after 6 s, an error stays until
 * the person dismisses it (its button, or Escape) or another message replaces it. */
export function toast(text, kind = "info") {
  const el = document.getElementById("toast");
  if (!el) return;
  clearTimeout(toast.timer);
  el.dataset.kind = kind;
  el.setAttribute("role", kind === "error" ? "alert" : "status");
  el.replaceChildren(h("span", { class: "toast-text" }, text));
  el.hidden = false;
  if (kind === "error") {
    el.append(" ", h("button", { type: "button", class: "toast-close", onclick: () => { el.hidden = true; } },
      both("staff.dismiss")));
  } else {
    toast.timer = setTimeout(() => { el.hidden = true; }, 6000);
  }
}

document.addEventListener("keydown", (event) => {
  const el = document.getElementById("toast");
  if (event.key === "Escape" && el && !el.hidden && el.dataset.kind === "error") el.hidden = true;
});

// Helpers every staff console uses: the logged-in user, API calls with the CSRF header, logout,
// a tiny element builder, time formatting.

import { h } from "../shared/dom.js";
import { both } from "../shared/i18n.js";
import { ApiError, request, setCsrf } from "../shared/api.js";
import { ReconnectingSocket } from "../shared/ws.js";

export { h, mount } from "../shared/dom.js";
export { ApiError } from "../shared/api.js";

const HOME = { agent: "/agent", supervisor: "/supervisor", auditor: "/auditor", admin: "/" };

/** Go to the console of ``role``. */
export function goHome(role) {
  location.assign(HOME[role] ?? "/");
}

/** Call the API as staff: JSON in and out; the CSRF header on state-changing calls; 401 goes to the login page. */
export function api(path, options = {}) {
  return request(path, { ...options, loginRedirect: true });
}

/** The logged-in user, if their role is one of ``roles``; otherwise go to the login page (or their console). */
export async function requireUser(...roles) {
  const me = await api("/api/auth/me");
  setCsrf(me.csrf_token);
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
    setCsrf(null);
    location.assign("/login");
  }
}

/** Wire the header's user name and logout button (ids ``me`` and ``btn-logout``). */
export function header(user) {
  document.getElementById("me").textContent = `${user.display_name} (${user.username})`;
  document.getElementById("btn-logout").addEventListener("click", logout);
}

/** A lane's name in both languages (care, general), or the lane's code for another. */
export function laneName(lane) {
  return lane === "care" || lane === "general" ? both(`staff.lane.${lane}`) : lane;
}

/** A queue lane's heading: the care lane as its badge, the general lane in words. */
export function laneHeading(lane) {
  return lane === "care" ? h("span", { class: "badge care" }, both("staff.lane.care")) : both("staff.lane.general");
}

/** A console's signaling socket (reconnecting, not yet connected): says hello as ``client`` on each
 * open and hands each message to ``handlers[msg.type]``; a handler that fails is an error toast. */
export function staffSocket(client, handlers, { onState } = {}) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new ReconnectingSocket(() => `${scheme}://${location.host}/ws`, {
    onOpen: () => socket.hello({ client }),
    onMessage: (msg) => {
      const fn = handlers[msg.type];
      if (fn) Promise.resolve(fn(msg)).catch((err) => toast(`${msg.type}: ${err.message}`, "error"));
    },
    onState,
  });
  return socket;
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

// The one HTTP client of every page: JSON (or an image) in, JSON out, one error shape (ApiError).
// Staff pages send the CSRF header on state-changing calls; customer and helper pages send their
// call token (X-Customer-Token).

import { holdBoth } from "./i18n.js";

let csrf = sessionStorage.getItem("rc.csrf");

/** Keep the staff session's CSRF token (from /api/auth/me) for the calls that change state. */
export function setCsrf(token) {
  csrf = token;
  if (token) sessionStorage.setItem("rc.csrf", token);
  else sessionStorage.removeItem("rc.csrf");
}

/** A refused call: its message is the server's words, zh-CN then English where it sends both
 * (``reason_zh``); the code stays on ``code`` for the page to branch on, never to show.  A call
 * that never reached the server has status 0 and code "network". */
export class ApiError extends Error {
  constructor(status, code, reason, reasonZh = null) {
    // Codes the pages word themselves (a helper in the call holds checks): their own table, both languages.
    super(holdBoth(code) ?? (reasonZh ? `${reasonZh} ${reason}` : reason));
    this.status = status;
    this.code = code;
    this.reason = reason;
    this.reasonZh = reasonZh;
  }
}

/** The code the server gave for a refused call, else ``fallback`` (it gave none, or was never reached). */
export function refusalCode(err, fallback) {
  return err instanceof ApiError && err.status && err.code !== "http" ? err.code : fallback;
}

/**
 * Call the API.  ``body`` goes as JSON, ``blob`` as itself (its type, else image/jpeg); ``token`` is a
 * customer's or helper's call token; ``loginRedirect`` sends a staff page to /login on 401;
 * ``signal`` and ``cache`` go to fetch as they are.
 * Resolves to the parsed JSON (``{}`` when there is none), or the Response itself with ``raw``.
 */
export async function request(path, { method, body, blob, token, headers = {}, raw = false, loginRedirect = false, signal, cache } = {}) {
  const verb = method ?? (body !== undefined || blob ? "POST" : "GET");
  const init = { method: verb, credentials: "same-origin", headers: { ...headers } };
  if (signal) init.signal = signal;
  if (cache) init.cache = cache;
  if (blob) {
    init.headers["Content-Type"] = blob.type || "image/jpeg";
    init.body = blob;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (token) init.headers["X-Customer-Token"] = token;
  if (verb !== "GET" && csrf && !token) init.headers["X-CSRF-Token"] = csrf;
  let resp;
  try {
    resp = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "the network is down");
  }
  if (raw && resp.ok) return resp;
  const data = await resp.json().catch(() => ({}));
  if (resp.status === 401 && loginRedirect && data.error?.code === "login_required") {
    location.assign("/login");
    throw new ApiError(401, "login_required", "log in first");
  }
  if (!resp.ok) {
    throw new ApiError(resp.status, data.error?.code ?? "http", data.error?.reason ?? `HTTP ${resp.status}`,
      data.error?.reason_zh ?? null);
  }
  return data;
}

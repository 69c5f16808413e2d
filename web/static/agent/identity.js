// Identity checks from the agent console, through web/identity_api.py (face check, liveness, ID capture,
// attestation).  Each returns {ok, score, threshold, reasons, images, session} as the API gives it;
// the console shows whatever of those is present.

import { ApiError } from "../login/staff.js";

const base = (sid) => `/api/identity/sessions/${encodeURIComponent(sid)}`;

async function post(path, { json, blob, csrf } = {}) {
  const headers = { "X-CSRF-Token": csrf ?? sessionStorage.getItem("rc.csrf") ?? "" };
  let body;
  if (blob) {
    headers["Content-Type"] = blob.type || "image/jpeg";
    body = blob;
  } else {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json ?? {});
  }
  const resp = await fetch(path, { method: "POST", headers, body, credentials: "same-origin" });
  const data = await resp.json().catch(() => ({}));
  if (resp.status === 404 && (!data.error || data.error.code === "not_found")) {
    throw new ApiError(404, "no_identity_api", "the identity API (web/identity_api.py) is not installed on this server");
  }
  if (!resp.ok) throw new ApiError(resp.status, data.error?.code ?? "http", data.error?.reason ?? `HTTP ${resp.status}`);
  return data;
}

/** Match a still of the live customer (a frame of the call) against the account's real-name photo. */
export function faceCheck(sid, frame) {
  return post(`${base(sid)}/face`, { blob: frame });
}

/** Start a liveness challenge: {id, sequence, deadline}. */
export function startLiveness(sid) {
  return post(`${base(sid)}/liveness`);
}

/** Evaluate a liveness challenge on the frames of the live video the server kept. */
export function finishLiveness(sid, challengeId) {
  return post(`${base(sid)}/liveness/${encodeURIComponent(challengeId)}`);
}

/** Read the ID card in a still of the call (rear camera) and match its portrait to the live face. */
export function idCapture(sid, frame) {
  return post(`${base(sid)}/idcard`, { blob: frame });
}

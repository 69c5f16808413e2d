// Identity checks from the agent console, through web/identity_api.py on the counter session:
// face check, liveness challenge, ID capture, attestation.  The image is the witness's live frame
// (server side); where the server has no live video of the call, the frame the agent's browser
// received is uploaded instead.

import { ApiError } from "../login/staff.js";
import { reasonBoth } from "../shared/i18n.js";

const base = (sid) => `/api/counter/sessions/${encodeURIComponent(sid)}/identity`;

async function post(path, { json, blob } = {}) {
  const headers = { "X-CSRF-Token": sessionStorage.getItem("rc.csrf") ?? "" };
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
    throw new ApiError(404, "no_identity_api", "本服务器没有身份核验接口 the identity API (web/identity_api.py) is not installed");
  }
  if (!resp.ok) throw new ApiError(resp.status, data.error?.code ?? "http", data.error?.reason ?? `HTTP ${resp.status}`, data.error?.reason_zh ?? null);
  return data;
}

/** The witness's live frame; on a server without live video of the call (409), the given still. */
async function liveOrUpload(path, frame) {
  try {
    return await post(path, { json: { source: "live" } });
  } catch (err) {
    if (err.status !== 409 || !frame || !/witness|live|video|call/i.test(`${err.code} ${err.message}`)) throw err;
    return post(path, { blob: frame });
  }
}

/** Match the live customer against the account's real-name photo: {result, thumbnail, session}. */
export function faceCheck(sid, frame) {
  return liveOrUpload(`${base(sid)}/face`, frame);
}

/** Start a liveness challenge: {challenge: {id, sequence, instructions, deadline}}. */
export function startLiveness(sid) {
  return post(`${base(sid)}/liveness`);
}

/** Evaluate a challenge on the frames the witness kept: {result: {passed, reasons}, thumbnail}. */
export function finishLiveness(sid, challengeId) {
  return post(`${base(sid)}/liveness/${encodeURIComponent(challengeId)}`);
}

/** Read the ID card (number must be the holder's, portrait the live face): {accepted, reasons, result}. */
export function idCapture(sid, frame) {
  return liveOrUpload(`${base(sid)}/id-card`, frame);
}

/** Read an ID card photo the customer sent another way (a file the agent uploads): same checks as a capture. */
export function idUpload(sid, file) {
  return post(`${base(sid)}/id-card`, { blob: file });
}

/** Read the ID still the customer's page sent (its sha256 is in the show_id step result); face declined:
 * no face processing, compare by eye. */
export function idFromStill(sid, sha256) {
  return post(`${base(sid)}/id-card`, { json: { source: "customer_still", sha256 } });
}

/** Face declined: the agent attests the card shown matches the person (A2 on that path). */
export function attest(sid) {
  return post(`${base(sid)}/attest`, { json: { confirm: true } });
}

/** One check's answer in the shape the console shows: ok, score, threshold, reasons, images. */
export function summary(kind, data) {
  const r = data.result ?? {};
  // The server sends reason codes (or codes with their words): shown in both languages, never raw.
  const worded = (x) => (typeof x === "string" ? reasonBoth(x) : x.zh || x.en ? `${x.zh ?? ""} ${x.en ?? ""}`.trim() : reasonBoth(x.code));
  const reasons = [...(data.reasons ?? []), ...(r.reasons ?? []), ...(r.notes ?? [])].map(worded);
  const ok = kind === "face" ? r.decision === "match" : kind === "liveness" ? r.passed === true : data.accepted === true;
  // Liveness: the performer's lowest match with the photo on file.
  const score = r.score ?? data.portrait_match?.score ?? r.identity?.min_score;
  const threshold = r.threshold ?? data.portrait_match?.threshold ?? r.identity?.threshold;
  return { ok, score, threshold, reasons: [...new Set(reasons)], images: data.thumbnail ? [data.thumbnail] : [] };
}

// Identity checks from the agent console, through web/identity_api.py on the counter session:
// face check, liveness challenge, ID capture, attestation.  The image is the witness's live frame
// (server side); where the server has no live video of the call, the frame the agent's browser
// received is uploaded instead.

import { ApiError, request } from "../shared/api.js";
import { both, reasonBoth } from "../shared/i18n.js";

const base = (sid) => `/api/counter/sessions/${encodeURIComponent(sid)}/identity`;

/** The live frame is not to be had here (web/identity_api.py's 409 from the witness): no live video of
 * the call on this server, none from the customer's camera, or none reaching the server. */
const NO_LIVE_FRAME = new Set(["no_witness", "no_video", "no_media"]);

async function post(path, { json, blob } = {}) {
  try {
    return await request(path, blob ? { blob } : { body: json ?? {} });
  } catch (err) {
    // a server without web/identity_api.py answers the route's 404 with no code of its own
    if (err.status === 404 && (err.code === "http" || err.code === "not_found")) {
      throw new ApiError(404, "no_identity_api", both("staff.no_identity_api"));
    }
    throw err;
  }
}

/** The witness's live frame; on a server without live video of the call (409), the given still. */
async function liveOrUpload(path, frame) {
  try {
    return await post(path, { json: { source: "live" } });
  } catch (err) {
    if (err.status !== 409 || !frame || !NO_LIVE_FRAME.has(err.code)) throw err;
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

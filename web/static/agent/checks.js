// The identity checks from the console (face, liveness, ID card, attestation), each shown with its
// result, and the row of them the server says comes next (Alt+V).

import { h, toast } from "../login/staff.js";
import { both, pair } from "../shared/i18n.js";
import { grabFrame } from "./call.js";
import * as identity from "./identity.js";
import { refreshPanel, refreshSession } from "./panel.js";
import { $, parseValue, pushStep, state, whyPair } from "./state.js";

function showCheck(kind, result, image) {
  const { ok } = result;
  const reasons = result.reasons ?? [];
  const images = (result.images ?? []).filter(Boolean);
  const node = h("div", { class: "check", dataset: { kind, ok: String(ok) } },
    h("strong", {}, both(`staff.step.${kind === "id_card" ? "idcard" : kind}`), " "),
    h("span", { class: ok ? "badge ok" : "badge bad" }, both(ok ? "staff.check_pass" : "staff.check_fail")),
    result.score !== undefined ? ` ${both("staff.check_score", { v: Number(result.score).toFixed(3) })}` : "",
    result.threshold !== undefined ? ` / ${both("staff.check_threshold", { v: Number(result.threshold).toFixed(3) })}` : "",
    reasons.length ? h("div", { class: "warn" }, reasons.map(String).join("; ")) : "",
    h("div", {},
      image ? h("img", { src: URL.createObjectURL(image), alt: `${kind} capture` }) : "",
      images.map((src) => h("img", { src, alt: kind }))));
  $("checks").prepend(node);
}

/** Show a check's answer; what the row of checks (Alt+V) goes on: {ok, why}. */
function shownAs(kind, shown, image) {
  showCheck(kind, shown, image);
  return { ok: shown.ok, why: shown.reasons.join("; ") };
}

/** The customer did not finish a pushed step: said to the agent, and the check stops there. */
function unfinished(result) {
  const said = both("staff.customer_unfinished", { what: result.value ?? result.status });
  toast(said, "error");
  return { ok: false, why: said };
}

/** Run a check from its button (off meanwhile): one that could not run is said, and shown as failed
 * (unless this server has no identity API); after it, the session and catalog as the server has them. */
async function runCheck(kind, buttonId, check) {
  if (!state.call) return undefined;
  $(buttonId).disabled = true;
  try {
    return await check();
  } catch (err) {
    toast(err.message, "error");
    if (err.code !== "no_identity_api") showCheck(kind, { ok: false, reasons: [err.message] });
    return { ok: false, why: err.message };
  } finally {
    $(buttonId).disabled = false;
    await refreshPanel();
  }
}

async function frameOfCustomer() {
  const frame = await grabFrame($("remote-video"));
  if (!frame) throw new Error(both("staff.no_customer_video"));
  return frame;
}

export function faceCheck() {
  return runCheck("face", "btn-face", async () => {
    const result = await pushStep("face_capture", { timeout_s: 90 });
    if (result.status !== "ok") return unfinished(result);
    const frame = await frameOfCustomer();
    return shownAs("face", identity.summary("face", await identity.faceCheck(state.call.id, frame)));
  });
}

export async function liveness() {
  if (!state.call) return;
  $("btn-liveness").disabled = true;
  try {
    const { challenge } = await identity.startLiveness(state.call.id);
    const say = (lang) => challenge.instructions.map((i) => i[lang]).join(lang === "zh" ? "，" : ", ");
    const asked = pushStep("liveness", { sequence: challenge.sequence, text_zh: say("zh"), text_en: say("en"), text: say("zh"), deadline: challenge.deadline });
    document.body.dataset.liveness = "asked";
    await asked;
    return shownAs("liveness", identity.summary("liveness", await identity.finishLiveness(state.call.id, challenge.id)));
  } catch (err) {
    showCheck("liveness", { ok: false, reasons: [err.message] });
    return { ok: false, why: err.message };
  } finally {
    document.body.dataset.liveness = "done";
    $("btn-liveness").disabled = false;
    await refreshSession().catch(() => {});
  }
}

export function idCapture() {
  return runCheck("id_card", "btn-id", async () => {
    const result = await pushStep("show_id", { timeout_s: 120 });
    if (result.status !== "ok") return unfinished(result);
    const sent = parseValue(result.value);
    if (sent.uploaded && sent.sha256) {
      // The customer's own ID still, accepted by the server: the page reports the step before it turns
      // back to the front camera, so a live frame now may show the card or the face.
      const declined = state.session?.face_consent === false;
      if (declined) state.idStill = sent.sha256; // face declined: read without face processing, compare by eye, attest
      const checked = await identity.idFromStill(state.call.id, sent.sha256);
      const shown = identity.summary("id_card", checked);
      showCheck("id_card", declined ? { ...shown, reasons: [both("staff.compare_by_eye"), ...shown.reasons] } : shown);
      return { ok: shown.ok, why: shown.reasons.join("; ") };
    }
    const frame = await frameOfCustomer(); // no still uploaded: the card as the live video shows it now
    return shownAs("id_card", identity.summary("id_card", await identity.idCapture(state.call.id, frame)), frame);
  });
}

/** An ID card photo the customer sent (message, e-mail), uploaded from a file next to the ID capture button. */
export function addIdUpload() {
  const input = h("input", { type: "file", id: "id-upload", accept: "image/jpeg,image/png" });
  input.addEventListener("change", () => {
    const file = input.files?.[0];
    input.value = "";
    if (file) idFromFile(file);
  });
  $("btn-id").after(h("label", { class: "upload", for: "id-upload" }, `${both("staff.id_upload")} `, input));
}

async function idFromFile(file) {
  if (!state.call) {
    toast(both("staff.no_call"), "error");
    return;
  }
  try {
    const checked = await identity.idUpload(state.call.id, file);
    showCheck("id_card", identity.summary("id_card", checked), file);
  } catch (err) {
    toast(err.message, "error");
    showCheck("id_card", { ok: false, reasons: [err.message] });
  } finally {
    await refreshPanel();
  }
}

export async function attest() {
  try {
    // the server takes the live frame it holds and the ID stills the customer sent: the console sends no evidence
    const done = await identity.attest(state.call.id);
    showCheck("attestation", { ok: true, reasons: [both("staff.attested")], images: [done.thumbnail].filter(Boolean) });
    if (state.idStill) {
      // the ID still already sent: its number against the account now that A2 stands (A3 on this path)
      const checked = await identity.idFromStill(state.call.id, state.idStill);
      showCheck("id_card", identity.summary("id_card", checked));
    }
  } catch (err) {
    toast(err.message, "error");
  } finally {
    await refreshPanel();
  }
}

// ---- the identity steps in a row: what the server says comes next -------------------------------

const LEVELS = ["A0", "A1", "A2", "A3", "A4"];
const atLeast = (level, wanted) => LEVELS.indexOf(level) >= LEVELS.indexOf(wanted);

/** What the chain says: a live region in the customer panel (Chinese and English). */
function chainSay(text, kind = "") {
  const el = $("chain-status");
  el.textContent = text;
  el.className = kind;
  document.body.dataset.chain = kind || "running";
}

/** Alt+V: run the identity steps that come next on the session's path, each started when the one
 * before passed (face check, liveness, then the ID card), by the server's ``steps`` (counter/levels.py):
 * a step the server refuses, or a check that fails, stops the row with the reason. The attestation
 * path stops at the agent's own comparison (Attest is a judgement, never pressed for them). */
export async function nextSteps() {
  if (!state.call || state.call.ended || state.chaining) return;
  state.chaining = true;
  try {
    await refreshSession();
    const s = state.session;
    const face = s.path === "face";
    const plan = face
      ? [["face", faceCheck, "A2", "staff.step.face"], ["face", liveness, "A2", "staff.step.liveness"], ["idcard", idCapture, "A3", "staff.step.idcard"]]
      : [["attestation", null, "A2", "staff.step.attestation"], ["idcard_attested", idCapture, "A3", "staff.step.idcard"]];
    for (const [step, run, proves, name] of plan) {
      const s2 = state.session;
      if (atLeast(s2.level, proves)) continue;
      const why = s2.steps[step];
      if (!why.possible) {
        chainSay(both("staff.chain_refused", { step: pair(name), why: whyPair(why) }), "error");
        return;
      }
      if (!run) { // the card shown first, then the agent compares it with the person and attests: their own act
        if (!state.idStill) {
          chainSay(both("staff.chain_running", { step: pair("staff.step.idcard") }));
          await idCapture();
          await refreshSession();
        }
        chainSay(both("staff.chain_attest"), "warn");
        $("btn-attest").focus();
        return;
      }
      chainSay(both("staff.chain_running", { step: pair(name) }));
      const done = await run();
      await refreshSession();
      if (!done?.ok) {
        chainSay(`${both("staff.chain_failed", { step: pair(name) })} ${done?.why ?? ""}`.trim(), "error");
        return;
      }
    }
    chainSay(both("staff.chain_done", { level: state.session.level }), "ok");
    $("tx-search").focus();
  } catch (err) {
    chainSay(err.message, "error");
  } finally {
    state.chaining = false;
  }
}

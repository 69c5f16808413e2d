// A call from start to end on the console: started (a clean screen, the counter session), enabled
// controls, hang-up (asked once), ended, transfer.

import { api, h, mount, toast } from "../login/staff.js";
import { both } from "../shared/i18n.js";
import { showRecording, startMedia } from "./media.js";
import { refreshSession } from "./panel.js";
import { $, send, state } from "./state.js";
import { refreshCatalog } from "./transactions.js";

export async function callStarted(msg) {
  state.offer = null;
  $("offer").hidden = true;
  resetCall(); // each call starts clean: nothing of the last one stays on screen
  state.call = { id: msg.call_id, lane: msg.lane, claimedPhone: msg.claimed_phone ?? null };
  document.body.dataset.call = msg.call_id;
  $("call-id").textContent = msg.call_id;
  mount($("lane-badge"), msg.lane === "care" ? h("span", { class: "badge care" }, both("staff.lane.care_call")) : h("span", { class: "badge" }, both("staff.lane.general")),
    msg.no_video ? h("span", { class: "badge warn", id: "no-video" }, both(`staff.no_video.${msg.no_video}`)) : null);
  if (msg.no_video) document.body.dataset.noVideo = msg.no_video;
  else delete document.body.dataset.noVideo;
  if (msg.claimed_phone) $("claim-msisdn").value = msg.claimed_phone.replace(/\D/g, "").slice(-11);
  enableCall(true);
  showRecording(false, "waiting_media");
  $(msg.claimed_phone ? "tx-search" : "claim-msisdn").focus();
  await openSession();
  await startMedia();
}

/** Forget the last call on screen: chat, checks, evidence, results, transaction status, forms. */
export function resetCall() {
  Object.assign(state, { call: null, session: null, idStill: null, selected: null, catalog: [], guidanceRun: null, highlight: -1, wrapTouched: false });
  state.steps.clear();
  document.body.dataset.call = "";
  for (const key of ["confirm", "liveness", "catalogLevel", "level", "path", "faceConsent", "evidence", "chain"]) delete document.body.dataset[key];
  for (const id of ["chat-log", "tx-status", "tx-history", "tx-list", "tx-fields", "checks", "evidence", "account", "lane-badge", "guide-step", "chain-status"]) mount($(id));
  $("tx-form").hidden = true;
  for (const id of ["tx-search", "claim-msisdn", "claim-name", "service-password", "wrapup-notes"]) $(id).value = "";
  $("tx-search").setAttribute("aria-expanded", "false");
  $("tx-search").removeAttribute("aria-activedescendant");
  $("wrapup-code").selectedIndex = 0;
  $("level").textContent = "–";
  $("level-note").textContent = "";
  $("consent-state").textContent = "?";
  $("consent-state").className = "badge";
  $("consent-note").hidden = true;
  $("call-id").textContent = "";
  $("guide-step").disabled = true;
  $("btn-guide-push").disabled = true;
  $("btn-evidence").disabled = true;
  mount($("workorders"), h("p", { class: "muted" }, both("staff.workorders_later")));
}

async function openSession() {
  try {
    const opened = await api("/api/counter/sessions", { method: "POST", body: { call_id: state.call.id } });
    state.session = opened.session;
  } catch (err) {
    if (err.status !== 409) throw err;
    state.session = (await api(`/api/counter/sessions/${state.call.id}`)).session;
  }
  await refreshSession();
  await refreshCatalog();
}

export function enableCall(on) {
  for (const id of ["btn-suggest-helper", "btn-mute", "btn-hangup", "transfer-to", "transfer-agent", "btn-transfer", "claim-msisdn", "claim-name",
    "btn-claim", "btn-consent-yes", "btn-consent-no", "service-password", "btn-password", "btn-face", "btn-liveness", "btn-id",
    "btn-next", "btn-attest", "tx-search", "chat-input", "btn-chat", "wrapup-code", "wrapup-notes", "btn-close", "guide-script",
    "btn-guide-start"]) {
    $(id).disabled = !on;
  }
}

export function hangup() {
  if (!state.call) return;
  send({ type: "hangup", call_id: state.call.id, reason: "agent" });
}

/** Hanging up asks once (Alt+H or the button): Enter confirms, Escape keeps the call. */
export function askHangup() {
  const dialog = $("hangup-dialog");
  if (!state.call || state.call.ended || dialog.open) return;
  dialog.returnValue = "";
  dialog.showModal();
  $("btn-hangup-yes").focus();
}

export function callEnded(msg) {
  state.stopIce?.();
  state.stopLink?.();
  state.peer?.close();
  state.peer = null;
  state.witness?.close();
  state.witness = null;
  $("recording-state").hidden = true;
  $("recording-warn").hidden = true;
  delete document.body.dataset.recording;
  for (const m of state.monitors.values()) m.close();
  state.monitors.clear();
  $("remote-video").srcObject = null;
  $("helper-video").srcObject = null;
  $("helper-tile").hidden = true;
  $("holder-label").hidden = true;
  delete document.body.dataset.helper;
  delete document.body.dataset.remoteVideo;
  $("call-state").textContent = both("staff.call_ended", { reason: msg.reason });
  document.body.dataset.rtc = "closed";
  for (const id of ["btn-suggest-helper", "btn-mute", "btn-hangup", "transfer-to", "transfer-agent", "btn-transfer", "btn-face", "btn-liveness", "btn-id", "btn-next", "chat-input", "btn-chat"]) {
    $(id).disabled = true;
  }
  if (state.call) state.call.ended = true;
  $("wrapup-code").focus();
  toast(both("staff.call_ended_wrap"));
}

export function transfer() {
  const agent = $("transfer-agent").value.trim();
  const msg = agent ? { type: "transfer", call_id: state.call.id, to: "agent", agent } : { type: "transfer", call_id: state.call.id, to: "supervisor" };
  send(msg);
}

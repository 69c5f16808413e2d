// The agent console: presence, queue, offers, the call, the customer panel (claim, consent, level,
// identity checks), transactions confirmed on the customer's own screen, step push, chat, transfer,
// wrap-up, work orders.  Speaks signaling v1 (docs/protocol.md) and the counter API.  This module wires
// the signaling messages, the keyboard and the page's controls to the parts in this folder.

import { header, requireUser, staffSocket, toast } from "../login/staff.js";
import { both, noticeBoth } from "../shared/i18n.js";
import { watchNetwork } from "../shared/recovery.js";
import { startCallbacks } from "./callbacks.js";
import { addIdUpload, attest, faceCheck, idCapture, liveness, nextSteps } from "./checks.js";
import { askHangup, callEnded, callStarted, hangup, transfer } from "./lifecycle.js";
import { helperState, monitorJoined, showRecording, startMedia, startWitness } from "./media.js";
import { claim, consent, openEvidence, password, refreshSession } from "./panel.js";
import { accept, decline, helpAlert, refreshQueue, renderStateTime, showOffer, showState, togglePresence } from "./presence.js";
import { $, send, setPresence, state } from "./state.js";
import { openSearch, refreshCatalog, renderPicker, runSelected, searchKey } from "./transactions.js";
import { addChat, closeSession, loadScripts, loadWrapUps, pushGuidance, sendChat, startGuidance } from "./wrapup.js";

// ---- signaling --------------------------------------------------------------------------------

const handlers = {
  welcome(msg) {
    state.iceServers = msg.ice_servers ?? [];
    // (re)connected: keep the presence chosen here; in a call the server puts the call back itself
    if (!state.call) setPresence(state.presence);
  },
  ice_servers(msg) {
    state.iceServers = msg.ice_servers ?? [];
  },
  presence_ack: showState,
  agent_state: showState,
  call_offer: showOffer,
  offer_timeout() {
    state.offer = null;
    $("offer").hidden = true;
    toast(both("staff.offer_missed"), "error");
  },
  offer_withdrawn(msg) {
    state.offer = null;
    $("offer").hidden = true;
    toast(both("staff.customer_left", { reason: msg.reason }));
  },
  call_started: callStarted,
  async sdp(msg) {
    if (msg.kind !== "answer") return;
    const monitor = state.monitors.get(msg.sender);
    if (monitor) await monitor.answer(msg.sdp);
    else await state.peer?.answer(msg.sdp);
  },
  async ice(msg) {
    const monitor = state.monitors.get(msg.sender);
    if (monitor) await monitor.ice(msg);
    else await state.peer?.ice(msg);
  },
  async peer_state(msg) {
    $("call-state").textContent = both(msg.state === "lost" ? "staff.peer_lost" : "staff.peer_back");
    if (msg.state === "back") await startMedia();
  },
  monitor_joined: monitorJoined,
  helper_state: helperState,
  async witness_sdp(msg) {
    if (msg.kind === "answer") await state.witness?.answer(msg.sdp);
  },
  witness_state(msg) {
    if (!state.call || msg.call_id !== state.call.id) return;
    showRecording(msg.recording, msg.status ?? "waiting_media");
    // the server our leg went to stopped answering (another took the call over): a new leg, to that one
    const leg = state.witness?.state;
    if (msg.status === "stopped" && state.local && leg && !["new", "connecting", "connected"].includes(leg)) {
      startWitness(state.local).catch((err) => console.warn("agent console: witness leg", err));
    }
  },
  chat(msg) {
    addChat(msg.text, msg.sender?.startsWith("supervisor:") ? `班长 ${msg.sender.slice(11)}`
      : msg.sender?.startsWith("helper:") ? "家属 helper" : "customer");
  },
  step_result(msg) {
    if (msg.status === "cancelled" && msg.value === "help") helpAlert(msg.step_id);
    if (msg.sender?.startsWith("helper:")) toast(both("staff.helper_answered", { what: `${msg.status}${msg.value ? ` (${msg.value})` : ""}` }));
    const resolve = state.steps.get(msg.step_id);
    if (resolve) {
      state.steps.delete(msg.step_id);
      resolve(msg);
    }
  },
  notice(msg) {
    if (msg.code === "server_restart") {
      state.ws.expectRestart(); // back within seconds; the call and the presence are kept
      if (state.call) $("call-state").textContent = noticeBoth(msg.code);
    }
    document.body.dataset.notice = msg.code;
    toast(noticeBoth(msg.code)); // the console's own words for the code, Chinese and English
  },
  call_ended: callEnded,
  error(msg) {
    if (msg.code === "unknown_type" && state.witness) return; // a server without a witness
    toast(`${both("staff.server_refused")} ${msg.reason}`, "error");
  },
};

function connect() {
  state.ws = staffSocket("agent-console/1", handlers, {
    onState: (s) => {
      $("ws-state").textContent = s === "open" ? both("staff.ws_online") : s;
      document.body.dataset.ws = s;
    },
  });
  state.ws.connect();
  const down = ["disconnected", "failed"];
  watchNetwork({ ws: state.ws, mediaDown: () => !!state.peer && down.includes(state.peer.pc.iceConnectionState) });
}

// ---- keyboard ---------------------------------------------------------------------------------

const SHORTCUTS = {
  p: togglePresence,
  a: accept,
  f: faceCheck,
  l: liveness,
  i: idCapture,
  v: nextSteps,
  t: openSearch,
  c: () => $("chat-input").focus(),
  w: () => $("wrapup-code").focus(),
  h: askHangup,
  e: () => openEvidence(),
};

document.addEventListener("keydown", (event) => {
  if (!event.altKey || event.ctrlKey || event.metaKey) return;
  const fn = SHORTCUTS[event.key.toLowerCase()];
  if (fn) {
    event.preventDefault();
    fn();
  }
});

// ---- boot -------------------------------------------------------------------------------------

async function boot() {
  state.user = await requireUser("agent", "supervisor");
  header(state.user);
  // presence changes on an explicit choice only (a button), never on arrow keys passing over a list
  $("btn-available").addEventListener("click", () => setPresence("available"));
  $("btn-suggest-helper").addEventListener("click", () => {
    // the holder's screen asks them; only their yes mints a link (with their own token)
    if (state.call && !state.call.ended) send({ type: "helper_suggest", call_id: state.call.id });
    toast(both("staff.helper_suggested"));
  });
  $("btn-away").addEventListener("click", () => setPresence("away"));
  $("btn-extend").addEventListener("click", () => setPresence("wrap_up"));
  $("hangup-dialog").addEventListener("close", () => { if ($("hangup-dialog").returnValue === "yes") hangup(); });
  $("btn-evidence").addEventListener("click", () => openEvidence());
  $("btn-evidence-close").addEventListener("click", () => $("evidence-dialog").close());
  $("tx-search").addEventListener("keydown", searchKey);
  $("wrapup-code").addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      $("wrap-form").requestSubmit();
    }
  });
  for (const id of ["wrapup-code", "wrapup-notes"]) $(id).addEventListener("input", () => { state.wrapTouched = true; });
  $("btn-accept").addEventListener("click", accept);
  $("btn-decline").addEventListener("click", decline);
  $("btn-hangup").addEventListener("click", askHangup);
  $("btn-mute").addEventListener("click", () => {
    state.muted = !state.muted;
    state.peer?.setMuted(state.muted);
    $("btn-mute").textContent = both(state.muted ? "staff.unmute" : "staff.mute");
  });
  $("btn-transfer").addEventListener("click", transfer);
  $("claim-form").addEventListener("submit", claim);
  $("btn-consent-yes").addEventListener("click", () => consent(true));
  $("btn-consent-no").addEventListener("click", () => consent(false));
  $("password-form").addEventListener("submit", password);
  $("btn-face").addEventListener("click", faceCheck);
  $("btn-liveness").addEventListener("click", liveness);
  $("btn-id").addEventListener("click", idCapture);
  $("btn-next").addEventListener("click", nextSteps);
  $("btn-attest").addEventListener("click", attest);
  addIdUpload();
  $("tx-search").addEventListener("input", () => { state.highlight = -1; renderPicker(); });
  $("tx-search").addEventListener("focus", () => refreshCatalog().catch((err) => toast(err.message, "error")));
  $("tx-form").addEventListener("submit", runSelected);
  $("btn-tx-cancel").addEventListener("click", () => { state.selected = null; $("tx-form").hidden = true; renderPicker(); });
  $("btn-guide-start").addEventListener("click", startGuidance);
  $("btn-guide-push").addEventListener("click", pushGuidance);
  $("btn-help-ack").addEventListener("click", () => {
    $("help-alert").hidden = true;
    delete document.body.dataset.helpAlert;
  });
  $("chat-form").addEventListener("submit", sendChat);
  $("wrap-form").addEventListener("submit", closeSession);
  await Promise.all([loadWrapUps(), loadScripts()]);
  connect();
  refreshQueue();
  startCallbacks($("callbacks"), state.user.username);
  setInterval(renderStateTime, 1000);
  setInterval(() => {
    refreshQueue();
    if (state.call && !state.call.ended) refreshSession().catch(() => {});
  }, 3000);
  document.body.dataset.ready = "1";
}

boot().catch((err) => toast(err.message, "error"));

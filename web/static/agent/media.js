// The call's media: the agent's camera, the connection to the customer, the witness leg (recording),
// the link figures, and the extra connections for a supervisor listening in and a helper (家属).

import { api, h, toast } from "../login/staff.js";
import { both } from "../shared/i18n.js";
import { WitnessLeg } from "../shared/witness.js";
import { keepIceAlive } from "../shared/recovery.js";
import { CAPS, LinkSummary, watchLink } from "../shared/linkquality.js";
import { OfferPeer } from "./call.js";
import { $, send, state } from "./state.js";

const RTC_STATES = ["connected", "connecting", "failed", "disconnected"]; // staff.rtc.<state>

// ---- the call ---------------------------------------------------------------------------------

async function localMedia() {
  if (state.local) return state.local;
  try {
    state.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  } catch {
    state.local = new MediaStream();
    toast(both("staff.no_local_media"), "error");
  }
  $("self-video").srcObject = state.local;
  return state.local;
}

export async function startMedia() {
  state.peer?.close();
  const stream = await localMedia();
  state.peer = new OfferPeer({
    send,
    iceServers: state.iceServers,
    onRemote: (remote) => {
      state.remote = remote;
      const video = $("remote-video");
      if (video.srcObject !== remote) video.srcObject = remote;
      video.onresize = () => { document.body.dataset.remoteVideo = `${video.videoWidth}x${video.videoHeight}`; };
      video.play?.().catch(() => {});
    },
    onState: (s) => {
      document.body.dataset.rtc = s;
      $("call-state").textContent = RTC_STATES.includes(s) ? both(`staff.rtc.${s}`) : s;
    },
  });
  await state.peer.offer(state.call.id, [stream]);
  const peer = state.peer;
  state.stopIce?.();
  state.stopIce = keepIceAlive(peer.pc, () => peer.reoffer());
  watchCallLink();
  await startWitness(stream);
}

/** The call's figures (round trip, loss, bitrates) and, on a weak network, that the video pauses. */
function watchCallLink() {
  state.stopLink?.();
  let el = $("link-stats");
  if (!el) {
    el = h("span", { class: "link-stats", id: "link-stats", role: "status" });
    const note = h("span", { class: "rec-warn", id: "link-note", hidden: true });
    $("call-state").after(el, note);
  }
  const summary = new LinkSummary();
  const callId = state.call.id;
  const stops = [
    watchLink({
      getPc: () => state.peer?.pc,
      onSample: (s) => {
        summary.add(s);
        // kept with the call for the supervisor (web/link_api.py)
        if (summary.samples % 15 === 0) api(`/api/calls/${callId}/link`, { method: "POST", body: summary.toJSON() }).catch(() => {});
        document.body.dataset.link = s.level;
        el.textContent = both("net.stats", { rtt: s.rttMs, loss: s.lossPct, up: s.upKbps, down: s.downKbps });
      },
      onMedia: (mode) => {
        document.body.dataset.media = mode;
        const note = $("link-note");
        note.textContent = both(mode === "audio_only" ? "net.audio_only" : "net.video_back");
        note.hidden = false;
      },
    }),
    watchLink({ getPc: () => state.witness?.pc, caps: CAPS.witness, pause: false }),
  ];
  state.stopLink = () => stops.forEach((stop) => stop());
}

/** Send our audio and video to the server's witness too (recording); a server without one says so. */
export async function startWitness(stream) {
  state.witness?.close();
  if (!stream.getTracks().length) return;
  state.witness = new WitnessLeg({ send, iceServers: state.iceServers, onState: (s) => { document.body.dataset.witness = s; } });
  await state.witness.offer(state.call.id, stream);
}

// What the console says about the recording: the badge only while the server's witness receives the
// customer's media (witness_state recording: true); a warning otherwise, since changes are refused
// once the call has gone unrecorded past the server's grace (409 recording_required).
const RECORDING_WARN = ["waiting_media", "stopped"]; // staff.recording.<status>

export function showRecording(recording, status) {
  $("recording-state").hidden = !recording;
  const warn = $("recording-warn");
  warn.hidden = recording || !state.call;
  warn.textContent = both(`staff.recording.${RECORDING_WARN.includes(status) ? status : "waiting_media"}`);
  document.body.dataset.recording = recording ? "1" : status === "stopped" ? "stopped" : "0";
}

// ---- a supervisor listening in: a second, send-only connection ----------------------------------------

export async function monitorJoined(msg) {
  const to = msg.supervisor.startsWith("supervisor:") ? msg.supervisor : `supervisor:${msg.supervisor}`;
  const peer = new OfferPeer({ send, iceServers: state.iceServers, to });
  state.monitors.set(to, peer);
  const streams = [state.local, state.remote].filter(Boolean);
  await peer.offer(state.call.id, streams, { receive: false });
  toast(both("staff.monitor_joined", { who: to.slice(11) }));
}

// ---- a helper (家属) in the call: a third party, labelled; the holder's identity stays the holder's -----

const RELATIONS = ["child", "spouse", "grandchild", "sibling", "relative", "friend", "other"]; // relation.<code>
const HELPER_CONSENTS = ["pending", "agreed", "refused"]; // staff.helper_consent.<code>

export async function helperState(msg) {
  if (!state.call || msg.call_id !== state.call.id) return;
  document.body.dataset.helper = msg.present ? msg.consent ?? "present" : "gone";
  $("helper-tile").hidden = !msg.present || msg.consent === "refused";
  $("holder-label").hidden = !msg.present;
  const relation = RELATIONS.includes(msg.relation) ? both(`relation.${msg.relation}`) : msg.relation;
  const who = msg.name ? ` ${msg.name}（${relation}）` : "";
  const consent = both(`staff.helper_consent.${HELPER_CONSENTS.includes(msg.consent) ? msg.consent : "none"}`);
  $("helper-label").textContent = `${both("helper.label")}${who} · ${consent}`;
  if (msg.event === "joined" && msg.present) {
    state.monitors.get(msg.helper)?.close();
    const peer = new OfferPeer({
      send, iceServers: state.iceServers, to: msg.helper,
      onRemote: (remote) => {
        const video = $("helper-video");
        if (video.srcObject !== remote) video.srcObject = remote;
        video.play?.().catch(() => {});
      },
    });
    state.monitors.set(msg.helper, peer); // answers and candidates are routed by sender, as a supervisor's
    await peer.offer(state.call.id, [await localMedia()]);
    toast(both("staff.helper_joined"));
  }
  if (msg.event === "left" || msg.consent === "refused") {
    state.monitors.get(msg.helper)?.close();
    state.monitors.delete(msg.helper);
  }
}

// The customer's page: entry, consent, queue, call, pushed steps, guided captures, confirmation,
// rating. Speaks the signaling protocol v1 (docs/protocol.md) over /ws.

import { mount } from "../shared/dom.js";
import { currentLang, noticeText, setLang, t } from "../shared/i18n.js";
import { hush, repeat, speak, speakParts } from "../shared/speech.js";
import { WitnessLeg } from "../shared/witness.js";
import { replaceTrackIn, watchNetwork } from "../shared/recovery.js";
import { CAPS, watchLink } from "../shared/linkquality.js";
import { ReconnectingSocket } from "../shared/ws.js";
import { autoCapture, sha256Hex } from "./capture.js";
import { CallPeer } from "./call.js";
import { HelperLink, consentScreen, holderJoin, inviteScreen, suggestScreen } from "./helper.js";
import { browserKind, classifyError, isLive, openCallMedia, openFrontCamera, openMicrophone, openRearCamera, openVoiceOnly } from "./media.js";
import { allFine, checkAll, precheckScreen } from "./precheck.js";
import * as S from "./screens.js";
import { bookCallback, bookedScreen, comeBack, holdPanel, keptScreen, notifyBack, takeHoldCode, takeInvite } from "./hold.js";

const STORE = "rc.customer";
const $ = (id) => document.getElementById(id);

const state = {
  senior: false,
  faceConsent: null,
  token: null,
  callId: null,
  stream: null,
  muted: false,
  inCall: false,
  reconnecting: false,
  chat: [],
  results: [],
  queue: { position: null, etaS: null },
  ended: false,
  callToken: null,
  hint: null, // a care link's sealed line (?hint=): the server decides the care lane by the holder's age
  careAge: null, // set when the server said this link's holder goes to the care lane
  phone: "", // the number typed on the first screen (optional; sent once with the join, never stored)
  noVideo: null, // voice only: why the camera could not be used (told to the agent with the join)
};

let ws = null;
let noticeTimer = null;
let witness = null; // the send-only leg to the server's recording witness
let netWatch = null; // shared/recovery.js: the signaling socket probed after network changes
let stopLink = null; // shared/linkquality.js: quality shown, audio first on a weak network
let current = null; // () => screen object, rebuilt on language change
let shown = null;
let cleanup = () => {};

const peer = new CallPeer({
  send: (msg) => ws && ws.send(msg),
  onRemoteStream: (stream) => {
    const video = $("agent-video");
    if (video.srcObject !== stream) video.srcObject = stream;
    video.play?.().catch(() => {});
  },
  onState: (s) => {
    document.body.dataset.rtc = s;
    document.body.dataset.rtcGeneration = String(peer.generation);
    if (s === "connected" && state.reconnecting) {
      state.reconnecting = false;
      if (shown?.name === "call") show(callScreen);
    }
  },
});

// A helper (家属) in the call: this phone offers them a connection of its own (issue 21).
const helperLink = new HelperLink({
  send: (msg) => ws && ws.send(msg),
  onRemote: (stream) => {
    const video = $("helper-video");
    if (video.srcObject !== stream) video.srcObject = stream;
    video.play?.().catch(() => {});
  },
});

async function inviteHelper() {
  const resp = await fetch("/api/customer/helper/invite", { method: "POST", headers: { "X-Customer-Token": state.token } });
  if (!resp.ok) return announce(t("helper.invite_failed"));
  const body = await resp.json();
  const back = current;
  show(() => inviteScreen({ svg: body.qr_svg, url: body.url, onDone: () => (state.inCall ? show(callScreen) : show(back)) }));
}

/** A pushed parameter in the page's language: params.text_en / params.text_zh, else params.text. */
function loc(p, key) {
  const suffix = currentLang() === "en" ? "en" : "zh";
  return p[`${key}_${suffix}`] ?? p[key];
}

/**
 * Call the counter API as this customer: X-Customer-Token is this call's join token (the counter
 * session is keyed by the call id); the agent never sees it, so only this screen can confirm.
 */
async function counterApi(path, body) {
  const resp = await fetch(`/api/customer/counter${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "Content-Type": "application/json", "X-Customer-Token": state.callToken },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw Object.assign(new Error(data?.error?.reason ?? `HTTP ${resp.status}`), { code: data?.error?.code });
  return data;
}

/**
 * Send a captured still ("face" or "id") to the identity service: kept only if its face matches the
 * live video, or, face processing declined, an ID still kept without any face processing for the
 * agent to compare by eye. {uploaded, sha256} or {uploaded: false, code}: "still_mismatch" and
 * "id_unreadable" mean take it again.
 */
async function uploadStill(blob, kind) {
  try {
    const resp = await fetch(`/api/customer/identity/still?kind=${kind}`, {
      method: "POST",
      headers: { "Content-Type": "image/jpeg", "X-Customer-Token": state.callToken },
      body: blob,
    });
    const data = await resp.json().catch(() => ({}));
    if (resp.ok) return { uploaded: true, sha256: data.sha256 };
    return { uploaded: false, code: data?.error?.code ?? `http_${resp.status}` };
  } catch {
    return { uploaded: false, code: "network" };
  }
}

function txItem(tx) {
  const en = currentLang() === "en";
  const secrets = secretsOf(tx);
  return {
    id: tx.id,
    title: (en ? tx.title_en : tx.title_zh) ?? tx.code,
    ok: tx.status === "done",
    text: withoutSecrets((en ? tx.text_en : tx.text_zh) ?? (en ? tx.reason : tx.reason_zh) ?? "", secrets),
    secrets,
  };
}

function save() {
  const { senior, faceConsent, token, noVideo } = state;
  sessionStorage.setItem(STORE, JSON.stringify({ senior, faceConsent, token, noVideo, lang: currentLang() }));
}

function show(build) {
  // a line from the agent (or about a step) belongs to the screen it came with: gone on the next one
  if ($("notice").dataset.kind !== "notice") {
    $("notice").hidden = true;
    clearTimeout(noticeTimer);
  }
  cleanup();
  cleanup = () => {};
  current = build;
  shown = build();
  mount($("screen"), shown.node);
  document.body.dataset.screen = shown.name;
  $("stage").hidden = !(state.inCall && ["call", "helper_consent"].includes(shown.name));
  if (state.senior || shown.speak) speakParts([shown.say].flat(), currentLang());
  else hush();
  shown.node.querySelector("h1")?.focus({ preventScroll: true });
  return shown;
}

function setSenior(on) {
  state.senior = on;
  document.body.classList.toggle("senior", on);
}

// ---- entry and consent -----------------------------------------------------------------------

function start() {
  show(() => S.entry({
    careAge: state.careAge,
    phone: state.phone,
    onPhone: (value) => { state.phone = value; },
    onVideo: () => { setSenior(false); consent(); },
    onSenior: () => { setSenior(true); consent(); },
  }));
}

function consent() {
  show(() => S.consent({
    onAgree: faceConsent,
    onDecline: () => show(() => S.consentDeclined({ onBack: start })),
  }));
}

function faceConsent() {
  show(() => S.faceConsent({
    onAgree: () => { state.faceConsent = true; openMedia(); },
    onDecline: () => { state.faceConsent = false; openMedia(); },
  }));
}

async function openMedia() {
  show(S.asking);
  let reason = null;
  try {
    state.stream = await openCallMedia();
  } catch (err) {
    reason = classifyError(err);
    // no camera, or one in use elsewhere: the microphone alone may do (the check offers voice only);
    // a camera refused: the customer chooses between trying again and voice only
    state.stream = reason === "denied" ? null : await openVoiceOnly().catch(() => null);
    if (!state.stream) {
      show(() => S.permissionDenied({ reason, browser: browserKind(), onRetry: openMedia, onVoice: () => openVoice(reason) }));
      return;
    }
  }
  const result = await checkAll(state.stream);
  document.body.dataset.precheck = Object.entries(result).map(([k, v]) => `${k}:${v}`).join(" ");
  if (!allFine(result)) {
    const go = await new Promise((resolve) => show(() => precheckScreen({
      result, onContinue: () => resolve(true), onRetry: () => resolve(false),
    })));
    if (!go) {
      for (const track of state.stream.getTracks()) track.stop();
      openMedia();
      return;
    }
  }
  // going on without a camera: the agent is told why there is no video
  state.noVideo = state.stream.getVideoTracks().length ? null : (reason ?? "no_camera");
  startWith(state.stream);
}

/** Served by voice only: the microphone alone; the agent is told why there is no video. */
async function openVoice(reason) {
  show(S.asking);
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch {
    show(() => S.notice({ name: "voice-failed", title: t("perm.voice_failed") }));
    return;
  }
  state.noVideo = reason;
  save();
  startWith(state.stream);
}

function startWith(stream) {
  $("self-video").srcObject = stream;
  $("self-video").hidden = !!state.noVideo;
  peer.setLocalStream(stream);
  if (state.token) connect();
  else join();
}

// ---- queue and signaling ---------------------------------------------------------------------

async function join() {
  showWaiting();
  try {
    const resp = await fetch("/api/customer/join", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ care: state.senior, hint: state.hint ?? undefined,
        msisdn: state.phone.length === 11 ? state.phone : undefined }),
    });
    if (!resp.ok) throw new Error(`join ${resp.status}`);
    const body = await resp.json();
    state.phone = "";
    if (body.care_reason === "age" && !state.careAge) {
      // the server put the typed number's holder in the care lane: senior mode on, said plainly
      state.careAge = body.care_age;
      setSenior(true);
      document.body.dataset.careByAge = String(body.care_age);
      announce(t("entry.phone_care", { age: body.care_age }));
    }
    state.token = body.token;
    state.callToken = body.token;
    save();
  } catch {
    show(() => S.notice({ name: "error", title: t("error.join") }));
    return;
  }
  connect();
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  ws = new ReconnectingSocket(() => `${scheme}://${location.host}/ws`, {
    onOpen: (resumed) => {
      ws.ws.send(JSON.stringify({ type: "hello", token: state.token, client: "customer-web/1" }));
      if (resumed) peer.markStale();
    },
    onMessage: handle,
    onState: (s) => {
      document.body.dataset.ws = s;
      if (s === "reconnecting" && state.inCall && !state.reconnecting) {
        state.reconnecting = true;
        peer.markStale();
        if (shown?.name === "call") show(callScreen);
      }
    },
  });
  ws.connect();
  // a dead socket after a network change is found by a probe and opened again: the call comes back
  const down = ["disconnected", "failed"];
  netWatch?.stop();
  netWatch = watchNetwork({ ws, mediaDown: () => state.inCall && !!peer.pc && down.includes(peer.pc.iceConnectionState) });
}

function showWaiting(connecting = false) {
  show(() => S.waiting({ ...state.queue, connecting, onLeave: leave }));
  if (!connecting && state.queue.position != null) $("screen").firstElementChild?.append(holdPanel({ onKeep: keepPlace, onBook: bookBack }));
}

/** A scheduled call-back instead of waiting: booked, then this wait ends. */
async function bookBack(msisdn, at) {
  const booked = await bookCallback(state.token, msisdn, at);
  if (!booked) return announce(t("callback.failed"));
  if (ws) ws.send({ type: "hangup", call_id: state.callId ?? undefined, reason: "callback_booked" });
  finish(false); // the camera off, the socket closed: this visit ends with the booking
  show(() => bookedScreen(booked.preferred_at));
}

/** Keep my place: the server keeps it while the page is closed and texts a link back. */
function keepPlace(msisdn) {
  if (ws) ws.send({ type: "keep_place", msisdn });
}

function leave() {
  if (ws) ws.send({ type: "hangup", call_id: state.callId ?? undefined, reason: "customer_left_queue" });
  finish(false);
}

const handlers = {
  welcome(msg) {
    peer.iceServers = msg.ice_servers ?? [];
    if (msg.call_id) state.callId = msg.call_id;
    if (!msg.resumed) {
      // the face-data answer travels with the join: the agent's session has it before anything is checked
      ws.send({ type: "join", care: state.senior, locale: currentLang(), face_consent: state.faceConsent ?? undefined,
        no_video: state.noVideo ?? undefined });
    }
    // agreed on the consent screen before anything started; the witness records only after this
    ws.send({ type: "recording_consent", accepted: true });
  },
  async witness_sdp(msg) {
    if (msg.kind === "answer" && witness && msg.call_id === state.callId) await witness.answer(msg.sdp);
  },
  witness_state(msg) {
    // the badge only while the server's witness receives this phone's media (not when it merely answered)
    const was = document.body.dataset.recording;
    document.body.dataset.recording = msg.recording ? "on" : msg.status === "stopped" ? "stopped" : "consent";
    $("recording").hidden = !msg.recording;
    // stopped while the call itself is fine: say so and open a new leg (during a reconnection the
    // page says it is reconnecting already and opens a new leg when the call is back)
    if (msg.status === "stopped" && was === "on" && state.inCall && !state.reconnecting && ws?.open) {
      announce(t("call.recording_stopped"));
      if (witness?.state !== "new" && witness?.state !== "connecting") startWitness();
    }
  },
  ice_servers(msg) {
    peer.iceServers = msg.ice_servers ?? [];
  },
  queue_status(msg) {
    state.callId = msg.call_id;
    $("btn-helper").hidden = false;
    document.body.dataset.call = msg.call_id;
    document.body.dataset.position = String(msg.position);
    const changed = msg.position !== state.queue.position;
    state.queue = { position: msg.position, etaS: msg.est_wait_s };
    if (state.inCall || state.kept) return;
    if (["helper_consent", "helper_invite"].includes(shown?.name)) return; // a helper's screen waits for the answer
    if (shown?.name !== "waiting" || shown.connecting || !document.getElementById("keep-place")) showWaiting();
    else if (changed) {
      // the same live region, new words: screen readers announce the change; the voice says it too
      const now = S.waitingWords(state.queue);
      shown.update(now);
      speak(now.say, currentLang());
    }
  },
  place_kept(msg) {
    state.kept = true;
    show(() => keptScreen(msg.return_s));
  },
  place_notice() {
    state.kept = false;
    notifyBack();
    showWaiting();
  },
  call_started(msg) {
    state.callId = msg.call_id;
    $("btn-helper").hidden = false;
    delete document.body.dataset.position;
    document.body.dataset.resumed = msg.resumed ? "1" : "0";
    if (!state.inCall) {
      state.inCall = true;
      if (!msg.resumed) state.chat = []; // a new call starts with nothing from an earlier one
      show(callScreen);
    } else if (shown?.name === "call") {
      show(callScreen); // resumed (after a restart): the agent's offer follows and reconnects the media
    }
    keepAwake();
    startWitness();
    watchCallLink();
  },
  async sdp(msg) {
    if (helperLink.owns(msg)) return helperLink.relay(msg);
    if (msg.kind === "offer") await peer.handleOffer(msg.call_id, msg.sdp);
  },
  async ice(msg) {
    if (helperLink.owns(msg)) return helperLink.relay(msg);
    await peer.handleIce(msg);
  },
  async helper_state(msg) {
    document.body.dataset.helper = msg.present ? msg.consent ?? "present" : "gone";
    $("helper-tile").hidden = !msg.present;
    if (msg.event === "joined" && msg.present) await helperLink.connect(state.callId, msg.helper, state.stream, peer.iceServers);
    if (msg.event === "left") helperLink.close();
    if (msg.event === "suggested") {
      show(() => suggestScreen({ onYes: () => inviteHelper(), onNo: () => show(callScreen) }));
      return;
    }
    if (msg.event === "intro" && msg.consent === "pending") {
      const answer = (accepted) => {
        ws.send({ type: "helper_consent", call_id: state.callId, accepted });
        if (state.inCall) show(callScreen);
        else showWaiting();
      };
      show(() => consentScreen({ name: msg.name, relation: msg.relation, onYes: () => answer(true), onNo: () => answer(false) }));
    }
    if (msg.consent === "refused") {
      helperLink.close();
      $("helper-tile").hidden = true;
    }
  },
  peer_state(msg) {
    state.reconnecting = msg.state === "lost";
    if (shown?.name === "call") show(callScreen);
  },
  chat(msg) {
    state.chat.push({ text: msg.text, mine: false });
    announce(msg.text, "chat");
  },
  push_step(msg) {
    runStep(msg);
  },
  notice(msg) {
    if (msg.code === "replaced") {
      // another tab took over this call: stop here instead of taking it back
      state.ended = true;
      ws.close();
      peer.close();
      witness?.close();
      for (const track of state.stream?.getTracks() ?? []) track.stop();
      show(() => S.notice({ name: "replaced", title: t("error.replaced") }));
      return;
    }
    if (msg.code === "liveness_failed") {
      // what happened and what comes next, on its own screen and spoken; back to the call when read
      document.body.dataset.notice = msg.code;
      // (back to the call by itself after a while: the agent is there and may push the next step)
      briefly(() => S.notice({ name: "liveness-failed", title: t("live.failed_title"), text: noticeText(msg.code),
        onOk: backToCall }), 10000);
      return;
    }
    if (msg.code === "server_restart") {
      // the call is kept: the socket comes back within seconds and the call resumes by itself
      ws.expectRestart();
      if (state.inCall && !state.reconnecting) {
        state.reconnecting = true;
        peer.markStale();
        if (shown?.name === "call") show(callScreen);
      }
    }
    document.body.dataset.notice = msg.code;
    announce(noticeText(msg.code)); // the page's own words for the code, in its language
  },
  call_ended(msg) {
    if (msg.reason === "agent_lost" || msg.reason === "transferred" || msg.reason === "server_restart") {
      // back at the head of the lane with the same call id: the next agent picks up
      backToQueue();
      return;
    }
    finish(true);
  },
  error(msg) {
    if (msg.code === "bad_token" && !state.inCall && !state.ended) {
      // the place in the queue expired while away: join again, without asking anything again
      ws.close();
      ws = null;
      state.token = null;
      save();
      join();
    }
  },
};

/** The agent is gone but the call goes on: wait for the next agent (queue_status follows). */
function backToQueue() {
  state.inCall = false;
  state.reconnecting = false;
  peer.close();
  peer.markStale();
  witness?.close();
  witness = null;
  $("recording").hidden = true;
  showWaiting(true);
}

/** Quality shown (a word and bars), and said when the video pauses for a weak network or comes back. */
function watchCallLink() {
  if (stopLink) return;
  let el = $("link-level");
  if (!el) {
    el = document.createElement("p");
    el.id = "link-level";
    el.className = "link-level";
    el.setAttribute("role", "status");
    $("stage").append(el);
  }
  const stops = [
    watchLink({
      getPc: () => peer.pc,
      onSample: (s) => {
        document.body.dataset.link = s.level;
        el.dataset.level = s.level;
        el.textContent = t(`net.${s.level}`);
      },
      onMedia: (mode) => {
        document.body.dataset.media = mode;
        announce(t(mode === "audio_only" ? "net.audio_only" : "net.video_back"));
      },
    }),
    watchLink({ getPc: () => witness?.pc, caps: CAPS.witness, pause: false }),
  ];
  stopLink = () => stops.forEach((stop) => stop());
}

/** (Re)open the recording leg to the server's witness with the current camera and microphone. */
async function startWitness() {
  witness?.close();
  const leg = new WitnessLeg({
    send: (m) => ws && ws.send(m),
    iceServers: peer.iceServers,
    onState: (s) => {
      document.body.dataset.witness = s;
      // aiortc has no ICE restart: a lost witness leg is offered again on a new connection
      if (s === "failed" && witness === leg && state.inCall && !state.ended) setTimeout(() => { if (witness === leg) startWitness(); }, 1000);
    },
  });
  witness = leg;
  try {
    await witness.offer(state.callId, state.stream);
  } catch (err) {
    console.warn("customer page: witness leg", err);
  }
}


/** Show a line from the agent ("chat"), about a step ("step") or from the service ("notice") in the
 * banner for a while, and say it; a chat or step line leaves with the screen it came with. */
function announce(text, kind = "notice") {
  const banner = $("notice");
  banner.textContent = text;
  banner.dataset.kind = kind;
  banner.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { banner.hidden = true; }, 15000);
  speak(text, currentLang());
}

let wakeLock = null;

/** Keep the screen on during the call (where the browser allows it). */
async function keepAwake() {
  try {
    if (state.inCall && !wakeLock && navigator.wakeLock) {
      wakeLock = await navigator.wakeLock.request("screen");
      wakeLock.addEventListener("release", () => { wakeLock = null; });
    }
  } catch {
    // refused (battery saver): the call goes on anyway
  }
}

function handle(msg) {
  const fn = handlers[msg.type];
  if (fn) Promise.resolve(fn(msg)).catch((err) => console.warn("customer page:", msg.type, err));
}

// ---- in the call -----------------------------------------------------------------------------

function callScreen() {
  return S.inCall({
    voiceOnly: !!state.noVideo,
    muted: state.muted,
    reconnecting: state.reconnecting,
    onMute: () => {
      state.muted = !state.muted;
      peer.setMuted(state.muted);
      show(callScreen);
    },
    onHangup: () => show(() => S.hangupConfirm({
      onYes: () => {
        ws.send({ type: "hangup", call_id: state.callId, reason: "customer" });
        finish(true);
      },
      onNo: () => show(callScreen),
    })),
    onType: () => show(keypadScreen),
  });
}

function keypadScreen(status = null) {
  return S.keypad({
    status,
    onSend: async (password) => {
      // to the server only: it checks the line's password and tells the agent's session the level
      let result = "ok";
      try {
        await counterApi("/password", { password });
      } catch (err) {
        result = err.code === "wrong_password" ? "wrong" : err.code === "password_locked" ? "locked" : "failed";
      }
      document.body.dataset.password = result;
      show(() => keypadScreen(result));
    },
    onClose: () => show(callScreen),
  });
}

function stepResult(stepId, status, value) {
  ws.send({ type: "step_result", call_id: state.callId, step_id: stepId, status, value: value ?? undefined });
}

function backToCall() {
  if (state.inCall) show(callScreen);
}

/** Show a short notice, then go back to the call unless something else was shown meanwhile. */
function briefly(build, ms = 1500) {
  const view = show(build);
  setTimeout(() => {
    if (shown === view) backToCall();
  }, ms);
}

function runStep(msg) {
  const p = msg.params ?? {};
  const id = msg.step_id;
  switch (msg.step) {
    case "face_capture":
      return faceCaptureStep(id, p);
    case "show_id":
      return idCaptureStep(id, p);
    case "switch_camera":
      return switchCameraStep(id, p);
    case "confirm":
      return confirmStep(id, p);
    case "liveness":
      return livenessStep(id, p);
    default:
      if (p.result) state.results.push({ title: loc(p.result, "title") ?? loc(p, "title") ?? "", ok: p.result.ok !== false, text: loc(p.result, "text") });
      return infoStep(id, p);
  }
}

function infoStep(id, p) {
  show(() => S.step({
    text: loc(p, "text") ?? loc(p, "title") ?? "",
    press: loc(p, "press"),
    onDone: () => { stepResult(id, "ok"); backToCall(); },
    onHelp: () => {
      // the agent's console raises an alert with this step; the customer hears that help is coming
      stepResult(id, "cancelled", "help");
      briefly(() => S.notice({ name: "help-coming", title: t("step.help_coming") }), 6000);
    },
  }));
}

/**
 * The movements of a liveness challenge, one at a time, spoken, paced to the server's deadline
 * (3-6 s each); the witness collects the frames meanwhile. The customer may ask to start again.
 */
function livenessStep(id, p) {
  const sequence = Array.isArray(p.sequence) ? p.sequence : [];
  if (!sequence.length) return infoStep(id, p);
  let stopped = false;
  let timer = null;
  const view = show(() => S.liveness({
    stream: state.stream,
    onAgain: () => {
      stopped = true;
      clearTimeout(timer);
      stepResult(id, "cancelled", "again");
      backToCall();
    },
  }));
  cleanup = () => { stopped = true; clearTimeout(timer); };
  const left = typeof p.deadline === "number" ? p.deadline * 1000 - Date.now() - 1000 : NaN;
  const each = Number.isFinite(left) && left > 0 ? Math.min(6000, Math.max(3000, left / sequence.length)) : 5000;
  const next = (i) => {
    if (stopped) return;
    if (i >= sequence.length) {
      stopped = true;
      stepResult(id, "ok", JSON.stringify({ actions: sequence.length }));
      briefly(() => S.notice({ name: "captured", title: t("live.done") }));
      return;
    }
    const text = t(`live.${sequence[i]}`);
    view.action.textContent = text;
    view.progress.textContent = t("live.progress", { i: i + 1, n: sequence.length });
    document.body.dataset.liveAction = sequence[i];
    speak(text, currentLang());
    timer = setTimeout(() => next(i + 1), each);
  };
  timer = setTimeout(() => next(0), 1500);
}

async function setVideoTrack(track) {
  const old = state.stream.getVideoTracks()[0];
  if (old && old !== track) {
    state.stream.removeTrack(old);
    old.stop();
  }
  if (!state.stream.getVideoTracks().includes(track)) state.stream.addTrack(track);
  await peer.replaceVideo(track);
  await witness?.replaceVideo(track);
  $("self-video").srcObject = new MediaStream([track]);
}

async function switchCameraStep(id, p) {
  try {
    const track = p.facing === "user" ? await openFrontCamera() : await openRearCamera();
    await setVideoTrack(track);
    $("self-video").classList.toggle("mirror", p.facing === "user");
    stepResult(id, "ok", track.getSettings?.().facingMode ?? null);
  } catch (err) {
    stepResult(id, "failed", classifyError(err));
  }
  backToCall();
}

function faceCaptureStep(id, p) {
  if (state.noVideo) {
    stepResult(id, "cancelled", "no_video");
    return;
  }
  if (state.faceConsent === false) {
    stepResult(id, "cancelled", "face_declined");
    briefly(() => S.notice({ name: "face-declined", title: t("face.declined_notice") }));
    return;
  }
  let watcher = null;
  const timer = S.countdown(p.timeout_s ?? 90, () => {
    watcher?.stop();
    stepResult(id, "failed", "timeout");
    backToCall();
  });
  const view = show(() => S.faceCapture({ stream: state.stream, timer }));
  watcher = autoCapture(view.video, "face", { onHint: (hint) => { view.hint.textContent = t(`face_cap.hint_${hint}`); document.body.dataset.hint = hint; } });
  cleanup = () => { timer.stop(); watcher.stop(); };
  watcher.done.then(async (shot) => {
    if (!shot) return;
    timer.stop();
    const sha = await sha256Hex(shot.blob);
    const upload = await uploadStill(shot.blob, "face");
    const tries = (p.tries ?? 0) + 1;
    if (upload.code === "still_mismatch" && tries < 3) {
      faceCaptureStep(id, { ...p, tries });
      announce(t("face_cap.mismatch"), "step");
      return;
    }
    const metrics = { mean: Math.round(shot.metrics.mean), sharpness: Math.round(shot.metrics.sharpness) };
    stepResult(id, upload.code === "still_mismatch" ? "failed" : "ok",
      JSON.stringify({ kind: "face", sha256: upload.sha256 ?? sha, ...upload, ...metrics }));
    document.body.dataset.captured = "face";
    briefly(() => S.notice({ name: "captured", title: t("face_cap.done") }));
  });
}

async function idCaptureStep(id, p) {
  let watcher = null;
  let rear = null;
  const restore = async () => {
    try {
      await setVideoTrack(await openFrontCamera());
    } catch {
      // the agent still hears the customer; the camera comes back on the next page resume
    }
  };
  const timer = S.countdown(p.timeout_s ?? 120, async () => {
    watcher?.stop();
    stepResult(id, "failed", "timeout");
    await restore();
    if (shown === view) backToCall(); // a step the agent pushed while the camera switched back stays
  });
  const view = show(() => S.idCapture({ timer }));
  try {
    rear = await openRearCamera();
  } catch (err) {
    timer.stop();
    stepResult(id, "failed", classifyError(err));
    backToCall();
    return;
  }
  await setVideoTrack(rear);
  $("self-video").classList.remove("mirror");
  view.video.srcObject = new MediaStream([rear]);
  view.hint.textContent = t("id_cap.say");
  document.body.dataset.camera = rear.getSettings?.().facingMode ?? "unknown";
  watcher = autoCapture(view.video, "card", { onHint: (hint) => { view.hint.textContent = t(`id_cap.hint_${hint}`); document.body.dataset.hint = hint; } });
  cleanup = () => { timer.stop(); watcher.stop(); };
  const shot = await watcher.done;
  if (!shot) return;
  timer.stop();
  const url = URL.createObjectURL(shot.blob);
  show(() => S.idPreview({
    url,
    onSend: async () => {
      const preview = shown;
      const sha = await sha256Hex(shot.blob);
      // face processing declined: the ID still is kept without any face matching, for the agent's eyes
      const upload = await uploadStill(shot.blob, "id");
      const tries = (p.tries ?? 0) + 1;
      if ((upload.code === "still_mismatch" || upload.code === "id_unreadable") && tries < 3) {
        URL.revokeObjectURL(url);
        idCaptureStep(id, { ...p, tries });
        announce(t("id_cap.mismatch"), "step");
        return;
      }
      const metrics = { sharpness: Math.round(shot.metrics.sharpness), glare: shot.metrics.glare };
      stepResult(id, upload.code === "still_mismatch" ? "failed" : "ok",
        JSON.stringify({ kind: "id", sha256: upload.sha256 ?? sha, ...upload, ...metrics }));
      URL.revokeObjectURL(url);
      await restore();
      $("self-video").classList.add("mirror");
      document.body.dataset.captured = "id";
      // The agent has the result and may push the next step while the front camera comes back:
      // that step must not be covered by this notice.
      if (shown === preview) briefly(() => S.notice({ name: "captured", title: t("id_cap.sent") }));
    },
    onAgain: () => { URL.revokeObjectURL(url); idCaptureStep(id, p); },
  }));
}

/** A request's words in the page's language, as the server gave them (never the agent). */
function confirmWords(tx) {
  const en = currentLang() === "en";
  const c = tx.confirm;
  return {
    title: en ? c.title_en : c.title_zh,
    what: en ? c.what_en : c.what_zh,
    effect: en ? c.effect_en : c.effect_zh,
    inputs: (c.inputs ?? []).map((i) => ({ label: en ? i.label_en : i.label_zh, value: en ? i.value_en : i.value_zh })),
  };
}

/**
 * The agent asks this customer to confirm request params.transaction_id: what it is, its inputs and
 * its effect come from this customer's own counter API; an id not waiting in their own session shows
 * nothing to confirm. The answer relayed to the agent carries the status only, never the result.
 */
async function confirmStep(id, p) {
  const tid = Number(p.transaction_id);
  let tx = null;
  try {
    const counter = await counterApi("");
    tx = (counter.pending ?? []).find((x) => x.id === tid && !x.confirmed && x.confirm) ?? null;
  } catch {
    tx = null;
  }
  if (!tx) {
    stepResult(id, "cancelled", JSON.stringify({ transaction_id: p.transaction_id ?? null, error: "not_pending" }));
    return;
  }
  let answered = false;
  const answer = async (accept, why) => {
    if (answered) return;
    answered = true;
    timer.stop();
    let outcome = null;
    try {
      outcome = await counterApi(`/transactions/${tid}/confirm`, { accept });
    } catch (err) {
      stepResult(id, "failed", JSON.stringify({ transaction_id: tid, accept, error: String(err.message ?? err) }));
      briefly(() => S.notice({ name: "confirmed", title: t("confirm.failed") }));
      return;
    }
    stepResult(id, accept ? "ok" : "cancelled", JSON.stringify({ transaction_id: tid, accept, why, status: outcome.status }));
    outcomeShown(outcome);
  };
  const timer = S.countdown(180, () => answer(false, "timeout"));
  show(() => S.confirmation({ ...confirmWords(tx), timer, onYes: () => answer(true), onNo: () => answer(false, "declined") }));
  cleanup = () => timer.stop();
}

/** What became of a request this customer answered: its result on their screen (secrets only here). */
function outcomeShown(outcome) {
  state.results = state.results.filter((r) => r.id === undefined || r.id !== outcome.id);
  state.results.push(txItem(outcome));
  if (outcome.status === "done") {
    resultStep(outcome);
  } else if (outcome.status === "pending") {
    briefly(() => S.notice({ name: "confirmed", title: t("confirm.waiting") }));
    awaitApproval(outcome.id);
  } else {
    briefly(() => S.notice({ name: "confirmed", title: outcome.status === "declined" ? t("confirm.declined") : txItem(outcome).text || t("result.refused") }));
  }
}

/** A transaction's secrets in the page's language: [{name, label, value}]. */
function secretsOf(tx) {
  const en = currentLang() === "en";
  return (tx.secrets ?? []).map((s) => ({ name: s.name, label: en ? s.label_en : s.label_zh, value: String(s.value) }));
}

/** The server's words for a result with each secret taken out (the secrets are shown large apart). */
function withoutSecrets(text, secrets) {
  let out = text ?? "";
  for (const s of secrets) out = out.split(s.value).join(t("txres.below"));
  return out;
}

/** What to say for secrets: the label, then each digit as its own utterance (never one big number). */
function secretParts(secrets, key = "txres.say_label") {
  return secrets.flatMap((s) => [t(key, { label: s.label }), ...s.value]);
}

/** The result, its secrets large and spoken one digit at a time. */
function resultStep(outcome) {
  const build = () => {
    const en = currentLang() === "en";
    const lang = currentLang();
    const secrets = secretsOf(outcome);
    const text = withoutSecrets(en ? outcome.text_en : outcome.text_zh, secrets);
    return S.txResult({
      title: (en ? outcome.title_en : outcome.title_zh) ?? t("txres.title"),
      text,
      secrets,
      say: [text, ...secretParts(secrets)],
      sayAgain: () => speakParts(secrets.length ? secretParts(secrets, "txres.say_again") : [text], lang),
      onDone: backToCall,
    });
  };
  show(build);
}

/** Confirmed, waiting for a supervisor: show the result once it has run (poll the customer's API). */
function awaitApproval(tid) {
  let tries = 0;
  const poll = async () => {
    if (state.ended || ++tries > 200) return;
    try {
      const counter = await counterApi("");
      const tx = [...(counter.recent ?? [])].find((x) => x.id === tid);
      if (tx && tx.status !== "pending") {
        // a step the agent pushed meanwhile stays: the result waits in the list at the end of the call
        if (shown?.name === "call" || shown?.name === "confirmed") outcomeShown(tx);
        else state.results = [...state.results.filter((r) => r.id !== tid), txItem(tx)];
        return;
      }
    } catch {
      // the session may be closed: stop asking
      return;
    }
    setTimeout(poll, 3000);
  };
  setTimeout(poll, 3000);
}

// ---- the end ---------------------------------------------------------------------------------

function finish(rate) {
  if (state.ended) return;
  state.ended = true;
  const hadCall = state.inCall;
  state.inCall = false;
  stopLink?.();
  wakeLock?.release().catch(() => {});
  peer.close();
  helperLink.close();
  $("btn-helper").hidden = true;
  $("helper-tile").hidden = true;
  witness?.close();
  witness = null;
  $("recording").hidden = true;
  if (ws) ws.close();
  for (const track of state.stream?.getTracks() ?? []) track.stop();
  state.token = null;
  sessionStorage.removeItem(STORE);
  if (rate && hadCall) {
    show(() => S.rating({ onRate: (n) => rated(n), onSkip: () => rated(null) }));
  } else {
    showResult();
  }
}

async function rated(score) {
  if (score !== null) document.body.dataset.rating = String(score);
  if (state.callToken) {
    try {
      if (score !== null) await counterApi("/rating", { rating: score });
      // the server's record is the truth: one entry per transaction, as it ended
      const counter = await counterApi("");
      const byId = new Map((counter.recent ?? []).filter((x) => x.status !== "pending").map((x) => [x.id, x]));
      state.results = [...byId.values()].map(txItem);
    } catch {
      // the session may already be closed: show what this screen knows
    }
  }
  showResult();
}

function showResult() {
  const once = new Map();
  for (const r of state.results) once.set(r.id ?? `local-${once.size}`, r); // one entry per transaction
  show(() => S.result({ items: [...once.values()], onAgain: () => location.reload() }));
}

// ---- robustness: background, rotation, network ----------------------------------------------

document.addEventListener("visibilitychange", async () => {
  if (document.visibilityState !== "visible" || !state.stream || state.ended) return;
  ws?.reconnectNow();
  netWatch?.check();
  keepAwake();
  const audio = state.stream.getAudioTracks()[0];
  if (!isLive(audio)) {
    // the phone took the microphone while away (a call, the SIM settings): take it back, the call is kept
    try {
      const track = await openMicrophone();
      track.enabled = !state.muted;
      if (audio) state.stream.removeTrack(audio);
      state.stream.addTrack(track);
      await replaceTrackIn(peer.pc, track);
      await replaceTrackIn(witness?.pc, track);
    } catch {
      // permission lost while away: the agent can still see the customer
    }
  }
  const video = state.stream.getVideoTracks()[0];
  if (!state.noVideo && !isLive(video) && shown?.name !== "id-capture") {
    try {
      await setVideoTrack(await openFrontCamera());
    } catch {
      // permission lost while away: the next step will ask again
    }
  }
});

// ---- chrome: language, repeat ----------------------------------------------------------------

function boot() {
  let saved = {};
  try {
    saved = JSON.parse(sessionStorage.getItem(STORE) ?? "{}") ?? {};
  } catch {
    saved = {};
  }
  setLang(saved.lang ?? "zh-CN");
  $("btn-lang").addEventListener("click", () => {
    setLang(currentLang() === "zh-CN" ? "en" : "zh-CN");
    relabel();
    save();
    if (current) show(current);
  });
  $("btn-repeat").addEventListener("click", () => repeat());
  $("btn-helper").addEventListener("click", () => inviteHelper());
  relabel();
  state.hint = new URLSearchParams(location.search).get("hint");
  const holdCode = takeHoldCode();
  const invite = takeInvite();
  const holder = location.hash.includes("holder=") ? holderJoin() : null;
  if (holder) {
    // a helper (家属) started this call and handed over this link: the holder's own token for it
    holder.then((got) => {
      if (!got?.token) return show(() => S.notice({ name: "holder-refused", title: t(`invite.${got?.error}`) }));
      state.token = got.token;
      state.callToken = got.token;
      save();
      start();
    });
  } else if (invite) {
    // a call-back's invitation: a fresh visit (consent first) whose join goes to the inviting agent
    state.token = invite;
    state.callToken = invite;
    save();
    start();
  } else if (holdCode) {
    // back from the text's link: the same call, at the head of its lane
    comeBack(holdCode).then((back) => {
      if (!back) return show(() => S.notice({ name: "hold-expired", title: t("hold.expired") }));
      setSenior(!!back.care);
      state.token = back.token;
      state.callToken = back.token;
      save();
      show(() => S.notice({ name: "hold-back", title: t("hold.back") }));
      openMedia();
    });
  } else if (saved.token) {
    setSenior(!!saved.senior);
    state.faceConsent = saved.faceConsent ?? null;
    state.token = saved.token;
    state.noVideo = saved.noVideo ?? null;
    state.callToken = saved.token;
    if (state.noVideo) openVoice(state.noVideo);
    else openMedia();
  } else if (state.hint) {
    careHint().then(start);
  } else {
    start();
  }
}

/** Ask the server whether this care link puts the customer in the care lane (senior mode on then). */
async function careHint() {
  try {
    const resp = await fetch("/api/customer/care-hint", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ hint: state.hint }),
    });
    const body = resp.ok ? await resp.json() : {};
    if (body.care) {
      state.careAge = body.age;
      setSenior(true);
      document.body.dataset.careByAge = String(body.age);
    }
  } catch {
    // no answer: the customer chooses on the first screen as usual
  }
}

function relabel() {
  document.title = t("app.title");
  $("app-title").textContent = t("app.title");
  $("btn-lang").textContent = t("lang.switch");
  $("btn-repeat-label").textContent = t("common.repeat");
  $("recording-label").textContent = t("call.recording");
  $("agent-video").setAttribute("aria-label", t("call.agent"));
  $("self-video").setAttribute("aria-label", t("call.you"));
  $("btn-helper").textContent = t("helper.invite");
  $("helper-label").textContent = t("helper.label");
}

boot();

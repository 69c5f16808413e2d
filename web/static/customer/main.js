// The customer's page: entry, consent, queue, call, pushed steps, guided captures, confirmation,
// rating. Speaks the signaling protocol v1 (docs/protocol.md) over /ws.

import { mount } from "../shared/dom.js";
import { currentLang, noticeText, setLang, t } from "../shared/i18n.js";
import { digitByDigit, hush, repeat, speak } from "../shared/speech.js";
import { WitnessLeg } from "../shared/witness.js";
import { replaceTrackIn, watchNetwork } from "../shared/recovery.js";
import { CAPS, watchLink } from "../shared/linkquality.js";
import { ReconnectingSocket } from "../shared/ws.js";
import { autoCapture, sha256Hex } from "./capture.js";
import { CallPeer } from "./call.js";
import { browserKind, classifyError, isLive, openCallMedia, openFrontCamera, openMicrophone, openRearCamera, openVoiceOnly } from "./media.js";
import { allFine, checkAll, precheckScreen } from "./precheck.js";
import * as S from "./screens.js";

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
};

let ws = null;
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
  if (!resp.ok) throw new Error(data?.error?.reason ?? `HTTP ${resp.status}`);
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
  return {
    id: tx.id,
    title: (en ? tx.title_en : tx.title_zh) ?? tx.code,
    ok: tx.status === "done",
    text: (en ? tx.text_en : tx.text_zh) ?? (en ? tx.reason : tx.reason_zh ?? tx.reason) ?? "",
  };
}

function save() {
  const { senior, faceConsent, token } = state;
  sessionStorage.setItem(STORE, JSON.stringify({ senior, faceConsent, token, lang: currentLang() }));
}

function show(build) {
  cleanup();
  cleanup = () => {};
  current = build;
  shown = build();
  mount($("screen"), shown.node);
  document.body.dataset.screen = shown.name;
  $("stage").hidden = !(state.inCall && (shown.name === "call" || shown.name === "keypad"));
  if (state.senior || shown.speak) speak(shown.say, currentLang());
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
  try {
    state.stream = await openCallMedia();
  } catch (err) {
    const reason = classifyError(err);
    // no camera, or one in use elsewhere: the microphone alone may do (the check offers voice only)
    state.stream = reason === "denied" ? null : await openVoiceOnly().catch(() => null);
    if (!state.stream) {
      show(() => S.permissionDenied({ reason, browser: browserKind(), onRetry: openMedia }));
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
  $("self-video").srcObject = state.stream;
  peer.setLocalStream(state.stream);
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
      body: JSON.stringify({ care: state.senior }),
    });
    if (!resp.ok) throw new Error(`join ${resp.status}`);
    const body = await resp.json();
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
      ws.send({ type: "join", care: state.senior, locale: currentLang(), face_consent: state.faceConsent ?? undefined });
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
    document.body.dataset.call = msg.call_id;
    document.body.dataset.position = String(msg.position);
    const changed = msg.position !== state.queue.position;
    state.queue = { position: msg.position, etaS: msg.est_wait_s };
    if (!state.inCall && (changed || shown?.name !== "waiting")) showWaiting();
  },
  call_started(msg) {
    state.callId = msg.call_id;
    delete document.body.dataset.position;
    document.body.dataset.resumed = msg.resumed ? "1" : "0";
    if (!state.inCall) {
      state.inCall = true;
      show(callScreen);
    } else if (shown?.name === "call") {
      show(callScreen); // resumed (after a restart): the agent's offer follows and reconnects the media
    }
    keepAwake();
    startWitness();
    watchCallLink();
  },
  async sdp(msg) {
    if (msg.kind === "offer") await peer.handleOffer(msg.call_id, msg.sdp);
  },
  async ice(msg) {
    await peer.handleIce(msg);
  },
  peer_state(msg) {
    state.reconnecting = msg.state === "lost";
    if (shown?.name === "call") show(callScreen);
  },
  chat(msg) {
    state.chat.push({ text: msg.text, mine: false });
    if (shown?.name === "keypad") show(current);
    announce(msg.text);
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

let noticeTimer = null;

/** Show a line from the agent or the service in the banner for a while, and say it. */
function announce(text) {
  const banner = $("notice");
  banner.textContent = text;
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

function keypadScreen() {
  return S.keypad({
    lines: state.chat,
    onSend: (text) => {
      ws.send({ type: "chat", call_id: state.callId, text });
      state.chat.push({ text, mine: true });
      show(keypadScreen);
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
function briefly(build) {
  const view = show(build);
  setTimeout(() => {
    if (shown === view) backToCall();
  }, 1500);
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
    onHelp: () => { stepResult(id, "cancelled", "help"); backToCall(); },
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
      announce(t("face_cap.mismatch"));
      faceCaptureStep(id, { ...p, tries });
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
        announce(t("id_cap.mismatch"));
        idCaptureStep(id, { ...p, tries });
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

/** The result, its secrets large and spoken one digit at a time. */
function resultStep(outcome) {
  const build = () => {
    const en = currentLang() === "en";
    const lang = currentLang();
    const secrets = (outcome.secrets ?? []).map((s) => ({ name: s.name, label: en ? s.label_en : s.label_zh, value: String(s.value) }));
    let text = (en ? outcome.text_en : outcome.text_zh) ?? "";
    let spokenText = text;
    for (const s of secrets) spokenText = spokenText.split(s.value).join(digitByDigit(s.value, lang));
    const digits = secrets.map((s) => t("txres.say_digits", { label: s.label, digits: digitByDigit(s.value, lang) })).join(" ");
    const say = secrets.length
      ? `${spokenText} ${secrets.map((s) => t("txres.say_secret", { label: s.label, digits: digitByDigit(s.value, lang) })).join(" ")}`
      : text;
    return S.txResult({
      title: (en ? outcome.title_en : outcome.title_zh) ?? t("txres.title"),
      text,
      secrets,
      say,
      sayAgain: () => speak(secrets.length ? digits : text, lang),
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
      const counter = await counterApi("");
      const done = (counter.recent ?? []).map(txItem);
      const ids = new Set(done.map((d) => d.id));
      state.results = [...done, ...state.results.filter((r) => r.id === undefined || !ids.has(r.id))];
    } catch {
      // the session may already be closed: show what this screen knows
    }
  }
  showResult();
}

function showResult() {
  show(() => S.result({ items: state.results, onAgain: () => location.reload() }));
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
  if (!isLive(video) && shown?.name !== "id-capture") {
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
  relabel();
  if (saved.token) {
    setSenior(!!saved.senior);
    state.faceConsent = saved.faceConsent ?? null;
    state.token = saved.token;
    state.callToken = saved.token;
    openMedia();
  } else {
    start();
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
}

boot();

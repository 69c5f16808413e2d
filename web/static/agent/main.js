// The agent console: presence, queue, offers, the call, the customer panel (claim, consent, level,
// identity checks), transactions confirmed on the customer's own screen, step push, chat, transfer,
// wrap-up, work orders.  Speaks signaling v1 (docs/protocol.md) and the counter API.

import { ReconnectingSocket } from "../shared/ws.js";
import { api, clock, h, header, mmss, mount, requireUser, toast } from "../login/staff.js";
import { noticeBoth } from "../shared/i18n.js";
import { WitnessLeg } from "../shared/witness.js";
import { keepIceAlive, watchNetwork } from "../shared/recovery.js";
import { CAPS, LinkSummary, watchLink } from "../shared/linkquality.js";
import { OfferPeer, grabFrame } from "./call.js";
import * as identity from "./identity.js";
import { startCallbacks } from "./callbacks.js";
import { formFields, readForm } from "./txform.js";
import { both, pair } from "../shared/i18n.js";

const $ = (id) => document.getElementById(id);

const state = {
  user: null,
  ws: null,
  iceServers: [],
  presence: "away", // the agent's last choice (available / away), asked for again on reconnect
  server: null, // the server's state of this agent: {state, inState, wrapLeft, at}
  waiting: 0,
  highlight: -1, // the highlighted transaction in the search's list
  wrapTouched: false,
  offer: null,
  call: null, // {id, lane, claimedPhone}
  session: null,
  idStill: null, // face declined: the sha256 of the ID still the customer's page sent
  peer: null,
  witness: null,
  monitors: new Map(),
  local: null,
  remote: null,
  catalog: [],
  selected: null,
  steps: new Map(), // step_id -> handler(result message)
  guidanceRun: null,
  scripts: [],
  muted: false,
  stepSeq: 0,
  stepKinds: new Map(), // step id -> what was pushed, for the help alert
};

/**
 * The customer pressed 我不会，请帮我 on a step: an alert on top of the console with the step, and a
 * tone (the agent may be looking elsewhere); it stays until the agent acknowledges it.
 */
function helpAlert(stepIdValue) {
  const pushed = state.stepKinds.get(stepIdValue) ?? { step: "info", text: null };
  const step = pushed.text ?? pair(`staff.push.${pushed.step}`);
  $("help-alert-text").textContent = both("staff.help_alert", { step });
  $("help-alert").hidden = false;
  document.body.dataset.helpAlert = pushed.step;
  try {
    const audio = new AudioContext();
    for (const [at, freq] of [[0, 880], [0.35, 660], [0.7, 880]]) {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = freq;
      gain.gain.value = 0.2;
      tone.connect(gain).connect(audio.destination);
      tone.start(audio.currentTime + at);
      tone.stop(audio.currentTime + at + 0.25);
    }
  } catch {
    // no audio output: the alert stays on screen until acknowledged
  }
}

function send(msg) {
  state.ws?.send(msg);
}

function stepId(kind) {
  state.stepSeq += 1;
  return `${kind}-${state.stepSeq}-${Date.now() % 100000}`;
}

/** Push a step to the customer's screen; resolves with their step_result. */
function pushStep(step, params = {}) {
  const id = stepId(step);
  state.stepKinds.set(id, { step, text: params.text_zh ? { zh: params.text_zh, en: params.text_en ?? params.text_zh } : null });
  send({ type: "push_step", call_id: state.call.id, step_id: id, step, params: { ...params } });
  return new Promise((resolve) => state.steps.set(id, resolve));
}

// ---- presence and queue ----------------------------------------------------------------------

function setPresence(value) {
  send({ type: "presence", state: value });
}

/** The server's state of this agent (presence_ack / agent_state), shown as is: never guessed here.
 * The time in it counts up from the server's figure. */
function showState(msg) {
  state.server = { state: msg.state, inState: msg.in_state_s ?? 0, wrapLeft: msg.wrap_up_left_s ?? null, at: performance.now() };
  if (msg.state === "available" || msg.state === "away") state.presence = msg.state;
  document.body.dataset.presence = msg.state;
  $("agent-state").dataset.state = msg.state;
  $("agent-state-name").textContent = both(`staff.state.${msg.state}`);
  $("btn-available").setAttribute("aria-pressed", String(msg.state === "available"));
  $("btn-away").setAttribute("aria-pressed", String(msg.state === "away"));
  $("btn-available").disabled = msg.state === "in_call";
  $("btn-away").disabled = msg.state === "in_call";
  $("btn-extend").hidden = msg.state !== "wrap_up";
  renderStateTime();
  if ((msg.state === "available" || msg.state === "offered") && state.call?.ended) wrapUpOver();
}

function renderStateTime() {
  const s = state.server;
  if (!s) return;
  const gone = (performance.now() - s.at) / 1000;
  const parts = [mmss(s.inState + gone)];
  if (s.state === "wrap_up" && s.wrapLeft !== null) parts.push(both("staff.state.wrap_left", { t: mmss(Math.max(0, s.wrapLeft - gone)) }));
  if (s.state === "wrap_up" && state.waiting > 0) parts.push(both("staff.state.wrap_holding", { n: state.waiting }));
  $("agent-state-time").textContent = parts.join(" · ");
}

function togglePresence() {
  const now = state.server?.state;
  setPresence(now === "available" || now === "offered" ? "away" : "available");
}

async function refreshQueue() {
  try {
    const data = await api("/api/consoles/queue");
    state.waiting = Object.values(data.lanes).reduce((n, rows) => n + rows.filter((r) => r.status === "queued").length, 0);
    const lanes = Object.entries(data.lanes).map(([lane, rows]) => h("div", { class: "lane", dataset: { lane } },
      h("h3", {}, lane === "care" ? h("span", { class: "badge care" }, "关爱 Care") : "普通 General", ` · ${rows.length}`),
      rows.length
        ? h("ul", { class: "plain" }, rows.map((r) => h("li", {}, h("span", {}, `#${r.position}`), h("span", {}, mmss(r.waited_s)))))
        : h("p", { class: "muted" }, "无人排队 Nobody waiting"),
    ));
    mount($("queue"), lanes);
  } catch (err) {
    mount($("queue"), h("p", { class: "error" }, err.message));
  }
}

function showOffer(msg) {
  state.offer = msg;
  const care = msg.lane === "care";
  mount($("offer-info"),
    care ? h("span", { class: "badge care" }, "关爱 Care · 长者") : h("span", { class: "badge" }, "普通 General"),
    ` 已等待 waited ${mmss(msg.waited_s)}`,
    msg.claimed_phone ? ` · ${msg.claimed_phone}` : "",
    msg.transfer_from ? ` · 转自 from ${msg.transfer_from}` : "");
  $("offer").hidden = false;
  $("offer").dataset.lane = msg.lane;
  $("btn-accept").focus();
}

function accept() {
  if (!state.offer) return;
  send({ type: "accept", call_id: state.offer.call_id });
}

function decline() {
  if (!state.offer) return;
  send({ type: "decline", call_id: state.offer.call_id, reason: "declined by agent" });
  state.offer = null;
  $("offer").hidden = true;
}

// ---- the call ---------------------------------------------------------------------------------

async function localMedia() {
  if (state.local) return state.local;
  try {
    state.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  } catch {
    state.local = new MediaStream();
    toast("没有摄像头/麦克风：客户只能看到文字。No camera/microphone: the customer sees text only.", "error");
  }
  $("self-video").srcObject = state.local;
  return state.local;
}

async function startMedia() {
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
      $("call-state").textContent = { connected: "通话中 In call", connecting: "连接中 Connecting", failed: "连接失败 Failed", disconnected: "断开 Disconnected" }[s] ?? s;
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
async function startWitness(stream) {
  state.witness?.close();
  if (!stream.getTracks().length) return;
  state.witness = new WitnessLeg({ send, iceServers: state.iceServers, onState: (s) => { document.body.dataset.witness = s; } });
  await state.witness.offer(state.call.id, stream);
}

// What the console says about the recording: the badge only while the server's witness receives the
// customer's media (witness_state recording: true); a warning otherwise, since changes are refused
// once the call has gone unrecorded past the server's grace (409 recording_required).
const RECORDING_WARN = {
  waiting_media: "⚠ 尚未录像：服务器还没收到客户的视频，超过宽限时间后不能办理变更 Not recorded yet: no customer video reaches the server; changes are refused after the grace period",
  stopped: "⚠ 录像已中断：服务器收不到客户的视频，录像恢复前不能办理变更 Recording stopped: no customer video reaches the server; changes are refused until it resumes",
};

function showRecording(recording, status) {
  $("recording-state").hidden = !recording;
  const warn = $("recording-warn");
  warn.hidden = recording || !state.call;
  warn.textContent = RECORDING_WARN[status] ?? RECORDING_WARN.waiting_media;
  document.body.dataset.recording = recording ? "1" : status === "stopped" ? "stopped" : "0";
}

async function callStarted(msg) {
  state.offer = null;
  $("offer").hidden = true;
  resetCall(); // each call starts clean: nothing of the last one stays on screen
  state.call = { id: msg.call_id, lane: msg.lane, claimedPhone: msg.claimed_phone ?? null };
  document.body.dataset.call = msg.call_id;
  $("call-id").textContent = msg.call_id;
  mount($("lane-badge"), msg.lane === "care" ? h("span", { class: "badge care" }, "关爱 Care lane") : h("span", { class: "badge" }, "普通 General"),
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
function resetCall() {
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
  mount($("workorders"), h("p", { class: "muted" }, "接通后显示本次会话的工单。Shown for the current session."));
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

function enableCall(on) {
  for (const id of ["btn-suggest-helper", "btn-mute", "btn-hangup", "transfer-to", "transfer-agent", "btn-transfer", "claim-msisdn", "claim-name",
    "btn-claim", "btn-consent-yes", "btn-consent-no", "service-password", "btn-password", "btn-face", "btn-liveness", "btn-id",
    "btn-next", "btn-attest", "tx-search", "chat-input", "btn-chat", "wrapup-code", "wrapup-notes", "btn-close", "guide-script",
    "btn-guide-start"]) {
    $(id).disabled = !on;
  }
}

function hangup() {
  if (!state.call) return;
  send({ type: "hangup", call_id: state.call.id, reason: "agent" });
}

/** Hanging up asks once (Alt+H or the button): Enter confirms, Escape keeps the call. */
function askHangup() {
  const dialog = $("hangup-dialog");
  if (!state.call || state.call.ended || dialog.open) return;
  dialog.returnValue = "";
  dialog.showModal();
  $("btn-hangup-yes").focus();
}

function callEnded(msg) {
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
  $("call-state").textContent = `已结束 Ended (${msg.reason})`;
  document.body.dataset.rtc = "closed";
  for (const id of ["btn-suggest-helper", "btn-mute", "btn-hangup", "transfer-to", "transfer-agent", "btn-transfer", "btn-face", "btn-liveness", "btn-id", "btn-next", "chat-input", "btn-chat"]) {
    $(id).disabled = true;
  }
  if (state.call) state.call.ended = true;
  $("wrapup-code").focus();
  toast("通话已结束，请填写话后小结。The call ended: fill in the wrap-up.");
}

function transfer() {
  const agent = $("transfer-agent").value.trim();
  const msg = agent ? { type: "transfer", call_id: state.call.id, to: "agent", agent } : { type: "transfer", call_id: state.call.id, to: "supervisor" };
  send(msg);
}

// ---- a supervisor listening in: a second, send-only connection ----------------------------------------

async function monitorJoined(msg) {
  const to = msg.supervisor.startsWith("supervisor:") ? msg.supervisor : `supervisor:${msg.supervisor}`;
  const peer = new OfferPeer({ send, iceServers: state.iceServers, to });
  state.monitors.set(to, peer);
  const streams = [state.local, state.remote].filter(Boolean);
  await peer.offer(state.call.id, streams, { receive: false });
  toast(`班长 ${to.slice(11)} 正在旁听。Supervisor ${to.slice(11)} is listening.`);
}

// ---- a helper (家属) in the call: a third party, labelled; the holder's identity stays the holder's -----

const RELATION = { child: "子女 child", spouse: "配偶 spouse", grandchild: "孙辈 grandchild", sibling: "兄弟姐妹 sibling",
  relative: "亲戚 relative", friend: "朋友 friend", other: "其他 other" };
const HELPER_CONSENT = { pending: "待本人同意 awaiting the holder's consent", agreed: "本人已同意 the holder agreed",
  refused: "本人不同意 the holder refused" };

async function helperState(msg) {
  if (!state.call || msg.call_id !== state.call.id) return;
  document.body.dataset.helper = msg.present ? msg.consent ?? "present" : "gone";
  $("helper-tile").hidden = !msg.present || msg.consent === "refused";
  $("holder-label").hidden = !msg.present;
  const who = msg.name ? ` ${msg.name}（${RELATION[msg.relation] ?? msg.relation}）` : "";
  $("helper-label").textContent = `家属 Helper${who} · ${HELPER_CONSENT[msg.consent] ?? "未介绍 not introduced"}`;
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
    toast("家属已加入通话，身份核验和确认仍只认本人。A helper joined: identity checks and confirmations are the holder's only.");
  }
  if (msg.event === "left" || msg.consent === "refused") {
    state.monitors.get(msg.helper)?.close();
    state.monitors.delete(msg.helper);
  }
}

// ---- the customer panel -----------------------------------------------------------------------

async function refreshSession() {
  if (!state.call) return;
  const data = await api(`/api/counter/sessions/${state.call.id}`);
  state.session = data.session;
  const s = data.session;
  $("level").textContent = s.level;
  document.body.dataset.level = s.level;
  $("level-note").textContent = s.level_note ?? "";
  $("consent-state").textContent = s.face_consent === null ? "未问 not asked" : s.face_consent ? "同意 yes" : "拒绝 declined";
  $("consent-state").className = `badge ${s.face_consent === null ? "" : s.face_consent ? "ok" : "warn"}`;
  // Which identity steps are possible now, and why not, is the server's answer (counter/levels.py):
  // nothing about levels or paths is decided here.
  $("btn-attest").hidden = s.path !== "attestation";
  $("consent-note").hidden = s.path !== "attestation";
  if (s.path === "attestation") $("consent-note").textContent = whyNot(s.steps.face);
  document.body.dataset.faceConsent = String(s.face_consent);
  document.body.dataset.path = s.path;
  for (const [id, step] of [["btn-face", "face"], ["btn-liveness", "face"], ["btn-attest", "attestation"]]) {
    const why = s.steps[step];
    $(id).title = why.possible ? "" : whyNot(why);
    // a declined or path-foreign step cannot be taken at all; others answer with their reason when tried
    if (!state.call.ended) $(id).disabled = ["face_declined", "face_consented"].includes(why.code);
  }
  mount($("evidence"), s.evidence.map((e) => h("li", {}, `${e.level} · ${e.method} · ${clock(e.at)} · `,
    e.evidence.map((sha) => h("code", { title: sha }, `${sha.slice(0, 10)}… `)))));
  renderHistory(data.transactions);
  $("btn-evidence").disabled = Boolean(state.call.ended);
  if (s.account) {
    try {
      const acct = await api(`/api/counter/sessions/${state.call.id}/account`);
      mount($("account"), h("div", {}, `${acct.holder.name} · ${acct.holder.id_number} · ${acct.plan} · `,
        h("span", { class: acct.status === "active" ? "badge ok" : "badge warn" }, acct.status)));
    } catch (err) {
      mount($("account"), h("span", { class: "error" }, err.message));
    }
  }
  await refreshWorkOrders();
}

/** A refusal as the server words it: zh-CN, then English. */
function whyNot(why) {
  return why?.why_not ? `${why.why_not_zh ?? ""} ${why.why_not}`.trim() : "";
}

/** A refusal's words as a pair for both(): each language its own. */
function whyPair(why) {
  return { zh: why?.why_not_zh ?? "", en: why?.why_not ?? "" };
}

async function claim(event) {
  event.preventDefault();
  try {
    await api(`/api/counter/sessions/${state.call.id}/claim`, {
      method: "POST",
      body: { msisdn: $("claim-msisdn").value.trim(), claimed_name: $("claim-name").value.trim() },
    });
    await refreshSession();
    await refreshCatalog();
  } catch (err) {
    toast(err.message, "error");
  }
}

async function consent(yes) {
  try {
    await api(`/api/counter/sessions/${state.call.id}/consent`, { method: "POST", body: { face_consent: yes } });
    await refreshSession();
  } catch (err) {
    toast(err.message, "error");
  }
}

async function password(event) {
  event.preventDefault();
  try {
    await api(`/api/counter/sessions/${state.call.id}/verify-password`, { method: "POST", body: { password: $("service-password").value } });
    $("service-password").value = "";
    await refreshSession();
    await refreshCatalog();
  } catch (err) {
    toast(err.message, "error");
  }
}

function showCheck(kind, result, image) {
  const { ok } = result;
  const reasons = result.reasons ?? [];
  const images = (result.images ?? []).filter(Boolean);
  const node = h("div", { class: "check", dataset: { kind, ok: String(ok) } },
    h("strong", {}, both(`staff.step.${kind === "id_card" ? "idcard" : kind}`), " "),
    h("span", { class: ok ? "badge ok" : "badge bad" }, ok ? "通过 pass" : "未通过 fail"),
    result.score !== undefined ? ` 分数 score ${Number(result.score).toFixed(3)}` : "",
    result.threshold !== undefined ? ` / 阈值 threshold ${Number(result.threshold).toFixed(3)}` : "",
    reasons.length ? h("div", { class: "warn" }, reasons.map(String).join("; ")) : "",
    h("div", {},
      image ? h("img", { src: URL.createObjectURL(image), alt: `${kind} capture` }) : "",
      images.map((src) => h("img", { src, alt: kind }))));
  $("checks").prepend(node);
}

async function frameOfCustomer() {
  const frame = await grabFrame($("remote-video"));
  if (!frame) throw new Error("还没有客户视频。No customer video yet.");
  return frame;
}

async function faceCheck() {
  if (!state.call) return;
  $("btn-face").disabled = true;
  try {
    const result = await pushStep("face_capture", { timeout_s: 90 });
    if (result.status !== "ok") {
      const said = both("staff.customer_unfinished", { what: result.value ?? result.status });
      toast(said, "error");
      return { ok: false, why: said };
    }
    const frame = await frameOfCustomer();
    const checked = await identity.faceCheck(state.call.id, frame);
    const shown = identity.summary("face", checked);
    showCheck("face", shown);
    return { ok: shown.ok, why: shown.reasons.join("; ") };
  } catch (err) {
    toast(err.message, "error");
    if (err.code !== "no_identity_api") showCheck("face", { ok: false, reasons: [err.message] });
    return { ok: false, why: err.message };
  } finally {
    $("btn-face").disabled = false;
    await refreshSession().catch(() => {});
    await refreshCatalog().catch(() => {});
  }
}

async function liveness() {
  if (!state.call) return;
  $("btn-liveness").disabled = true;
  try {
    const { challenge } = await identity.startLiveness(state.call.id);
    const say = (lang) => challenge.instructions.map((i) => i[lang]).join(lang === "zh" ? "，" : ", ");
    const asked = pushStep("liveness", { sequence: challenge.sequence, text_zh: say("zh"), text_en: say("en"), text: say("zh"), deadline: challenge.deadline });
    document.body.dataset.liveness = "asked";
    await asked;
    const checked = await identity.finishLiveness(state.call.id, challenge.id);
    const shown = identity.summary("liveness", checked);
    showCheck("liveness", shown);
    return { ok: shown.ok, why: shown.reasons.join("; ") };
  } catch (err) {
    showCheck("liveness", { ok: false, reasons: [err.message] });
    return { ok: false, why: err.message };
  } finally {
    document.body.dataset.liveness = "done";
    $("btn-liveness").disabled = false;
    await refreshSession().catch(() => {});
  }
}

async function idCapture() {
  if (!state.call) return;
  $("btn-id").disabled = true;
  try {
    const resultPromise = pushStep("show_id", { timeout_s: 120 });
    const result = await resultPromise;
    if (result.status !== "ok") {
      const said = both("staff.customer_unfinished", { what: result.value ?? result.status });
      toast(said, "error");
      return { ok: false, why: said };
    }
    const sent = parseValue(result.value);
    if (sent.uploaded && sent.sha256) {
      // The customer's own ID still, accepted by the server: the page reports the step before it turns
      // back to the front camera, so a live frame now may show the card or the face.
      const declined = state.session?.face_consent === false;
      if (declined) state.idStill = sent.sha256; // face declined: read without face processing, compare by eye, attest
      const checked = await identity.idFromStill(state.call.id, sent.sha256);
      const shown = identity.summary("id_card", checked);
      showCheck("id_card", declined ? { ...shown, reasons: ["人工比对 compare by eye", ...shown.reasons] } : shown);
      return { ok: shown.ok, why: shown.reasons.join("; ") };
    }
    const frame = await frameOfCustomer(); // no still uploaded: the card as the live video shows it now
    const checked = await identity.idCapture(state.call.id, frame);
    const shown = identity.summary("id_card", checked);
    showCheck("id_card", shown, frame);
    return { ok: shown.ok, why: shown.reasons.join("; ") };
  } catch (err) {
    toast(err.message, "error");
    if (err.code !== "no_identity_api") showCheck("id_card", { ok: false, reasons: [err.message] });
    return { ok: false, why: err.message };
  } finally {
    $("btn-id").disabled = false;
    await refreshSession().catch(() => {});
    await refreshCatalog().catch(() => {});
  }
}

/** An ID card photo the customer sent (message, e-mail), uploaded from a file next to the ID capture button. */
function addIdUpload() {
  const input = h("input", { type: "file", id: "id-upload", accept: "image/jpeg,image/png" });
  input.addEventListener("change", () => {
    const file = input.files?.[0];
    input.value = "";
    if (file) idFromFile(file);
  });
  $("btn-id").after(h("label", { class: "upload", for: "id-upload" }, "上传身份证照片 Upload ID photo ", input));
}

async function idFromFile(file) {
  if (!state.call) {
    toast("没有进行中的通话。No call in progress.", "error");
    return;
  }
  try {
    const checked = await identity.idUpload(state.call.id, file);
    showCheck("id_card", identity.summary("id_card", checked), file);
  } catch (err) {
    toast(err.message, "error");
    showCheck("id_card", { ok: false, reasons: [err.message] });
  } finally {
    await refreshSession().catch(() => {});
    await refreshCatalog().catch(() => {});
  }
}

function parseValue(value) {
  try {
    return JSON.parse(value ?? "{}") ?? {};
  } catch {
    return {};
  }
}

async function attest() {
  try {
    // the server takes the live frame it holds and the ID stills the customer sent: the console sends no evidence
    const done = await identity.attest(state.call.id);
    showCheck("attestation", { ok: true, reasons: ["agent compared the ID card with the live person"], images: [done.thumbnail].filter(Boolean) });
    if (state.idStill) {
      // the ID still already sent: its number against the account now that A2 stands (A3 on this path)
      const checked = await identity.idFromStill(state.call.id, state.idStill);
      showCheck("id_card", identity.summary("id_card", checked));
    }
  } catch (err) {
    toast(err.message, "error");
  } finally {
    await refreshSession().catch(() => {});
    await refreshCatalog().catch(() => {});
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
async function nextSteps() {
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

// ---- the evidence viewer: full-size stills beside the real-name photo on file ----------------------

const EVIDENCE_KINDS = { id_still: "staff.evidence_id", live_face: "staff.evidence_face", photo_on_file: "staff.evidence_photo" };

/** Alt+E: the customer's ID still and live face at the size they were taken, zoomable (+ / - / 0 on a
 * focused picture), beside the photo on file, with the fields read from the card.  Served to this
 * session's agent only while the call is live; the server audits each opening. */
async function openEvidence() {
  if (!state.call || state.call.ended) return;
  let data;
  try {
    data = await api(`/api/counter/sessions/${encodeURIComponent(state.call.id)}/identity/evidence`);
  } catch (err) {
    toast(err.message, "error");
    return;
  }
  const newest = ["id_still", "live_face", "photo_on_file"].map((kind) => data.images.find((i) => i.kind === kind)).filter(Boolean);
  const figures = newest.map((item) => {
    const img = h("img", { src: item.url, alt: both(EVIDENCE_KINDS[item.kind]), width: String(item.width), height: String(item.height), dataset: { kind: item.kind, zoom: "1" } });
    const box = h("div", { class: "zoom-box", tabindex: "0", role: "group", "aria-label": `${both(EVIDENCE_KINDS[item.kind])} ${item.width}x${item.height}` }, img);
    const zoom = (factor) => {
      const z = factor === 0 ? 1 : Math.min(4, Math.max(0.25, Number(img.dataset.zoom) * factor));
      img.dataset.zoom = String(z);
      img.width = Math.round(item.width * z);
      img.height = Math.round(item.height * z);
    };
    box.addEventListener("keydown", (e) => {
      if (e.key === "+" || e.key === "=") zoom(1.25);
      else if (e.key === "-") zoom(0.8);
      else if (e.key === "0") zoom(0);
      else return;
      e.preventDefault();
    });
    return h("figure", { dataset: { kind: item.kind } },
      h("figcaption", {}, `${both(EVIDENCE_KINDS[item.kind])} · ${item.width}x${item.height} `,
        h("button", { type: "button", onclick: () => zoom(1.25) }, `${both("staff.evidence_zoom")} +`),
        h("button", { type: "button", onclick: () => zoom(0.8) }, "−"),
        h("button", { type: "button", onclick: () => zoom(0) }, "1:1")),
      box);
  });
  const fields = Object.entries(data.fields ?? {});
  mount($("evidence-body"),
    figures.length ? figures : h("p", { class: "muted" }, both("staff.evidence_none")),
    fields.length ? h("dl", { class: "fields" }, h("dt", {}, both("staff.evidence_fields")), fields.map(([k, v]) => h("dd", {}, `${k}: ${v}`))) : "");
  $("evidence-dialog").showModal();
  document.body.dataset.evidence = String(data.audit_seq);
  ($("evidence-body").querySelector(".zoom-box") ?? $("btn-evidence-close")).focus();
}

// ---- transactions -----------------------------------------------------------------------------

async function refreshCatalog() {
  if (!state.call) return;
  const { session } = await api(`/api/counter/sessions/${encodeURIComponent(state.call.id)}`);
  const data = await api(`/api/counter/catalog?session=${encodeURIComponent(state.call.id)}`);
  state.catalog = data.transactions;
  renderPicker();
  document.body.dataset.catalogLevel = session.level;
}

function pickerItems() {
  const q = $("tx-search").value.trim().toLowerCase();
  return state.catalog.filter((t) => !q || t.code.includes(q) || t.title_zh.includes(q) || t.title_en.toLowerCase().includes(q));
}

function renderPicker() {
  const items = pickerItems();
  if (state.highlight >= items.length) state.highlight = -1;
  $("tx-search").setAttribute("aria-expanded", String(items.length > 0));
  mount($("tx-list"), items.map((t, i) => h("li", {
    role: "option",
    id: `tx-opt-${t.code.replace(/\W/g, "-")}`,
    class: i === state.highlight ? "active" : "",
    tabindex: "-1",
    "aria-disabled": t.enabled ? "false" : "true",
    "aria-selected": state.selected?.code === t.code ? "true" : "false",
    dataset: { code: t.code, enabled: String(t.enabled) },
    onclick: () => select(t),
    onkeydown: (e) => { if (e.key === "Enter") select(t); },
  }, h("strong", {}, t.code), ` ${t.title_zh} · ${t.title_en} `, h("span", { class: "badge" }, t.level),
  t.enabled ? "" : h("div", { class: "why" }, whyNot(t)))));
  const active = items[state.highlight];
  if (active) $("tx-search").setAttribute("aria-activedescendant", `tx-opt-${active.code.replace(/\W/g, "-")}`);
  else $("tx-search").removeAttribute("aria-activedescendant");
}

/** In the search: ArrowDown/ArrowUp highlight, Enter opens the highlighted item (or the first one
 * the level allows), Escape clears. */
function searchKey(event) {
  const items = pickerItems();
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    if (!items.length) return;
    const step = event.key === "ArrowDown" ? 1 : -1;
    state.highlight = state.highlight < 0 && step < 0 ? items.length - 1 : (state.highlight + step + items.length) % items.length;
    renderPicker();
    $("tx-list").querySelector("li.active")?.scrollIntoView({ block: "nearest" });
  } else if (event.key === "Enter") {
    event.preventDefault();
    const pick = items[state.highlight] ?? items.find((t) => t.enabled) ?? items[0];
    if (!pick) return;
    select(pick, true);
    // nothing to fill in: run it now (a confirm step still goes to the customer, who confirms on their screen)
    if (pick.enabled && !Object.keys(pick.input_schema?.properties ?? {}).length) $("tx-form").requestSubmit();
  } else if (event.key === "Escape" && $("tx-search").value) {
    event.preventDefault();
    $("tx-search").value = "";
    state.highlight = -1;
    renderPicker();
  }
}

/** Alt+T: a fresh search (the last one cleared), focused, with the catalog for the level now. */
function openSearch() {
  if (!state.call) return;
  $("tx-search").value = "";
  state.highlight = -1;
  $("tx-search").focus();
  renderPicker();
  refreshCatalog().catch((err) => toast(err.message, "error"));
}

function select(t, focusForm = false) {
  if (!t.enabled) {
    toast(`${t.title_zh} ${t.title_en}: ${whyNot(t)}`, "error");
    return;
  }
  state.selected = t;
  $("tx-title").textContent = `${t.title_zh} · ${t.title_en} (${t.code})`;
  $("tx-meta").textContent = [t.changes_state ? `变更 change: ${t.effect}` : "查询 read-only", t.needs_approval ? "需班长审批 needs supervisor approval" : "", t.notes].filter(Boolean).join(" · ");
  mount($("tx-fields"), formFields(t.input_schema));
  $("tx-form").hidden = false;
  renderPicker();
  if (focusForm) ($("tx-fields").querySelector("input, select, textarea") ?? $("btn-tx-run")).focus();
}

function statusText(o) {
  const words = { done: "已办理 done", pending: "等待确认 waiting", refused: "已拒绝 refused", failed: "失败 failed", declined: "客户取消 declined", running: "办理中 running" };
  return words[o.status] ?? o.status;
}

/** A result as staff see it: a secret (a PUK) never reaches this page, only that it was shown. */
function resultText(o) {
  const shown = o.shown_to_customer?.length ? " · 已显示在客户屏幕 shown to the customer only" : "";
  return `${o.text_zh ?? o.reason ?? ""}${shown}`;
}

function renderHistory(transactions) {
  mount($("tx-history"), transactions.map((o) => h("tr", { dataset: { code: o.code, status: o.status } },
    h("td", {}, String(o.id)), h("td", {}, `${o.title_zh} (${o.code})`),
    h("td", {}, statusText(o), o.needs_approval && !o.approved ? " · 待审批 awaiting approval" : ""),
    h("td", { class: "tx-result" }, resultText(o)))));
}

function setTxStatus(text, kind = "") {
  mount($("tx-status"), h("p", { class: kind }, text));
}

async function runSelected(event) {
  event.preventDefault();
  const t = state.selected;
  if (!t || !state.call) return;
  let inputs;
  try {
    inputs = readForm($("tx-fields"), t.input_schema);
  } catch (err) {
    setTxStatus(err.message, "error");
    return;
  }
  const key = `${t.code}-${crypto.randomUUID()}`;
  const body = { code: t.code, inputs, idempotency_key: key };
  const url = `/api/counter/sessions/${state.call.id}/transactions`;
  $("btn-tx-run").disabled = true;
  try {
    // Every item, a look-up too, waits for the customer's confirmation on their own screen: the
    // step carries the request's id only, and their page shows the server's words for it.
    const outcome = await api(url, { method: "POST", body });
    if (outcome.status !== "pending") {
      setTxStatus(`${statusText(outcome)}: ${outcome.reason ?? ""}`, outcome.status === "done" ? "ok" : "error");
      return;
    }
    setTxStatus("等待客户在手机上确认… Waiting for the customer to confirm on their phone…");
    document.body.dataset.confirm = "waiting";
    const result = await pushStep("confirm", { transaction_id: outcome.id });
    document.body.dataset.confirm = result.status;
    const latest = (await api(`/api/counter/sessions/${state.call.id}`)).transactions.find((o) => o.id === outcome.id);
    const ok = latest.status === "done";
    setTxStatus(`${t.title_zh}: ${statusText(latest)} ${ok ? resultText(latest) : latest.reason ?? ""}`,
      ok ? "ok" : latest.status === "pending" ? "warn" : "error");
  } catch (err) {
    setTxStatus(err.message, "error");
  } finally {
    $("btn-tx-run").disabled = false;
    await refreshSession().catch(() => {});
    await refreshCatalog().catch(() => {});
  }
}

// ---- guidance, chat, wrap-up, work orders -------------------------------------------------------

async function loadScripts() {
  const data = await api("/api/counter/guidance/scripts");
  state.scripts = data.scripts;
  mount($("guide-script"), data.scripts.map((s) => h("option", { value: s.code }, `${s.title_zh} · ${s.title_en}`)));
}

async function startGuidance() {
  const code = $("guide-script").value;
  const script = state.scripts.find((s) => s.code === code);
  try {
    const run = await api(`/api/counter/sessions/${state.call.id}/guidance`, { method: "POST", body: { script: code } });
    state.guidanceRun = run.run_id;
    mount($("guide-step"), script.steps.map((s) => h("option", { value: s.id }, s.zh)));
    $("guide-step").disabled = false;
    $("btn-guide-push").disabled = false;
  } catch (err) {
    toast(err.message, "error");
  }
}

async function pushGuidance() {
  try {
    const pushed = await api(`/api/counter/sessions/${state.call.id}/guidance/${state.guidanceRun}/push`, {
      method: "POST", body: { step: $("guide-step").value },
    });
    pushStep("info", { text_zh: pushed.step.zh, text_en: pushed.step.en, text: pushed.step.zh }).then((r) => {
      addChat(`步骤 step ${pushed.step.id}: ${r.status}`, "system");
    });
    const next = $("guide-step").selectedIndex + 1;
    if (next < $("guide-step").options.length) $("guide-step").selectedIndex = next;
  } catch (err) {
    toast(err.message, "error");
  }
}

function addChat(text, who) {
  $("chat-log").append(h("div", { class: who === "me" ? "mine" : who }, `${who === "me" ? "我" : who === "system" ? "·" : "客户"}: ${text}`));
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
}

function sendChat(event) {
  event.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text || !state.call) return;
  send({ type: "chat", call_id: state.call.id, text });
  addChat(text, "me");
  $("chat-input").value = "";
}

async function loadWrapUps() {
  const data = await api("/api/consoles/wrap-ups");
  mount($("wrapup-code"), data.wrap_ups.map((w) => h("option", { value: w.code }, `${w.zh} · ${w.en}`)));
}

async function closeSession(event) {
  event?.preventDefault();
  if (!state.call) return;
  await finishSession($("wrapup-code").value, true);
}

/** The server ended after-call work (its limit, or the agent chose available) while the session is
 * still open: close it with the code the agent picked, if any, and say so. */
async function wrapUpOver() {
  if (!state.call || state.closing) return;
  await finishSession(state.wrapTouched ? $("wrapup-code").value : "not_recorded", false);
}

async function finishSession(code, byAgent) {
  const call = state.call;
  state.closing = true;
  try {
    const notes = $("wrapup-notes").value.trim();
    if (notes) await api(`/api/counter/sessions/${call.id}/notes`, { method: "POST", body: { text: notes } });
    await api(`/api/counter/sessions/${call.id}/close`, { method: "POST", body: { wrap_up: code } });
    if (!call.ended) hangup();
    if (state.call === call) {
      resetCall();
      enableCall(false);
    }
    toast(byAgent ? "会话已结束。Session closed." : both("staff.wrap_timed_out"));
    if (byAgent) setPresence("available");
  } catch (err) {
    toast(err.message, "error");
  } finally {
    state.closing = false;
  }
}

async function refreshWorkOrders() {
  if (!state.call) return;
  const data = await api(`/api/counter/workorders?session=${encodeURIComponent(state.call.id)}`);
  if (!data.work_orders.length) {
    mount($("workorders"), h("p", { class: "muted" }, "本次会话暂无工单。No work orders in this session."));
    return;
  }
  mount($("workorders"), h("ul", { class: "plain" }, data.work_orders.map((o) => h("li", {},
    h("strong", {}, `#${o.id} ${o.category}`), ` ${o.summary} · `, h("span", { class: o.overdue ? "badge bad" : "badge" }, o.status),
    ` · 截止 due ${clock(o.due_at)} `,
    o.status === "open" ? h("button", { type: "button", onclick: () => moveOrder(o.id, "in_progress") }, "处理中 In progress") : ""))));
}

async function moveOrder(id, status) {
  try {
    await api(`/api/counter/workorders/${id}/status`, { method: "POST", body: { status } });
    await refreshWorkOrders();
  } catch (err) {
    toast(err.message, "error");
  }
}

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
    toast("来电超时未接，状态已设为离开。Offer missed: you are set away.", "error");
  },
  offer_withdrawn(msg) {
    state.offer = null;
    $("offer").hidden = true;
    toast(`客户已离开 The customer left (${msg.reason})`);
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
    $("call-state").textContent = msg.state === "lost" ? "客户断线 Customer lost…" : "客户已回来 Customer back";
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
    if (msg.sender?.startsWith("helper:")) toast(`家属代答（不是本人）The helper answered for the holder: ${msg.status}${msg.value ? ` (${msg.value})` : ""}`);
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
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  state.ws = new ReconnectingSocket(() => `${scheme}://${location.host}/ws`, {
    onOpen: () => state.ws.hello({ client: "agent-console/1" }),
    onMessage: (msg) => {
      const fn = handlers[msg.type];
      if (fn) Promise.resolve(fn(msg)).catch((err) => toast(`${msg.type}: ${err.message}`, "error"));
    },
    onState: (s) => {
      $("ws-state").textContent = s === "open" ? "在线 online" : s;
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
    toast("已请客户决定是否请家属来帮忙。The holder is asked whether to invite a helper.");
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
    $("btn-mute").textContent = state.muted ? "取消静音 Unmute" : "静音 Mute";
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

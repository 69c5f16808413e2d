// The customer's visit on the signaling socket: the join, the queue (keep my place, a call-back),
// the server's messages, the recording leg to the witness, the link quality, and the end.

import { request } from "../shared/api.js";
import { currentLang, noticeText, t } from "../shared/i18n.js";
import { CAPS, watchLink } from "../shared/linkquality.js";
import { watchNetwork } from "../shared/recovery.js";
import { speak } from "../shared/speech.js";
import { WitnessLeg } from "../shared/witness.js";
import { ReconnectingSocket, signalingUrl } from "../shared/ws.js";
import { counterApi, txItem } from "./counter.js";
import { consentScreen, inviteScreen, suggestScreen } from "./helper.js";
import { bookCallback, bookedScreen, holdPanel, keptScreen, notifyBack } from "./hold.js";
import * as S from "./screens.js";
import { $, STORE, announce, backToCall, briefly, current, helperLink, peer, save, setSenior, show, shown, state } from "./page.js";
import { callScreen, runStep } from "./steps.js";

export let ws = null;
export let witness = null; // the send-only leg to the server's recording witness
export let netWatch = null; // shared/recovery.js: the signaling socket probed after network changes
let stopLink = null; // shared/linkquality.js: quality shown, audio first on a weak network
let wakeLock = null;

/** Ask for a helper's invitation (with this visit's own token) and show its QR code. */
export async function inviteHelper() {
  let body;
  try {
    body = await request("/api/customer/helper/invite", { method: "POST", token: state.token });
  } catch {
    return announce(t("helper.invite_failed"));
  }
  const back = current;
  show(() => inviteScreen({ svg: body.qr_svg, url: body.url, onDone: () => (state.inCall ? show(callScreen) : show(back)) }));
}

/** Join the queue (the server gives this visit its token), then open the socket. */
export async function join() {
  showWaiting();
  try {
    const body = await request("/api/customer/join", {
      body: { care: state.senior, hint: state.hint ?? undefined, msisdn: state.phone.length === 11 ? state.phone : undefined },
    });
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

/** Open the signaling socket (it says hello with the token, and comes back by itself). */
export function connect() {
  ws = new ReconnectingSocket(signalingUrl, {
    onOpen: (resumed) => {
      ws.hello({ token: state.token, client: "customer-web/1" });
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

/** Keep the screen on during the call (where the browser allows it). */
export async function keepAwake() {
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

/** The visit ends: everything closed, then the rating (after a call, when asked for) or the results. */
export function finish(rate) {
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

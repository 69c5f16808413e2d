// The customer's page, the parts every other module of it shares: the visit's state, the screen
// shown (one at a time, rebuilt on a language change), the banner, and the two peer connections
// this phone answers or offers (the agent's call, a helper's).

import { mount, playInto } from "../shared/dom.js";
import { currentLang } from "../shared/i18n.js";
import { hush, speak, speakParts } from "../shared/speech.js";
import { CallPeer } from "./call.js";
import { HelperLink } from "./helper.js";
import { witness, ws } from "./session.js";
import { callScreen } from "./steps.js";

export const STORE = "rc.customer";
export const $ = (id) => document.getElementById(id);

export const state = {
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

let noticeTimer = null;
export let current = null; // () => screen object, rebuilt on language change
export let shown = null;
let cleanup = () => {};

/** What to stop when the next screen comes (a step's countdown, its camera watcher). */
export function setCleanup(fn) {
  cleanup = fn;
}

export const peer = new CallPeer({
  send: (msg) => ws && ws.send(msg),
  onRemoteStream: (stream) => playInto($("agent-video"), stream),
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
export const helperLink = new HelperLink({
  send: (msg) => ws && ws.send(msg),
  onRemote: (stream) => playInto($("helper-video"), stream),
});

/** A pushed parameter in the page's language: params.text_en / params.text_zh, else params.text. */
export function loc(p, key) {
  const suffix = currentLang() === "en" ? "en" : "zh";
  return p[`${key}_${suffix}`] ?? p[key];
}

/** Keep what a reload needs (this tab only): the choices made, the join token, the language. */
export function save() {
  const { senior, faceConsent, token, noVideo } = state;
  sessionStorage.setItem(STORE, JSON.stringify({ senior, faceConsent, token, noVideo, lang: currentLang() }));
}

/** Show the screen build() makes (again on a language change) and say it where it should be said. */
export function show(build) {
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

/** Senior mode (larger, everything spoken) on or off. */
export function setSenior(on) {
  state.senior = on;
  document.body.classList.toggle("senior", on);
}

/** Show a line from the agent ("chat"), about a step ("step") or from the service ("notice") in the
 * banner for a while, and say it; a chat or step line leaves with the screen it came with. */
export function announce(text, kind = "notice") {
  const banner = $("notice");
  banner.textContent = text;
  banner.dataset.kind = kind;
  banner.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { banner.hidden = true; }, 15000);
  speak(text, currentLang());
}

/** Back to the call screen, when in a call. */
export function backToCall() {
  if (state.inCall) show(callScreen);
}

/** Show a short notice, then go back to the call unless something else was shown meanwhile. */
export function briefly(build, ms = 1500) {
  const view = show(build);
  setTimeout(() => {
    if (shown === view) backToCall();
  }, ms);
}

/** Send another camera track (the rear one for the ID card, the front one back) on every leg. */
export async function setVideoTrack(track) {
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

// The customer's page: entry, consent, queue, call, pushed steps, guided captures, confirmation,
// rating. Speaks the signaling protocol v1 (docs/protocol.md) over /ws. This module starts the
// visit (entry, consents, camera and the pre-call check) and keeps it through the phone's
// interruptions; page.js holds what the modules share, session.js the socket, steps.js the call's
// steps, counter.js the customer's own counter session.

import { request } from "../shared/api.js";
import { currentLang, setLang, t } from "../shared/i18n.js";
import { replaceTrackIn } from "../shared/recovery.js";
import { repeat } from "../shared/speech.js";
import { holderJoin } from "./helper.js";
import { comeBack, takeHoldCode, takeInvite } from "./hold.js";
import { browserKind, classifyError, isLive, openCallMedia, openFrontCamera, openMicrophone, openVoiceOnly } from "./media.js";
import { allFine, checkAll, precheckScreen } from "./precheck.js";
import * as S from "./screens.js";
import { $, STORE, current, peer, save, setSenior, setVideoTrack, show, shown, state } from "./page.js";
import { connect, inviteHelper, join, keepAwake, netWatch, witness, ws } from "./session.js";

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
    const body = await request("/api/customer/care-hint", { body: { hint: state.hint } });
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

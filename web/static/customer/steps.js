// The customer in the call: the call screen and its keypad, and each step the agent pushes (a face
// or ID capture, a camera switch, a liveness challenge, a request to confirm, a line to read).

import { refusalCode, request } from "../shared/api.js";
import { currentLang, t } from "../shared/i18n.js";
import { speak } from "../shared/speech.js";
import { autoCapture, sha256Hex } from "./capture.js";
import { confirmStep, counterApi } from "./counter.js";
import { classifyError, openFrontCamera, openRearCamera } from "./media.js";
import * as S from "./screens.js";
import { $, announce, backToCall, briefly, loc, peer, setCleanup, setVideoTrack, show, shown, state } from "./page.js";
import { finish, ws } from "./session.js";

/**
 * Send a captured still ("face" or "id") to the identity service: kept only if its face matches the
 * live video, or, face processing declined, an ID still kept without any face processing for the
 * agent to compare by eye. {uploaded, sha256} or {uploaded: false, code}: "still_mismatch" and
 * "id_unreadable" mean take it again.
 */
async function uploadStill(blob, kind) {
  try {
    const data = await request(`/api/customer/identity/still?kind=${kind}`, { blob, token: state.callToken });
    return { uploaded: true, sha256: data.sha256 };
  } catch (err) {
    return { uploaded: false, code: err.status === 0 ? "network" : refusalCode(err, `http_${err.status}`) };
  }
}

/** The call: the agent's video on the stage, mute, hang up, and the keypad for the service password. */
export function callScreen() {
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

/** Tell the agent how a pushed step went (status, and a value for some). */
export function stepResult(stepId, status, value) {
  ws.send({ type: "step_result", call_id: state.callId, step_id: stepId, status, value: value ?? undefined });
}

/** A step the agent pushed, on its own screen. */
export function runStep(msg) {
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
  setCleanup(() => { stopped = true; clearTimeout(timer); });
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
  setCleanup(() => { timer.stop(); watcher.stop(); });
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
  setCleanup(() => { timer.stop(); watcher.stop(); });
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

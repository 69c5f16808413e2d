// Camera and microphone: the front camera for the call, the rear one for the ID card, and clear
// reasons when the browser refuses.

/** Why the camera could not be opened: "denied", "no_camera", "busy" or "other". */
export function classifyError(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") return "denied";
  if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") return "no_camera";
  if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") return "busy";
  return "other";
}

/** Which permission help applies to this browser: "ios", "wechat", "firefox", "android_chrome" or "other". */
export function browserKind(ua = navigator.userAgent) {
  if (/MicroMessenger/i.test(ua)) return "wechat";
  if (/iPhone|iPad|iPod/i.test(ua) || (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1)) return "ios";
  if (/Firefox|FxiOS/i.test(ua)) return "firefox";
  if (/Android/i.test(ua) && /Chrome/i.test(ua)) return "android_chrome";
  return "other";
}

const VIDEO = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15, max: 30 } };

/** The front camera and the microphone for the call. */
export async function openCallMedia() {
  return navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    video: { ...VIDEO, facingMode: "user" },
  });
}

/** A video track from the front camera (after the rear one was used, or after the page came back). */
export async function openFrontCamera() {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { ...VIDEO, facingMode: "user" } });
  return stream.getVideoTracks()[0];
}

/** The microphone alone (no camera, or a camera in use elsewhere): a call with the voice only. */
export async function openVoiceOnly() {
  return navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
}

/** A microphone track again (phones stop it while the page is in the background). */
export async function openMicrophone() {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  return stream.getAudioTracks()[0];
}

/**
 * A video track from the rear camera, chosen by the page itself: facingMode "environment" exactly,
 * then as a preference, then by the device label where the browser ignored facingMode.
 */
export async function openRearCamera() {
  const hd = { width: { ideal: 1280 }, height: { ideal: 720 } };
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { ...hd, facingMode: { exact: "environment" } } });
  } catch (err) {
    if (classifyError(err) === "denied") throw err;
    stream = await navigator.mediaDevices.getUserMedia({ video: { ...hd, facingMode: { ideal: "environment" } } });
  }
  let track = stream.getVideoTracks()[0];
  const facing = track.getSettings?.().facingMode;
  if (facing === "user") {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const rear = devices.find((d) => d.kind === "videoinput" && /back|rear|environment|后/i.test(d.label));
    if (rear) {
      track.stop();
      stream = await navigator.mediaDevices.getUserMedia({ video: { ...hd, deviceId: { exact: rear.deviceId } } });
      track = stream.getVideoTracks()[0];
    }
  }
  return track;
}

/** Whether a track still delivers (phones stop the camera in the background). */
export function isLive(track) {
  return !!track && track.readyState === "live";
}

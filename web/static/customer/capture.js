// Guided still capture from a video element: live hints, and an automatic shot once the frame has
// been good for a moment.

import { assess } from "./quality.js";

const SMALL_W = 160;

async function findFace(detector, video) {
  if (!detector) return null;
  try {
    const faces = await detector.detect(video);
    if (!faces.length) return { size: 0, cx: 0.5, cy: 0.5 };
    const box = faces[0].boundingBox;
    const vw = video.videoWidth || 1;
    const vh = video.videoHeight || 1;
    return { size: box.height / vh, cx: (box.x + box.width / 2) / vw, cy: (box.y + box.height / 2) / vh };
  } catch {
    return null;
  }
}

/** A JPEG of the video's current frame at full size. */
export function snapshot(video, quality = 0.92) {
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
}

/** The hex SHA-256 of a blob (the evidence reference the server will compute too). */
export async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Watch video until the frame is good for `steady` checks in a row, then take the shot.
 * kind "face" measures inside the oval guide, "card" inside the card frame. onHint(hint, metrics)
 * is called on every check. Resolves {blob, metrics}; stop() ends the watch early (resolves null).
 */
export function autoCapture(video, kind, { onHint = () => {}, intervalMs = 150, steady = 5 } = {}) {
  let stopped = false;
  let timer = null;
  let resolveFn;
  const done = new Promise((resolve) => (resolveFn = resolve));
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const detector = kind === "face" && "FaceDetector" in window ? new window.FaceDetector({ fastMode: true }) : null;
  let previous = null;
  let last = null;
  let good = 0;

  async function tick() {
    if (stopped) return;
    if (video.readyState >= 2 && video.videoWidth) {
      const h = Math.round((SMALL_W * video.videoHeight) / video.videoWidth);
      canvas.width = SMALL_W;
      canvas.height = h;
      ctx.drawImage(video, 0, 0, SMALL_W, h);
      const image = ctx.getImageData(0, 0, SMALL_W, h);
      const face = detector ? await findFace(detector, video) : null;
      if (stopped) return;
      const { hint, metrics, luma } = assess(kind, image, previous, face);
      previous = luma;
      last = metrics;
      onHint(hint, metrics);
      good = hint === "ok" ? good + 1 : 0;
      if (good >= steady) {
        stopped = true;
        const blob = await snapshot(video);
        resolveFn({ blob, metrics: last });
        return;
      }
    }
    timer = setTimeout(tick, intervalMs);
  }

  timer = setTimeout(tick, intervalMs);
  return {
    done,
    stop() {
      stopped = true;
      clearTimeout(timer);
      resolveFn(null);
    },
  };
}

// Cheap image quality measures on a small canvas: brightness, sharpness, glare, movement.

/** Luma (0..255) of an ImageData's pixels inside the box {x, y, w, h}, as a Float32Array plus its size. */
export function lumaOf(image, box = { x: 0, y: 0, w: image.width, h: image.height }) {
  const { data, width } = image;
  const out = new Float32Array(box.w * box.h);
  let i = 0;
  for (let y = box.y; y < box.y + box.h; y++) {
    for (let x = box.x; x < box.x + box.w; x++) {
      const p = (y * width + x) * 4;
      out[i++] = 0.299 * data[p] + 0.587 * data[p + 1] + 0.114 * data[p + 2];
    }
  }
  return { luma: out, w: box.w, h: box.h };
}

/** Mean, sharpness (variance of the 4-neighbour Laplacian), glare (share of near-white pixels). */
export function measure({ luma, w, h }) {
  let sum = 0;
  let bright = 0;
  for (let i = 0; i < luma.length; i++) {
    sum += luma[i];
    if (luma[i] >= 250) bright++;
  }
  const mean = sum / luma.length;
  let lapSum = 0;
  let lapSq = 0;
  let n = 0;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const i = y * w + x;
      const lap = luma[i - 1] + luma[i + 1] + luma[i - w] + luma[i + w] - 4 * luma[i];
      lapSum += lap;
      lapSq += lap * lap;
      n++;
    }
  }
  const lapMean = n ? lapSum / n : 0;
  const sharpness = n ? lapSq / n - lapMean * lapMean : 0;
  return { mean, sharpness, glare: bright / luma.length };
}

/** Mean absolute difference between two luma arrays of the same size (camera shake, moving). */
export function motion(a, b) {
  if (!a || !b || a.length !== b.length) return Infinity;
  let d = 0;
  for (let i = 0; i < a.length; i++) d += Math.abs(a[i] - b[i]);
  return d / a.length;
}

// Sharpness is the Laplacian variance at the 160-pixel analysis width: sharp phone frames of faces
// score 1000-15000, a Gaussian blur of sigma 4 px at 640 px (about 1 px here) brings them to 40-120,
// sigma 8 to under 20. The face needs to be clearly not smeared; the card's small print needs more.
/** Thresholds for the face: plenty of light, some detail, holding still. */
export const FACE_LIMITS = { dark: 60, bright: 215, sharp: 60, still: 12 };
/** Thresholds for the ID card: sharper than a face, almost no glare. */
export const CARD_LIMITS = { dark: 60, bright: 235, sharp: 150, still: 8, glare: 0.02 };

/** The first problem with a face frame ("dark", "bright", "blur", "closer", "farther", "center") or "ok". */
export function faceHint(m, move, face = null) {
  if (m.mean < FACE_LIMITS.dark) return "dark";
  if (m.mean > FACE_LIMITS.bright) return "bright";
  if (face) {
    if (face.size < 0.3) return "closer";
    if (face.size > 0.85) return "farther";
    if (Math.abs(face.cx - 0.5) > 0.18 || Math.abs(face.cy - 0.5) > 0.2) return "center";
  }
  if (move > FACE_LIMITS.still || m.sharpness < FACE_LIMITS.sharp) return "blur";
  return "ok";
}

/** The first problem with a card frame ("dark", "glare", "blur") or "ok". */
export function cardHint(m, move) {
  if (m.mean < CARD_LIMITS.dark) return "dark";
  if (m.glare > CARD_LIMITS.glare || m.mean > CARD_LIMITS.bright) return "glare";
  if (move > CARD_LIMITS.still || m.sharpness < CARD_LIMITS.sharp) return "blur";
  return "ok";
}

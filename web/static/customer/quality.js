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

// Sharpness is the Laplacian variance at the 160-pixel analysis width. Measured on the photos in
// ../shared/faces and the OCR test card shown at 640x480: sharp frames score 1200-12000; a Gaussian
// blur of sigma 4 px at 640 px brings faces to 60-120 (rejected: below 150), and sigma 2.5 brings
// printed text to 470-500 (rejected for the card: below 600, so that the ID number stays readable).
/** Thresholds for the face: plenty of light, not smeared, holding still. */
export const FACE_LIMITS = { dark: 60, bright: 215, sharp: 150, still: 12 };
/** Thresholds for the ID card: sharper than a face, almost no glare. */
export const CARD_LIMITS = { dark: 60, bright: 235, sharp: 600, still: 8, glare: 0.02 };

/**
 * Share of skin-coloured pixels in box: the Chai & Ngan YCbCr rule (Cb 77-127, Cr 133-173), which
 * holds across skin tones; a stand-in for a face detector where the browser has none.
 */
export function skinShare(image, box = { x: 0, y: 0, w: image.width, h: image.height }) {
  const { data, width } = image;
  let skin = 0;
  for (let y = box.y; y < box.y + box.h; y++) {
    for (let x = box.x; x < box.x + box.w; x++) {
      const p = (y * width + x) * 4;
      const r = data[p];
      const g = data[p + 1];
      const b = data[p + 2];
      const luma = 0.299 * r + 0.587 * g + 0.114 * b;
      const cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b;
      const cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b;
      if (luma > 40 && cb >= 77 && cb <= 127 && cr >= 133 && cr <= 173) skin++;
    }
  }
  return skin / (box.w * box.h);
}

/**
 * The first problem with a face frame ("dark", "bright", "center", "closer", "farther", "blur") or
 * "ok". face: {size, cx, cy} from a FaceDetector, or {inner, all} skin shares without one.
 */
export function faceHint(m, move, face = null) {
  if (m.mean < FACE_LIMITS.dark) return "dark";
  if (m.mean > FACE_LIMITS.bright) return "bright";
  if (face && "size" in face) {
    if (face.size === 0 || Math.abs(face.cx - 0.5) > 0.18 || Math.abs(face.cy - 0.5) > 0.2) return "center";
    if (face.size < 0.3) return "closer";
    if (face.size > 0.85) return "farther";
  } else if (face) {
    if (face.inner < 0.15) return "center";
    if (face.all > 0.6) return "farther";
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

/** Where each kind of shot is measured, on a w x h analysis frame. */
export function regionOf(kind, w, h) {
  return kind === "face"
    ? { x: Math.round(w * 0.25), y: Math.round(h * 0.15), w: Math.round(w * 0.5), h: Math.round(h * 0.7) }
    : { x: Math.round(w * 0.1), y: Math.round(h * 0.2), w: Math.round(w * 0.8), h: Math.round(h * 0.6) };
}

/**
 * Judge one analysis frame (ImageData) for a "face" or "card" shot. previous: the luma returned for
 * the frame before (for movement); face: a FaceDetector result, when there is one.
 * Returns {hint, metrics, luma}.
 */
export function assess(kind, image, previous = null, face = null) {
  const region = lumaOf(image, regionOf(kind, image.width, image.height));
  const metrics = measure(region);
  metrics.motion = previous ? motion(previous, region.luma) : 0;
  let hint;
  if (kind === "face") {
    const w = image.width;
    const h = image.height;
    const inner = { x: Math.round(w * 0.35), y: Math.round(h * 0.25), w: Math.round(w * 0.3), h: Math.round(h * 0.5) };
    const seen = face ?? { inner: skinShare(image, inner), all: skinShare(image) };
    if (!face) Object.assign(metrics, { skinInner: seen.inner, skinAll: seen.all });
    hint = faceHint(metrics, metrics.motion, seen);
  } else {
    hint = cardHint(metrics, metrics.motion);
  }
  return { hint, metrics, luma: region.luma };
}

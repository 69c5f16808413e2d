"""The page's in-browser quality measure (web/static/customer/quality.js) on real photos, in Chromium:
the hints an elderly customer gets before the automatic shot."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tests.browser.conftest import FACE_PHOTO, FACES
from tests.browser.harness import BrowserEnv

DOCUMENT = FACES / "ocr" / "ocr_test_cn_degraded.jpg"

ASSESS = """
async ([kind, frames]) => {
  const q = await import("/static/customer/quality.js");
  let previous = null;
  let out = null;
  for (const pixels of frames) {
    const image = new ImageData(Uint8ClampedArray.from(atob(pixels), (c) => c.charCodeAt(0)), 160, 120);
    out = q.assess(kind, image, previous);
    previous = out.luma;
  }
  return { hint: out.hint, metrics: out.metrics };
}
"""


def camera_frame(path: Path, *, sigma: float = 0, gain: float = 1.0, shift: int = 0) -> np.ndarray:
    """What the page's analysis canvas holds: the 640x480 camera frame of a photo, at 160x120."""
    img = cv2.imread(str(path))
    assert img is not None, f"cannot read {path}"
    h, w = img.shape[:2]
    s = min(640 / w, 480 / h)
    small = cv2.resize(img, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA)
    frame: np.ndarray = np.zeros((480, 640, 3), np.uint8)
    y0, x0 = (480 - small.shape[0]) // 2, (640 - small.shape[1]) // 2
    frame[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    if shift:
        frame = np.roll(frame, shift, axis=1)
    if sigma:
        frame = cv2.GaussianBlur(frame, (0, 0), sigma)
    frame = np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    small_frame: np.ndarray = cv2.resize(frame, (160, 120), interpolation=cv2.INTER_LINEAR)
    return small_frame


def rgba(frame: np.ndarray) -> str:
    """The frame as the canvas would give it (RGBA bytes), base64 for a quick trip into the page."""
    return base64.b64encode(cv2.cvtColor(frame, cv2.COLOR_BGR2RGBA).tobytes()).decode()


def test_hints_on_real_photos(env: BrowserEnv) -> None:
    face = camera_frame(FACE_PHOTO)
    glare = face.copy()
    glare[40:70, 50:110] = 255
    cases: dict[str, tuple[str, list[np.ndarray]]] = {
        "face ok": ("face", [face, face]),
        "face dark": ("face", [camera_frame(FACE_PHOTO, gain=0.25)]),
        "face blurred": ("face", [camera_frame(FACE_PHOTO, sigma=4)]),
        "face moving": ("face", [face, camera_frame(FACE_PHOTO, shift=24)]),
        "no face": ("face", [camera_frame(DOCUMENT)]),
        "card ok": ("card", [face, face]),
        "document ok": ("card", [camera_frame(DOCUMENT)]),
        "card glare": ("card", [glare]),
        "card blurred": ("card", [camera_frame(DOCUMENT, sigma=2.5)]),
        "card dark": ("card", [camera_frame(FACE_PHOTO, gain=0.3)]),
    }

    async def scenario() -> dict[str, Any]:
        page = await env.new_page()
        out: dict[str, Any] = {}
        for name, (kind, frames) in cases.items():
            out[name] = await page.evaluate(ASSESS, [kind, [rgba(f) for f in frames]])
        await env.close_page(page)
        return out

    r = env.run(scenario())
    hints = {name: v["hint"] for name, v in r.items()}
    assert hints == {
        "face ok": "ok", "face dark": "dark", "face blurred": "blur", "face moving": "blur", "no face": "center",
        "card ok": "ok", "document ok": "ok", "card glare": "glare", "card blurred": "blur", "card dark": "dark",
    }, r

"""Image inputs: numpy BGR uint8 arrays (OpenCV convention) or encoded bytes (JPEG/PNG/WebP)."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8] | bytes | bytearray | memoryview

#: Largest decoded image side accepted (bigger uploads are refused, not resized blindly).
MAX_SIDE = 8000


class ImageError(ValueError):
    """The input is not a usable image; the message says what to send instead."""


def as_bgr(image: Image) -> npt.NDArray[np.uint8]:
    """``image`` as a 3-channel BGR uint8 array (decoding bytes; gray and BGRA converted)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        buf = np.frombuffer(image, dtype=np.uint8)
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
        if decoded is None:
            raise ImageError("could not decode the image: send a JPEG, PNG or WebP photo")
        array = np.asarray(decoded, dtype=np.uint8)
    elif isinstance(image, np.ndarray) and image.dtype == np.uint8:
        array = image
    else:
        raise ImageError("expected a uint8 BGR image array or encoded JPEG/PNG bytes")
    if array.ndim == 2:
        array = np.asarray(cv2.cvtColor(array, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = np.asarray(cv2.cvtColor(array, cv2.COLOR_BGRA2BGR), dtype=np.uint8)
    elif array.ndim != 3 or array.shape[2] != 3:
        raise ImageError(f"expected an HxWx3 BGR image, got shape {array.shape}")
    if max(array.shape[:2]) > MAX_SIDE or min(array.shape[:2]) < 16:
        raise ImageError(f"image size {array.shape[1]}x{array.shape[0]} out of range (16..{MAX_SIDE} px a side)")
    return array

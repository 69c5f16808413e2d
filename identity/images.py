"""Image inputs: numpy BGR uint8 arrays (OpenCV convention) or encoded bytes (JPEG/PNG/WebP)."""

from __future__ import annotations

import os
import struct

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8] | bytes | bytearray | memoryview

#: Largest decoded image side accepted (bigger uploads are refused, not resized blindly).
MAX_SIDE = 8000
#: Largest pixel count decoded.  A few hundred kB of PNG can declare 20000x20000 pixels and cost
#: gigabytes and seconds to decode (a decompression bomb): sizes are read from the header first.
MAX_PIXELS = MAX_SIDE * MAX_SIDE
# OpenCV's own cap, latched at the first decode in the process: a second line of defence.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))


class ImageError(ValueError):
    """The input is not a usable image; the message says what to send instead."""


def as_bgr(image: Image) -> npt.NDArray[np.uint8]:
    """``image`` as a 3-channel BGR uint8 array (decoding bytes; gray and BGRA converted)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        size = declared_size(bytes(image[:65536]))
        if size is not None and (max(size) > MAX_SIDE or size[0] * size[1] > MAX_PIXELS):
            raise ImageError(f"image size {size[0]}x{size[1]} out of range (16..{MAX_SIDE} px a side)")
        buf = np.frombuffer(image, dtype=np.uint8)
        try:
            decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
        except cv2.error:
            decoded = None
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


def declared_size(head: bytes) -> tuple[int, int] | None:
    """``(width, height)`` as the PNG, JPEG or WebP header declares it, without decoding; ``None``
    when the header is not one of those (the decoder then refuses it, or it is small)."""
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return width, height
        if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
            kind = head[12:16]
            if kind == b"VP8X":
                return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
            if kind == b"VP8L":
                bits = int.from_bytes(head[21:25], "little")
                return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
            if kind == b"VP8 ":
                return (int.from_bytes(head[26:28], "little") & 0x3FFF,
                        int.from_bytes(head[28:30], "little") & 0x3FFF)
            return None
        if head.startswith(b"\xff\xd8"):
            i = 2
            while i + 9 < len(head):
                if head[i] != 0xFF:
                    return None
                marker = head[i + 1]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                    i += 2
                    continue
                length = int.from_bytes(head[i + 2 : i + 4], "big")
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    height, width = struct.unpack(">HH", head[i + 5 : i + 9])
                    return width, height
                i += 2 + length
    except (struct.error, IndexError):
        return None
    return None

"""Key and data files written whole: a reader (or a crash) sees the old file or the new one, never half of one.

Every file is created with mode 0600 (keys, wrapped keys, encrypted records) and synced to disk
before it counts as written.  Both helpers block on the disk: call them from an executor when on
the event loop.  They live in this bottom package so that every layer above may use them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0600) through a synced temporary file in the same folder."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        write_new(tmp, data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (mode 0600) holding ``data``, synced; :class:`FileExistsError` when it exists.

    For files made once (a key created on first use): of two processes racing, one creates it and
    the other gets :class:`FileExistsError` and reads the winner's."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())

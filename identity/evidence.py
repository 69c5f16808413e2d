"""Encrypted evidence store: captured images and derived facts, referenced by sha256 in audit entries.

Each record has its own random AES-256-GCM key, wrapped with AES key wrap (RFC 3394) by the master
key.  A record is two files named by the sha256 of the plaintext: ``<sha>.bin`` (nonce + ciphertext)
and ``<sha>.json`` (kind, creation time, wrapped key, encrypted metadata).  Rotating the master key
re-wraps the record keys in the ``.json`` files; the ciphertext is never touched.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from identity.files import write_atomic, write_new

KEY_BYTES = 32


class EvidenceError(Exception):
    """An evidence record cannot be stored or read; the message says why and what to do."""


class EvidenceNotFound(EvidenceError, KeyError):
    """No record with that sha256 (never stored, or purged after retention)."""


class WrongMasterKey(EvidenceError):
    """The master key does not unwrap this record's key: a different or rotated-away key file."""


class EvidenceTampered(EvidenceError):
    """The ciphertext or its metadata was altered: the record must not be relied on."""


def load_or_create_master_key(path: Path) -> bytes:
    """The 32-byte master key from ``path`` (hex), created with mode 0600 when absent.

    Refuses a key file readable by group or others.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_new(path, (secrets.token_bytes(KEY_BYTES).hex() + "\n").encode())
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise EvidenceError(f"master key file {path} has mode {mode:o}: run chmod 600 {path}")
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise EvidenceError(f"master key file {path} is not hex: restore it from backup") from None
    if len(key) != KEY_BYTES:
        raise EvidenceError(f"master key file {path} holds {len(key)} bytes, expected {KEY_BYTES}")
    return key


def key_id(key: bytes) -> str:
    """A short public fingerprint of a master key (for error messages and rotation)."""
    return hashlib.sha256(b"evidence-master-key" + key).hexdigest()[:16]


@dataclass(frozen=True)
class EvidenceInfo:
    """What a record's header says (metadata decrypted)."""

    sha256: str
    kind: str
    created: dt.datetime
    size: int
    meta: dict[str, Any]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class EvidenceStore:
    """Encrypted records in a folder.  ``*_sync`` methods block; the async ones run in an executor."""

    def __init__(self, directory: Path, master_key: bytes) -> None:
        if len(master_key) != KEY_BYTES:
            raise EvidenceError(f"the master key must be {KEY_BYTES} bytes")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)  # also when it was made earlier, more open
        self._key = master_key
        #: Finds another master key by its :func:`key_id` (a key ring during a rotation), or ``None``.
        self.key_lookup: Callable[[str], bytes | None] | None = None

    @classmethod
    def open(cls, directory: Path, key_file: Path) -> EvidenceStore:
        """A store whose master key lives in ``key_file`` (created 0600 when absent)."""
        return cls(directory, load_or_create_master_key(key_file))

    @property
    def key_id(self) -> str:
        return key_id(self._key)

    def _paths(self, sha: str) -> tuple[Path, Path]:
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise EvidenceNotFound(f"{sha!r} is not a sha256 hex digest")
        folder = self.directory / sha[:2]
        return folder / f"{sha}.bin", folder / f"{sha}.json"

    @staticmethod
    def _aad(sha: str, kind: str) -> bytes:
        return f"{sha}|{kind}".encode()

    def put_sync(self, data: bytes, kind: str, meta: Mapping[str, Any] | None = None) -> str:
        """Store ``data`` encrypted; returns its sha256 (storing the same bytes twice keeps one record)."""
        sha = hashlib.sha256(data).hexdigest()
        bin_path, head_path = self._paths(sha)
        if head_path.exists():
            return sha
        bin_path.parent.mkdir(exist_ok=True, mode=0o700)
        record_key = AESGCM.generate_key(bit_length=256)
        aead = AESGCM(record_key)
        nonce, meta_nonce = secrets.token_bytes(12), secrets.token_bytes(12)
        aad = self._aad(sha, kind)
        ciphertext = aead.encrypt(nonce, data, aad)
        meta_ct = aead.encrypt(meta_nonce, json.dumps(dict(meta or {}), ensure_ascii=False).encode(), aad)
        header = {
            "v": 1,
            "kind": kind,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "size": len(data),
            "key_id": self.key_id,
            "wrapped_key": _b64(aes_key_wrap(self._key, record_key)),
            "meta": _b64(meta_nonce + meta_ct),
        }
        write_atomic(bin_path, nonce + ciphertext)
        write_atomic(head_path, json.dumps(header).encode())
        return sha

    def _header(self, sha: str) -> dict[str, Any]:
        _, head_path = self._paths(sha)
        try:
            header: dict[str, Any] = json.loads(head_path.read_bytes())
        except FileNotFoundError:
            raise EvidenceNotFound(f"no evidence {sha}: never stored, or purged after retention") from None
        return header

    def use_master_key(self, key: bytes) -> None:
        """Wrap new records with ``key`` from now on (after a rotation finished elsewhere)."""
        if len(key) != KEY_BYTES:
            raise EvidenceError(f"the master key must be {KEY_BYTES} bytes")
        self._key = key

    def _record_key(self, sha: str, header: Mapping[str, Any]) -> bytes:
        wrapped = base64.b64decode(header["wrapped_key"])
        other = self.key_lookup(str(header.get("key_id"))) if self.key_lookup is not None else None
        if other is not None and header.get("key_id") != self.key_id:
            with contextlib.suppress(InvalidUnwrap):
                return aes_key_unwrap(other, wrapped)
        try:
            return aes_key_unwrap(self._key, wrapped)
        except InvalidUnwrap:
            raise WrongMasterKey(
                f"evidence {sha} was wrapped by master key {header.get('key_id')}, this store has {self.key_id}: "
                "use the key file it was stored with"
            ) from None

    def info_sync(self, sha: str) -> EvidenceInfo:
        """A record's kind, time, size and decrypted metadata."""
        header = self._header(sha)
        aead = AESGCM(self._record_key(sha, header))
        blob = base64.b64decode(header["meta"])
        try:
            meta = json.loads(aead.decrypt(blob[:12], blob[12:], self._aad(sha, header["kind"])))
        except InvalidTag:
            raise EvidenceTampered(f"evidence {sha}: metadata fails authentication") from None
        return EvidenceInfo(sha, header["kind"], dt.datetime.fromisoformat(header["created"]), header["size"], meta)

    def get_sync(self, sha: str) -> bytes:
        """The plaintext of record ``sha``, authenticated and checked against its name."""
        header = self._header(sha)
        bin_path, _ = self._paths(sha)
        try:
            blob = bin_path.read_bytes()
        except FileNotFoundError:
            raise EvidenceTampered(f"evidence {sha}: ciphertext file is missing") from None
        aead = AESGCM(self._record_key(sha, header))
        try:
            data = aead.decrypt(blob[:12], blob[12:], self._aad(sha, header["kind"]))
        except InvalidTag:
            raise EvidenceTampered(f"evidence {sha}: ciphertext fails authentication") from None
        if hashlib.sha256(data).hexdigest() != sha:
            raise EvidenceTampered(f"evidence {sha}: content does not match its name")
        return data

    def purge_sync(self, older_than: dt.timedelta | dt.datetime) -> list[str]:
        """Delete records created before ``older_than`` (a cut-off time, or an age); returns their sha256."""
        cutoff = older_than if isinstance(older_than, dt.datetime) else dt.datetime.now(dt.UTC) - older_than
        removed = []
        for head_path in self.directory.glob("*/*.json"):
            header = json.loads(head_path.read_bytes())
            if dt.datetime.fromisoformat(header["created"]) < cutoff:
                head_path.with_suffix(".bin").unlink(missing_ok=True)
                head_path.unlink(missing_ok=True)
                removed.append(head_path.stem)
        return removed

    def rotate_sync(self, new_key: bytes) -> int:
        """Re-wrap every record key with ``new_key`` (ciphertext untouched); the store then uses it.

        Save ``new_key`` to the key file only after this returns.  Records already wrapped by
        ``new_key`` are skipped, so an interrupted rotation can be run again.
        """
        if len(new_key) != KEY_BYTES:
            raise EvidenceError(f"the new master key must be {KEY_BYTES} bytes")
        new_id = key_id(new_key)
        count = 0
        for head_path in self.directory.glob("*/*.json"):
            header = json.loads(head_path.read_bytes())
            if header.get("key_id") == new_id:
                continue
            record_key = self._record_key(head_path.stem, header)
            header["wrapped_key"] = _b64(aes_key_wrap(new_key, record_key))
            header["key_id"] = new_id
            write_atomic(head_path, json.dumps(header).encode())
            count += 1
        self._key = new_key
        return count

    async def put(self, data: bytes, kind: str, meta: Mapping[str, Any] | None = None) -> str:
        """:meth:`put_sync` in an executor."""
        return await asyncio.to_thread(self.put_sync, data, kind, meta)

    async def get(self, sha: str) -> bytes:
        """:meth:`get_sync` in an executor."""
        return await asyncio.to_thread(self.get_sync, sha)

    async def info(self, sha: str) -> EvidenceInfo:
        """:meth:`info_sync` in an executor."""
        return await asyncio.to_thread(self.info_sync, sha)

    async def purge(self, older_than: dt.timedelta | dt.datetime) -> list[str]:
        """:meth:`purge_sync` in an executor."""
        return await asyncio.to_thread(self.purge_sync, older_than)

    async def rotate(self, new_key: bytes) -> int:
        """:meth:`rotate_sync` in an executor."""
        return await asyncio.to_thread(self.rotate_sync, new_key)

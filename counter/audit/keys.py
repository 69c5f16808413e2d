"""Ed25519 keys and signed checkpoints (tree size + root hash + time).

The signed message is the checkpoint *note*, plain text in the C2SP ``tlog-checkpoint`` layout with
the time as an extension line::

    remote-counter/audit
    <tree size, decimal>
    <root hash, base64>
    <time, ISO-8601 UTC>

each line ending in ``\\n``.  It can be checked with ``openssl pkeyutl -verify -rawin`` (docs/AUDIT.md).
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ORIGIN = "remote-counter/audit"


class KeyFileError(Exception):
    """The audit key file cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head."""

    tree_size: int
    root_hash: str
    time: str
    key_id: str
    signature: str

    def note(self) -> bytes:
        return checkpoint_note(self.tree_size, bytes.fromhex(self.root_hash), self.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "time": self.time,
            "key_id": self.key_id,
            "signature": self.signature,
            "note": self.note().decode("ascii"),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Checkpoint:
        return cls(int(row["tree_size"]), row["root_hash"], row["time"], row["key_id"], row["signature"])


def checkpoint_note(tree_size: int, root: bytes, time: str) -> bytes:
    """The exact bytes a checkpoint signature covers."""
    return f"{ORIGIN}\n{tree_size}\n{base64.b64encode(root).decode()}\n{time}\n".encode("ascii")


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """A short name for a public key: the first 8 bytes of SHA-256 of its raw form, hex."""
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from PEM or 64 hex characters (raw Ed25519)."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    except ValueError as exc:
        raise KeyFileError(f"not an Ed25519 public key (PEM or 64 hex characters): {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError("the public key is not Ed25519")
    return key


class Signer:
    """Signs checkpoints with the log's private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        """Load the key, creating it (mode 0600) if the file does not exist."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return cls.from_file(path)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyFileError(f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}")
        try:
            key_obj = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
        if not isinstance(key_obj, Ed25519PrivateKey):
            raise KeyFileError(f"{path} holds a key that is not Ed25519; move it away to get a new one")
        return cls(key_obj)

    def sign(self, tree_size: int, root: bytes, time: str) -> Checkpoint:
        sig = self._key.sign(checkpoint_note(tree_size, root, time))
        return Checkpoint(tree_size, root.hex(), time, self.key_id, sig.hex())


def checkpoint_valid(cp: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    """Whether ``cp`` carries a valid signature by ``public_key``."""
    try:
        public_key.verify(bytes.fromhex(cp.signature), cp.note())
    except (InvalidSignature, ValueError):
        return False
    return True


def load_or_create_secret(path: Path, size: int = 32) -> bytes:
    """A random secret kept in a 0600 file, created on first use (the account pseudonym key)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_or_create_secret(path, size)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(size).hex().encode())
            f.flush()
            os.fsync(f.fileno())
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyFileError(f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}")
    try:
        return bytes.fromhex(path.read_text().strip())
    except ValueError as exc:
        raise KeyFileError(f"{path} must hold hex; move it away to get a new key (old pseudonyms change)") from exc

"""Ed25519 keys and signed checkpoints (tree size + root hash + time) as C2SP signed notes.

The signed message is the checkpoint *note body*, C2SP ``tlog-checkpoint`` with the time as an
extension line::

    remote-counter/audit
    <tree size, decimal>
    <root hash, base64>
    <time, ISO-8601 UTC>

each line ending in ``\\n``.  The checkpoint is served as a C2SP ``signed-note``: the body, an empty
line, and ``— <origin> base64(key hash || signature)`` where the key hash is the first 4 bytes of
``SHA-256(origin || "\\n" || 0x01 || public key)``, so Go's ``golang.org/x/mod/sumdb/note`` verifies
it with the verifier key :func:`note_verifier_key`.  The raw signature can also be checked with
``openssl pkeyutl -verify -rawin`` (docs/AUDIT.md).
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

from identity.files import write_new

ORIGIN = "remote-counter/audit"
#: Signature algorithm bytes of C2SP signed-note key hashes: Ed25519 note key, Ed25519 cosignature/v1.
ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
_DASH = "\u2014"


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
    origin: str = ORIGIN

    def note(self) -> bytes:
        return checkpoint_note(self.tree_size, bytes.fromhex(self.root_hash), self.time, self.origin)

    def signed_note(self, public_key: Ed25519PublicKey, cosignatures: list[str] | tuple[str, ...] = ()) -> str:
        """The C2SP signed note: body, empty line, the log's signature line, then any cosignature lines."""
        stamp = note_key_hash(self.origin, ALG_ED25519, raw_public(public_key)) + bytes.fromhex(self.signature)
        lines = [f"{_DASH} {self.origin} {base64.b64encode(stamp).decode()}", *cosignatures]
        return self.note().decode("utf-8") + "\n" + "".join(line + "\n" for line in lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "time": self.time,
            "key_id": self.key_id,
            "signature": self.signature,
            "origin": self.origin,
            "note": self.note().decode("utf-8"),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        """A checkpoint from :meth:`to_json`'s shape (``origin`` optional: the default one)."""
        return cls(int(data["tree_size"]), str(data["root_hash"]), str(data["time"]), str(data["key_id"]),
                   str(data["signature"]), str(data.get("origin") or ORIGIN))

    @classmethod
    def from_row(cls, row: dict[str, Any], origin: str = ORIGIN) -> Checkpoint:
        return cls(int(row["tree_size"]), row["root_hash"], row["time"], row["key_id"], row["signature"], origin)


def checkpoint_note(tree_size: int, root: bytes, time: str, origin: str = ORIGIN) -> bytes:
    """The exact bytes a checkpoint signature covers (the note body)."""
    return f"{origin}\n{tree_size}\n{base64.b64encode(root).decode()}\n{time}\n".encode()


def note_key_hash(name: str, alg: int, public: bytes) -> bytes:
    """The 4-byte key hash of a signed-note key: ``SHA-256(name || "\\n" || alg || public key)[:4]``."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public).digest()[:4]


def note_verifier_key(name: str, key: Ed25519PublicKey, alg: int = ALG_ED25519) -> str:
    """The verifier key string ``<name>+<key hash hex>+<base64(alg || key)>`` (Go's ``note.NewVerifier``)."""
    public = raw_public(key)
    return f"{name}+{note_key_hash(name, alg, public).hex()}+{base64.b64encode(bytes([alg]) + public).decode()}"


def parse_verifier_key(vkey: str) -> tuple[str, int, Ed25519PublicKey]:
    """``(name, alg, key)`` from a verifier key string; raises :class:`KeyFileError`."""
    try:
        name, hash_hex, b64 = vkey.strip().split("+", 2)
        raw = base64.b64decode(b64, validate=True)
        key = Ed25519PublicKey.from_public_bytes(raw[1:])
    except ValueError as exc:
        raise KeyFileError(f"not a note verifier key <name>+<hash>+<base64 key>: {exc}") from exc
    if not name or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1) or bytes.fromhex(hash_hex) != note_key_hash(
        name, raw[0], raw[1:]
    ):
        raise KeyFileError(f"verifier key {name!r}: unknown algorithm or wrong key hash")
    return name, raw[0], key


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a signed note."""

    name: str
    key_hash: bytes
    signature: bytes

    def line(self) -> str:
        return f"{_DASH} {self.name} {base64.b64encode(self.key_hash + self.signature).decode()}"


def split_note(text: str) -> tuple[str, list[NoteSignature]]:
    """The body (up to and including its last newline) and the signature lines of a signed note.

    Raises :class:`ValueError` on a malformed note (no empty line before the signatures, a line that is
    not a signature, bad base64)."""
    if not text.endswith("\n") or "\n\n" not in text:
        raise ValueError("malformed note: no signature block")
    cut = text.rindex("\n\n")
    body, block = text[: cut + 1], text[cut + 2 :]
    sigs: list[NoteSignature] = []
    for line in block.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH or not parts[1]:
            raise ValueError(f"malformed note: {line[:80]!r} is not a signature line")
        raw = base64.b64decode(parts[2], validate=True)
        if len(raw) < 5:
            raise ValueError("malformed note: signature too short")
        sigs.append(NoteSignature(parts[1], raw[:4], raw[4:]))
    if not sigs:
        raise ValueError("malformed note: no signature")
    return body, sigs


def parse_checkpoint_body(body: str) -> tuple[str, int, bytes, list[str]]:
    """``(origin, size, root, extension lines)`` of a checkpoint note body; raises :class:`ValueError`."""
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
        raise ValueError("malformed checkpoint: at least three non-empty lines")
    size_text = lines[1]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise ValueError(f"malformed checkpoint: tree size {size_text[:30]!r}")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise ValueError("malformed checkpoint: root hash is not 32 bytes")
    return lines[0], int(size_text), root, lines[3:-1]


def checkpoint_from_note(text: str, public_key: Ed25519PublicKey) -> tuple[Checkpoint, list[NoteSignature]]:
    """The checkpoint a signed note carries, checked against the log's key, and its other signatures.

    Raises :class:`ValueError` if the note is malformed or carries no valid signature by ``public_key``.
    """
    body, sigs = split_note(text)
    origin, size, root, ext = parse_checkpoint_body(body)
    want = note_key_hash(origin, ALG_ED25519, raw_public(public_key))
    mine = [s for s in sigs if s.name == origin and s.key_hash == want]
    if not mine:
        raise ValueError(f"the checkpoint carries no signature by the log key {origin}+{want.hex()}")
    time = ext[0] if ext else ""
    cp = Checkpoint(size, root.hex(), time, key_id(public_key), mine[0].signature.hex(), origin)
    if cp.note().decode("utf-8") != body or not checkpoint_valid(cp, public_key):
        raise ValueError("the log's signature on the checkpoint does not verify")
    return cp, [s for s in sigs if s not in mine]


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """A short name for a public key: the first 8 bytes of SHA-256 of its raw form, hex."""
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from PEM, 64 hex characters (raw Ed25519) or a note verifier key (``name+hash+key``)."""
    text = text.strip()
    if "+" in text and not text.startswith("-----BEGIN"):
        return parse_verifier_key(text)[2]
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

    def __init__(self, private_key: Ed25519PrivateKey, origin: str = ORIGIN) -> None:
        self._key = private_key
        self.origin = origin
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def generate(cls, origin: str = ORIGIN) -> Signer:
        return cls(Ed25519PrivateKey.generate(), origin)

    @property
    def verifier_key(self) -> str:
        """The C2SP note verifier key of this log (``<origin>+<hash>+<key>``)."""
        return note_verifier_key(self.origin, self.public_key)

    def sign_raw(self, message: bytes) -> bytes:
        """An Ed25519 signature over ``message`` (witness cosignatures use the same key class)."""
        return self._key.sign(message)

    @classmethod
    def from_file(cls, path: Path, origin: str = ORIGIN) -> Signer:
        """Load the key, creating it (mode 0600) if the file does not exist."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            try:
                write_new(path, pem)
            except FileExistsError:
                return cls.from_file(path, origin)
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyFileError(f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}")
        try:
            key_obj = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
        if not isinstance(key_obj, Ed25519PrivateKey):
            raise KeyFileError(f"{path} holds a key that is not Ed25519; move it away to get a new one")
        return cls(key_obj, origin)

    def sign(self, tree_size: int, root: bytes, time: str) -> Checkpoint:
        sig = self._key.sign(checkpoint_note(tree_size, root, time, self.origin))
        return Checkpoint(tree_size, root.hex(), time, self.key_id, sig.hex(), self.origin)


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
            write_new(path, os.urandom(size).hex().encode())
        except FileExistsError:
            return load_or_create_secret(path, size)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyFileError(f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}")
    try:
        return bytes.fromhex(path.read_text().strip())
    except ValueError as exc:
        raise KeyFileError(f"{path} must hold hex; move it away to get a new key (old pseudonyms change)") from exc

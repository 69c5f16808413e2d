"""Sealed values: personal data kept in database columns, encrypted like the identity evidence.

A sealed value is one AES-256-GCM ciphertext under its own random key, that key wrapped (AES key
wrap, RFC 3394) by the master key of :mod:`counter.keys`, all in one blob::

    b"RCS1" | master key id (16 ASCII hex) | wrapped key (40) | nonce (12) | ciphertext + tag

The ciphertext is bound to what it is (``context``: the column and the plaintext's sha256), so a
blob copied to another row does not open.  Rotating the master key re-wraps the 40 key bytes and
leaves the ciphertext alone (:func:`rewrap`; ``counter keys rotate`` does it for every sealed
column: :data:`SEALED_COLUMNS`).  Used for the holders' real-name photos (``acct_holders.photo``),
which are biometric data.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from identity.evidence import EvidenceError, EvidenceTampered, WrongMasterKey, key_id
from storage import Database

MAGIC = b"RCS1"
_ID = 16
_WRAPPED = 40
_NONCE = 12
_HEAD = len(MAGIC) + _ID + _WRAPPED + _NONCE

#: Every sealed column, as ``(table, key column, blob column, sha256 column)``.
SEALED_COLUMNS = [("acct_holders", "id", "photo", "photo_sha256")]

KeyLookup = Callable[[str], bytes | None]


def is_sealed(blob: bytes | None) -> bool:
    """Whether ``blob`` is a sealed value (and not, say, a plain JPEG from before sealing)."""
    return blob is not None and bytes(blob[: len(MAGIC)]) == MAGIC and len(blob) > _HEAD


def sealed_key_id(blob: bytes) -> str:
    """The id of the master key that wraps ``blob``'s key."""
    return bytes(blob[len(MAGIC): len(MAGIC) + _ID]).decode("ascii")


def photo_context(sha256: str) -> bytes:
    """The context a holder's photo is sealed under."""
    return f"acct_holders.photo|{sha256}".encode()


def seal(master_key: bytes, data: bytes, context: bytes) -> bytes:
    """``data`` encrypted under a fresh key wrapped by ``master_key``."""
    record_key = AESGCM.generate_key(bit_length=256)
    nonce = secrets.token_bytes(_NONCE)
    ciphertext = AESGCM(record_key).encrypt(nonce, data, context)
    return MAGIC + key_id(master_key).encode("ascii") + aes_key_wrap(master_key, record_key) + nonce + ciphertext


def _record_key(blob: bytes, lookup: KeyLookup) -> bytes:
    kid = sealed_key_id(blob)
    master = lookup(kid)
    if master is None:
        raise WrongMasterKey(f"a sealed value is wrapped by master key {kid}, which is not in the key ring: "
                             "restore its key file next to the master key")
    start = len(MAGIC) + _ID
    try:
        return aes_key_unwrap(master, bytes(blob[start: start + _WRAPPED]))
    except InvalidUnwrap:
        raise WrongMasterKey(f"the key file for {kid} does not unwrap a sealed value") from None


def unseal(blob: bytes, context: bytes, lookup: KeyLookup) -> bytes:
    """The plaintext of a sealed value; ``lookup`` finds a master key by its id."""
    blob = bytes(blob)
    if not is_sealed(blob):
        raise EvidenceError("not a sealed value")
    record_key = _record_key(blob, lookup)
    nonce = blob[_HEAD - _NONCE: _HEAD]
    try:
        return AESGCM(record_key).decrypt(nonce, blob[_HEAD:], context)
    except InvalidTag:
        raise EvidenceTampered("a sealed value fails authentication (altered, or moved to another row)") from None


def rewrap(blob: bytes, lookup: KeyLookup, new_key: bytes) -> bytes:
    """``blob`` with its key wrapped by ``new_key`` (the ciphertext untouched)."""
    blob = bytes(blob)
    record_key = _record_key(blob, lookup)
    start = len(MAGIC) + _ID
    return MAGIC + key_id(new_key).encode("ascii") + aes_key_wrap(new_key, record_key) + blob[start + _WRAPPED:]


@dataclass
class Sealer:
    """Seals and opens values with the master key in ``key_file`` and its ring (rotations)."""

    key_file: Path

    def __post_init__(self) -> None:
        from counter.keys import KeyRing

        self.ring = KeyRing(self.key_file)

    def seal(self, data: bytes, context: bytes) -> bytes:
        """``data`` sealed under the current master key."""
        return seal(self.ring.current(), data, context)

    def unseal(self, blob: bytes, context: bytes) -> bytes:
        """The plaintext of ``blob``, whichever key of the ring wraps it."""
        return unseal(blob, context, self.ring.lookup)


async def seal_plain_photos(db: Database, sealer: Sealer) -> int:
    """The data migration for photos stored before sealing: seal every plain one; returns how many."""
    count = 0
    rows = await db.fetch("SELECT id, photo, photo_sha256 FROM acct_holders WHERE photo IS NOT NULL")
    for row in rows:
        photo = bytes(row["photo"])
        if is_sealed(photo):
            continue
        sha = row["photo_sha256"] or hashlib.sha256(photo).hexdigest()
        sealed = await asyncio.to_thread(sealer.seal, photo, photo_context(sha))  # reads the key file
        count += await db.execute(
            "UPDATE acct_holders SET photo = $2, photo_sha256 = $3 WHERE id = $1 AND photo = $4",
            row["id"], sealed, sha, photo,
        )
    return count


async def rewrap_sealed(db: Database, lookup: KeyLookup, new_key: bytes) -> int:
    """Re-wrap every sealed value in :data:`SEALED_COLUMNS` with ``new_key``; returns how many."""
    new_id = key_id(new_key)
    count = 0
    for table, key, column, _ in SEALED_COLUMNS:
        rows = await db.fetch(f"SELECT {key} AS k, {column} AS v FROM {table} WHERE {column} IS NOT NULL")
        for row in rows:
            blob = bytes(row["v"])
            if not is_sealed(blob) or sealed_key_id(blob) == new_id:
                continue
            count += await db.execute(
                f"UPDATE {table} SET {column} = $2 WHERE {key} = $1 AND {column} = $3",
                row["k"], rewrap(blob, lookup, new_key), blob,
            )
    return count


def sealed_key_ids(rows: list[bytes]) -> set[str]:
    """The master key ids that wrap these sealed values (for ``counter keys prune``)."""
    return {sealed_key_id(b) for b in rows if is_sealed(b)}

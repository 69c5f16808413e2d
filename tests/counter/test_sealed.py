"""Sealed values: holders' photos encrypted in the database, migrated from clear, re-wrapped on rotation."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import pytest

from counter.accounts import StorageAccountSystem
from counter.sealed import Sealer, is_sealed, photo_context, rewrap, rewrap_sealed, seal, seal_plain_photos, unseal
from identity.evidence import EvidenceTampered, WrongMasterKey, key_id
from storage import Database

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + secrets.token_bytes(3000)


def test_seal_opens_only_with_its_context_and_key() -> None:
    key, other = secrets.token_bytes(32), secrets.token_bytes(32)
    blob = seal(key, JPEG, b"ctx")
    assert is_sealed(blob) and JPEG not in blob and not blob.startswith(b"\xff\xd8\xff")
    ring = {key_id(key): key, key_id(other): other}
    assert unseal(blob, b"ctx", ring.get) == JPEG
    with pytest.raises(EvidenceTampered):
        unseal(blob, b"another row", ring.get)
    with pytest.raises(WrongMasterKey):
        unseal(blob, b"ctx", {}.get)
    moved = rewrap(blob, ring.get, other)
    assert moved[-len(JPEG) - 16:] == blob[-len(JPEG) - 16:]  # the ciphertext is untouched
    assert unseal(moved, b"ctx", {key_id(other): other}.get) == JPEG


async def _holder(db: Database, photo: bytes) -> None:
    """A holder and line as stored before photos were sealed (plain JPEG in the column)."""
    await db.execute("INSERT INTO acct_holders (name, id_number, birth_date, photo, photo_sha256, created_at)"
                     " VALUES ('王秀英', '11010519491231002X', '1949-12-31', $1, $2, 'now')",
                     photo, hashlib.sha256(photo).hexdigest())
    await db.execute("INSERT INTO acct_lines (msisdn, holder_id, status, plan, password_hash, updated_at)"
                     " VALUES ('13800138000', 1, 'active', 'basic-19', 'x', 'now')")


async def test_plain_photos_are_sealed_by_the_migration_and_rotation_rewraps_them(db: Database,
                                                                                   tmp_path: Path) -> None:
    await _holder(db, JPEG)
    sealer = Sealer(tmp_path / "master.key")
    assert await seal_plain_photos(db, sealer) == 1
    assert await seal_plain_photos(db, sealer) == 0  # once
    stored = bytes(await db.fetchval("SELECT photo FROM acct_holders"))
    assert is_sealed(stored) and not stored.startswith(b"\xff\xd8\xff") and JPEG[20:200] not in stored
    accounts = StorageAccountSystem(db, sealer)
    assert await accounts.holder_photo("13800138000") == JPEG
    # A rotation: the photo's key is wrapped by the new key; the ring (old key retired) still reads it.
    old = sealer.ring.current()
    new = secrets.token_bytes(32)
    assert await rewrap_sealed(db, {key_id(old): old}.get, new) == 1
    assert bytes(await db.fetchval("SELECT photo FROM acct_holders"))[4:20].decode() == key_id(new)
    assert unseal(bytes(await db.fetchval("SELECT photo FROM acct_holders")),
                  photo_context(hashlib.sha256(JPEG).hexdigest()), {key_id(new): new}.get) == JPEG


async def test_new_photos_are_stored_sealed(db: Database, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="sealed"):
        await StorageAccountSystem(db).create(msisdn="13900139000", name="李", id_number="1", birth_date="1950-01-01",
                                              photo=JPEG)
    accounts = StorageAccountSystem(db, Sealer(tmp_path / "master.key"))
    await accounts.create(msisdn="13900139000", name="李", id_number="1", birth_date="1950-01-01", photo=JPEG)
    assert not bytes(await db.fetchval("SELECT photo FROM acct_holders")).startswith(b"\xff\xd8\xff")
    assert await accounts.holder_photo("13900139000") == JPEG

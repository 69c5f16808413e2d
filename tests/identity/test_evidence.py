from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import stat
from pathlib import Path

import pytest

from identity.evidence import (
    EvidenceError,
    EvidenceNotFound,
    EvidenceStore,
    EvidenceTampered,
    WrongMasterKey,
    load_or_create_master_key,
)


@pytest.fixture
def store(tmp_path: Path) -> EvidenceStore:
    return EvidenceStore.open(tmp_path / "evidence", tmp_path / "keys" / "master.key")


async def test_round_trip_encrypted_at_rest(store: EvidenceStore, tmp_path: Path) -> None:
    data = b"\xff\xd8 a JPEG of an ID card 110101199003071234"
    sha = await store.put(data, "id_card", {"session": "s1", "name": "张三丰"})
    assert sha == hashlib.sha256(data).hexdigest()
    assert await store.get(sha) == data
    info = await store.info(sha)
    assert info.kind == "id_card" and info.meta == {"session": "s1", "name": "张三丰"} and info.size == len(data)
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "evidence").rglob("*") if p.is_file())
    assert b"110101199003071234" not in on_disk and "张三丰".encode() not in on_disk
    assert await store.put(data, "id_card") == sha
    assert len(list((tmp_path / "evidence").rglob("*.bin"))) == 1


def test_key_file_created_0600_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "k" / "master.key"
    key = load_or_create_master_key(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_master_key(path) == key
    os.chmod(path, 0o644)
    with pytest.raises(EvidenceError, match="chmod 600"):
        load_or_create_master_key(path)


def test_tampering_is_detected(store: EvidenceStore) -> None:
    sha = store.put_sync(b"face frame bytes" * 100, "face")
    bin_path = next(store.directory.rglob(f"{sha}.bin"))
    blob = bytearray(bin_path.read_bytes())
    blob[40] ^= 1
    bin_path.write_bytes(bytes(blob))
    with pytest.raises(EvidenceTampered):
        store.get_sync(sha)
    sha2 = store.put_sync(b"another", "face")
    head = next(store.directory.rglob(f"{sha2}.json"))
    header = json.loads(head.read_bytes())
    header["kind"] = "id_card"
    head.write_text(json.dumps(header))
    with pytest.raises(EvidenceTampered):
        store.get_sync(sha2)


def test_wrong_master_key(store: EvidenceStore) -> None:
    sha = store.put_sync(b"secret", "face")
    other = EvidenceStore(store.directory, secrets.token_bytes(32))
    with pytest.raises(WrongMasterKey, match=store.key_id):
        other.get_sync(sha)
    with pytest.raises(EvidenceNotFound):
        store.get_sync("0" * 64)
    with pytest.raises(EvidenceNotFound):
        store.get_sync("../../etc/passwd")


async def test_purge_after_retention(store: EvidenceStore) -> None:
    old = store.put_sync(b"old", "face")
    head = next(store.directory.rglob(f"{old}.json"))
    header = json.loads(head.read_bytes())
    header["created"] = (dt.datetime.now(dt.UTC) - dt.timedelta(days=200)).isoformat()
    head.write_text(json.dumps(header))
    new = store.put_sync(b"new", "face")
    assert await store.purge(dt.timedelta(days=180)) == [old]
    with pytest.raises(EvidenceNotFound):
        store.get_sync(old)
    assert store.get_sync(new) == b"new"


async def test_rotation_rewraps_without_touching_ciphertext(store: EvidenceStore) -> None:
    shas = [store.put_sync(f"record {i}".encode(), "face") for i in range(3)]
    before = {sha: next(store.directory.rglob(f"{sha}.bin")).read_bytes() for sha in shas}
    old_key_store = EvidenceStore(store.directory, store._key)
    new_key = secrets.token_bytes(32)
    assert await store.rotate(new_key) == 3
    assert await store.rotate(new_key) == 0
    for sha in shas:
        assert next(store.directory.rglob(f"{sha}.bin")).read_bytes() == before[sha]
        assert EvidenceStore(store.directory, new_key).get_sync(sha) == f"record {shas.index(sha)}".encode()
        with pytest.raises(WrongMasterKey):
            old_key_store.get_sync(sha)


def test_evidence_folder_is_made_private(tmp_path: Path) -> None:
    """A folder made earlier with a looser mode is 0700 once the store opens it; record folders too."""
    folder = tmp_path / "evidence"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    store = EvidenceStore(folder, secrets.token_bytes(32))
    sha = store.put_sync(b"face", "face.live")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / sha[:2]).stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in (folder / sha[:2]).iterdir()} == {0o600}

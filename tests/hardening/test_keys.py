"""Master key rotation while the service keeps reading, and the evidence retention purge driven by ``now``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from counter.config import Settings
from counter.keys import KeyRing, maintain, prune, recording_key_id
from identity.evidence import EvidenceNotFound, WrongMasterKey, key_id, load_or_create_master_key
from signaling.witness.recording import RecordingFiles


def _cli(settings: Settings, *args: str) -> dict[str, Any]:
    env = {**os.environ, "COUNTER_CONFIG": str(settings.data_dir / "none.toml"),
           "COUNTER_DATA_DIR": str(settings.data_dir)}
    out = subprocess.run([sys.executable, "-m", "counter.cli", "keys", *args], env=env, check=True,
                         capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.splitlines()[0])
    return result


async def test_rotation_while_the_service_keeps_reading(settings: Settings) -> None:
    from counter.app import build_app
    from counter.appkeys import IDENTITY

    app = await build_app(settings)
    async with TestClient(TestServer(app)):
        store = app[IDENTITY].evidence
        old_id = store.key_id
        shas = [await store.put(f"face image {i}".encode() * 50, "face.live", {"i": i}) for i in range(40)]
        master = settings.effective_master_key_file
        old_key = load_or_create_master_key(master)
        rec_dir = settings.data_dir / "recordings" / "rec-1"
        recording = RecordingFiles.create(rec_dir, old_key, "rec-1", "call-1")
        recording.write_segment(0, b"webm bytes")

        stop = asyncio.Event()
        reads = 0

        async def reader() -> None:
            nonlocal reads
            while not stop.is_set():
                for sha in shas:
                    assert (await store.get(sha)).startswith(b"face image")
                    reads += 1

        task = asyncio.create_task(reader())
        report = await asyncio.to_thread(_cli, settings, "rotate")
        await asyncio.sleep(0.05)
        stop.set()
        await task  # never failed while the headers changed key under it
        assert reads > len(shas)
        assert report["evidence_rewrapped"] == 40 and report["recordings_rewrapped"] == 1
        assert report["retired"] == old_id and report["new_key_id"] != old_id
        new_key = load_or_create_master_key(master)
        assert key_id(new_key) == report["new_key_id"]
        assert (master.parent / f"{master.name}.retired-{old_id}").exists()
        assert not (master.parent / f"{master.name}.next").exists()
        for head in (settings.data_dir / "evidence").glob("*/*.json"):
            assert json.loads(head.read_bytes())["key_id"] == report["new_key_id"]
        assert RecordingFiles(rec_dir, new_key).read_segment(0) == b"webm bytes"
        with pytest.raises(Exception, match="wrapped by master key"):
            RecordingFiles(rec_dir, old_key).read_segment(0)

        # The running node still wraps new records with the old key until its maintenance pass...
        straggler = await store.put(b"written during the rotation", "face.live", {})
        await maintain(app, store, KeyRing(master))
        assert store.key_id == report["new_key_id"]  # ...then follows the new key file.
        fresh = await store.put(b"written after", "face.live", {})
    assert [r["pruned"] for r in [_cli(settings, "prune")]] == [[]]  # the straggler still needs the old key

    # A restarted node reads everything; --finish re-wraps the straggler; prune drops the old key.
    app = await build_app(settings)
    async with TestClient(TestServer(app)):
        store = app[IDENTITY].evidence
        for sha in [*shas, straggler, fresh]:
            assert await store.get(sha)
        assert _cli(settings, "rotate", "--finish")["evidence_rewrapped"] == 1
        assert _cli(settings, "prune")["pruned"] == [old_id]
        assert await store.get(straggler) == b"written during the rotation"
        store.key_lookup = None
        store.use_master_key(old_key)
        with pytest.raises(WrongMasterKey):
            await store.get(shas[0])  # the old key opens nothing any more


def test_prune_keeps_keys_still_named(tmp_path: Path) -> None:
    master = tmp_path / "master.key"
    key = load_or_create_master_key(master)
    ring = KeyRing(master)
    (tmp_path / "recordings" / "r").mkdir(parents=True)
    RecordingFiles.create(tmp_path / "recordings" / "r" / "x", key, "x", "c")
    retired = tmp_path / f"master.key.retired-{key_id(key)}"
    retired.write_text(key.hex())
    retired.chmod(0o600)
    (tmp_path / "evidence").mkdir()
    assert prune(master, tmp_path / "evidence", tmp_path / "recordings") == [key_id(key)]
    ring.reload()
    assert ring.lookup(recording_key_id(key)) == key and ring.lookup("nope") is None


async def test_evidence_purge_follows_retention(settings: Settings) -> None:
    from counter.app import build_app
    from counter.appkeys import IDENTITY
    from counter.audit import AUDIT

    app = await build_app(settings.model_copy(update={"evidence_retention_days": 30}))
    async with TestClient(TestServer(app)):
        store = app[IDENTITY].evidence
        ring = KeyRing(settings.effective_master_key_file)
        sha = await store.put(b"an ID card photo", "idcard", {})
        now = dt.datetime.now(dt.UTC)
        await maintain(app, store, ring, now=now + dt.timedelta(days=29))
        assert await store.get(sha) == b"an ID card photo"
        await maintain(app, store, ring, now=now + dt.timedelta(days=31))
        with pytest.raises(EvidenceNotFound):
            await store.get(sha)
        assert not list((settings.data_dir / "evidence").glob("*/*"))  # nothing left half
        entries = await app[AUDIT].search(action="evidence.purged")
        assert len(entries) == 1


async def test_rotation_covers_the_holders_photos(settings: Settings) -> None:
    """``counter keys rotate`` re-wraps the photos sealed in the database; prune then drops the old key
    and every photo still opens; none is a plain JPEG."""
    from counter.appkeys import ACCOUNTS, DB
    from counter.sealed import is_sealed, sealed_key_id

    jpeg = b"\xff\xd8\xff\xe0" + os.urandom(2000)
    app = await build_app_with_photo(settings, jpeg)
    async with TestClient(TestServer(app)):
        old_id = key_id(load_or_create_master_key(settings.effective_master_key_file))
        rows = await app[DB].fetch("SELECT photo FROM acct_holders WHERE photo IS NOT NULL")
        blobs = [bytes(r["photo"]) for r in rows]
        assert blobs and all(is_sealed(b) and sealed_key_id(b) == old_id for b in blobs)
        report = await asyncio.to_thread(_cli, settings, "rotate")
        assert report["sealed_rewrapped"] == len(blobs) and report["retired"] == old_id
        assert _cli(settings, "prune")["pruned"] == [old_id]
        rows = await app[DB].fetch("SELECT photo FROM acct_holders WHERE photo IS NOT NULL")
        assert {sealed_key_id(bytes(r["photo"])) for r in rows} == {report["new_key_id"]}
        assert await app[ACCOUNTS].holder_photo("13300133000") == jpeg


async def build_app_with_photo(settings: Settings, jpeg: bytes) -> Any:
    """The app, with one more line whose holder has ``jpeg`` on file."""
    from counter.app import build_app
    from counter.appkeys import ACCOUNTS

    app = await build_app(settings)
    await app[ACCOUNTS].create(msisdn="13300133000", name="测试", id_number="11010519491231002X",
                               birth_date="1949-12-31", photo=jpeg)
    return app

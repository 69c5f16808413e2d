"""Master key rotation without downtime, and the retention purge of encrypted evidence.

Key files live next to the master key file ``K`` (``DATA_DIR/master.key``): ``K.next`` while a
rotation runs, ``K.retired-<id>`` for keys rotated away.  ``counter keys rotate``:

1. writes a new key to ``K.next`` (an interrupted rotation reuses it);
2. re-wraps every evidence record key and every recording key with it (ciphertext untouched; each
   header replaced atomically), unwrapping with whichever key of the ring the header names;
3. moves the old key to ``K.retired-<id>`` and the new one to ``K`` (atomic renames);
4. re-wraps the keys of the values sealed in the database (the holders' photos, :mod:`counter.sealed`).

A running node never stops reading: its evidence store finds any key of the ring by the id in the
record header (:class:`KeyRing` as the store's ``key_lookup``), and a periodic task switches its
writes to the new ``K``.  Records a node wrote with the old key during the rotation stay readable
through the retired key; ``counter keys rotate --finish`` re-wraps them and ``counter keys prune``
deletes retired keys that no header names any more.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from counter.background import repeat
from identity.evidence import KEY_BYTES, EvidenceError, EvidenceStore, load_or_create_master_key
from identity.evidence import key_id as evidence_key_id
from identity.files import write_atomic

log = logging.getLogger("counter.keys")

_RECORDING_PREFIX = b"recording-master-key"


def recording_key_id(key: bytes) -> str:
    """The fingerprint recordings use for a master key (``signaling.witness.recording.key_id``)."""
    import hashlib

    return hashlib.sha256(_RECORDING_PREFIX + key).hexdigest()[:16]


@dataclass
class KeyRing:
    """The master key file and its ``.next`` / ``.retired-*`` siblings, found by their key ids."""

    path: Path
    _keys: dict[str, bytes] = field(default_factory=dict)

    @property
    def next_path(self) -> Path:
        return self.path.with_name(self.path.name + ".next")

    def retired_path(self, key: bytes) -> Path:
        return self.path.with_name(f"{self.path.name}.retired-{evidence_key_id(key)}")

    def files(self) -> Iterator[Path]:
        if self.path.exists():
            yield self.path
        if self.next_path.exists():
            yield self.next_path
        yield from sorted(self.path.parent.glob(self.path.name + ".retired-*"))

    def reload(self) -> None:
        keys: dict[str, bytes] = {}
        for path in self.files():
            with contextlib.suppress(FileNotFoundError):
                key = load_or_create_master_key(path)
                keys[evidence_key_id(key)] = key
                keys[recording_key_id(key)] = key
        self._keys = keys

    def lookup(self, kid: str) -> bytes | None:
        """The key with evidence or recording id ``kid`` (re-reading the files once when unknown)."""
        if kid not in self._keys:
            self.reload()
        return self._keys.get(kid)

    def current(self) -> bytes:
        return load_or_create_master_key(self.path)


def _write_key(path: Path, key: bytes) -> None:
    write_atomic(path, (key.hex() + "\n").encode())


@dataclass(frozen=True)
class RotationReport:
    """What a rotation did."""

    new_key_id: str
    evidence_rewrapped: int
    recordings_rewrapped: int
    retired: str | None


def rewrap_recordings(root: Path, ring: KeyRing, new_key: bytes) -> int:
    """Re-wrap each recording's key (``<root>/<id>/recording.json``) with ``new_key``."""
    new_id = recording_key_id(new_key)
    count = 0
    for head_path in sorted(root.glob("*/recording.json")) if root.is_dir() else []:
        header = json.loads(head_path.read_bytes())
        if header.get("key_id") == new_id:
            continue
        old = ring.lookup(str(header.get("key_id")))
        if old is None:
            raise EvidenceError(f"{head_path}: wrapped by unknown master key {header.get('key_id')}; "
                                "restore its key file next to the master key and run again")
        try:
            record_key = aes_key_unwrap(old, base64.b64decode(header["wrapped_key"]))
        except InvalidUnwrap:
            raise EvidenceError(f"{head_path}: the key file for {header.get('key_id')} does not unwrap it") from None
        header["wrapped_key"] = base64.b64encode(aes_key_wrap(new_key, record_key)).decode()
        header["key_id"] = new_id
        write_atomic(head_path, json.dumps(header).encode())
        count += 1
    return count


def rotate(key_file: Path, evidence_dir: Path, recordings_dir: Path, *, finish_only: bool = False) -> RotationReport:
    """Rotate the master key (see the module docs); ``finish_only`` re-wraps stragglers with the current key."""
    ring = KeyRing(key_file)
    ring.reload()
    current = ring.current()
    if finish_only:
        new_key = current
    elif ring.next_path.exists():
        new_key = load_or_create_master_key(ring.next_path)  # an interrupted rotation: go on with it
    else:
        new_key = secrets.token_bytes(KEY_BYTES)
        _write_key(ring.next_path, new_key)
    ring.reload()
    store = EvidenceStore(evidence_dir, current)
    store.key_lookup = ring.lookup
    evidence = store.rotate_sync(new_key)
    recordings = rewrap_recordings(recordings_dir, ring, new_key)
    retired = None
    if new_key != current:
        _write_key(ring.retired_path(current), current)
        os.replace(ring.next_path, key_file)
        retired = evidence_key_id(current)
    log.info("master key rotation: %d evidence and %d recording keys re-wrapped", evidence, recordings)
    return RotationReport(evidence_key_id(new_key), evidence, recordings, retired)


def prune(key_file: Path, evidence_dir: Path, recordings_dir: Path, also_named: set[str] | None = None) -> list[str]:
    """Delete retired keys that no evidence or recording header names (nor ``also_named``: the ids
    wrapping sealed database values); returns their ids."""
    named: set[str] = set(also_named or ())
    for head in [*evidence_dir.glob("*/*.json"), *recordings_dir.glob("*/recording.json")]:
        named.add(str(json.loads(head.read_bytes()).get("key_id")))
    removed = []
    for path in KeyRing(key_file).files():
        if ".retired-" not in path.name:
            continue
        key = load_or_create_master_key(path)
        if evidence_key_id(key) not in named and recording_key_id(key) not in named:
            path.unlink()
            removed.append(evidence_key_id(key))
    return removed


# --- the running service: key ring, key reload, evidence purge ----------------------------------------


async def purge_evidence(store: EvidenceStore, retention_days: int, now: dt.datetime | None = None) -> list[str]:
    """Delete evidence created more than ``retention_days`` before ``now``; returns the sha256s."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(days=retention_days)
    removed = await store.purge(cutoff)
    if removed:
        log.info("evidence purge: %d records older than %s removed", len(removed), cutoff.isoformat())
    return removed


EVIDENCE_PURGE_EVERY_S = 3600.0
KEY_CHECK_EVERY_S = 30.0


async def _audit_purge(app: web.Application, removed: list[str], retention_days: int) -> None:
    from counter.audit import AUDIT, AuditEvent

    if removed:
        await app[AUDIT].append(AuditEvent(
            "evidence.purged", "system", "system",
            details={"count": len(removed), "retention_days": retention_days},
            evidence=removed[:1000],
        ))


async def maintain(app: web.Application, store: EvidenceStore, ring: KeyRing, now: dt.datetime | None = None) -> None:
    """One pass: follow a rotated master key for new records, purge evidence past retention (audited)."""
    from counter.appkeys import SETTINGS

    current = await asyncio.to_thread(ring.current)
    if evidence_key_id(current) != store.key_id:
        store.use_master_key(current)
        log.info("evidence store now wraps new records with master key %s", store.key_id)
    days = app[SETTINGS].evidence_retention_days
    removed = await purge_evidence(store, days, now)
    await _audit_purge(app, removed, days)


def setup(app: web.Application) -> None:
    """Component: the evidence store (``EVIDENCE``) reads through the key ring; a periodic
    task follows rotations and purges evidence past ``evidence_retention_days``."""
    from counter.appkeys import EVIDENCE, SETTINGS

    store = app[EVIDENCE]
    ring = KeyRing(app[SETTINGS].effective_master_key_file)
    store.key_lookup = ring.lookup
    last_purge = -EVIDENCE_PURGE_EVERY_S

    async def pass_() -> None:
        nonlocal last_purge
        loop_time = asyncio.get_running_loop().time()
        if loop_time - last_purge >= EVIDENCE_PURGE_EVERY_S:
            last_purge = loop_time
            await maintain(app, store, ring)
        else:
            current = await asyncio.to_thread(ring.current)
            if evidence_key_id(current) != store.key_id:
                store.use_master_key(current)

    repeat(app, "evidence-maintenance", KEY_CHECK_EVERY_S, pass_, first_after_s=KEY_CHECK_EVERY_S)


# --- CLI --------------------------------------------------------------------------------------------------


def _paths(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    from counter.cli import settings_from_args

    settings = settings_from_args(args)
    return settings.effective_master_key_file, settings.effective_evidence_dir, settings.effective_recordings_dir


async def rewrap_database(database_url: str, key_file: Path) -> int:
    """Re-wrap every value sealed in the database with the current master key (step 4 of a rotation)."""
    from counter.sealed import rewrap_sealed
    from storage import migrate, open_database

    ring = KeyRing(key_file)
    ring.reload()
    db = await open_database(database_url)
    try:
        await migrate(db)
        return await rewrap_sealed(db, ring.lookup, ring.current())
    finally:
        await db.close()


async def database_key_ids(database_url: str) -> set[str]:
    """The master key ids that wrap values sealed in the database."""
    from counter.sealed import SEALED_COLUMNS, sealed_key_ids
    from storage import migrate, open_database

    db = await open_database(database_url)
    try:
        await migrate(db)
        found: set[str] = set()
        for table, _, column, _ in SEALED_COLUMNS:
            rows = await db.fetch(f"SELECT {column} AS v FROM {table} WHERE {column} IS NOT NULL")
            found |= sealed_key_ids([bytes(r["v"]) for r in rows])
        return found
    finally:
        await db.close()


def _database_url(args: argparse.Namespace) -> str:
    from counter.cli import settings_from_args

    return settings_from_args(args).effective_database_url


def _rotate(args: argparse.Namespace) -> int:
    key_file, evidence, recordings = _paths(args)
    if not key_file.exists():
        print(f"counter keys: no master key at {key_file}; nothing to rotate")
        return 1
    report = rotate(key_file, evidence, recordings, finish_only=args.finish)
    sealed = asyncio.run(rewrap_database(_database_url(args), key_file))
    print(json.dumps({"new_key_id": report.new_key_id, "evidence_rewrapped": report.evidence_rewrapped,
                      "recordings_rewrapped": report.recordings_rewrapped, "sealed_rewrapped": sealed,
                      "retired": report.retired}))
    if report.retired:
        print(f"old key kept as {KeyRing(key_file).path.name}.retired-{report.retired}: once every node runs "
              "with the new key, run `counter keys rotate --finish` then `counter keys prune`")
    return 0


def _prune(args: argparse.Namespace) -> int:
    removed = prune(*_paths(args), also_named=asyncio.run(database_key_ids(_database_url(args))))
    print(json.dumps({"pruned": removed}))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="master key rotation (evidence, recordings, sealed photos)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    rot = ksub.add_parser("rotate", help="re-wrap every record key with a new master key; nodes keep running")
    rot.add_argument("--finish", action="store_true", help="only re-wrap records still under a retired key")
    rot.set_defaults(func=_rotate)
    pr = ksub.add_parser("prune", help="delete retired master keys no record needs any more")
    pr.set_defaults(func=_prune)

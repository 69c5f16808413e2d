"""What the nodes of a deployment share in the tests across nodes: their configuration (the keys,
one-second recording segments) and the recordings in the shared database, played through any node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from identity.evidence import load_or_create_master_key
from tests.hardening.multinode import csrf_header, post_json


def shared_config(tmp_path: Path, **more: str) -> dict[str, str]:
    """What a deployment's nodes share by configuration: the master key file (sealed photos, evidence,
    recordings), the audit's signing and pseudonym keys; here also one-second recording segments, and ``more``."""
    master = tmp_path / "shared" / "master.key"
    load_or_create_master_key(master)
    return {"COUNTER_MASTER_KEY_FILE": str(master), "COUNTER_WITNESS_SEGMENT_S": "1",
            "COUNTER_PSEUDONYM_KEY_FILE": str(tmp_path / "shared" / "pseudonym.key"),
            "COUNTER_AUDIT_KEY_FILE": str(tmp_path / "shared" / "audit.key"), **more}


async def recordings(conn: asyncpg.Connection, call_id: str) -> list[dict[str, Any]]:
    """The call's recordings in part order, with the tracks their segments hold."""
    rows = await conn.fetch(
        "SELECT r.id, r.ended_at, r.segments, p.part, p.previous_id, p.node FROM recordings r"
        " JOIN recording_parts p ON p.recording_id = r.id WHERE r.call_id = $1 ORDER BY p.part", call_id)
    out = []
    for row in rows:
        tracks = {t for (raw,) in await conn.fetch("SELECT tracks FROM recording_segments WHERE recording_id = $1",
                                                  row["id"]) for t in json.loads(raw)}
        out.append({**dict(row), "tracks": tracks})
    return out


async def play_through(auditor: aiohttp.ClientSession, play_at: str, read_at: str, rid: str) -> list[int]:
    """An auditor starts playback on node ``play_at`` and reads every segment through ``read_at``."""
    status, body = await post_json(auditor, f"{play_at}/api/recordings/{rid}/play", None,
                                   await csrf_header(auditor, play_at))
    assert status == 200 and body["segments"], body
    sizes = []
    for seg in body["segments"]:
        async with auditor.get(read_at + seg["url"]) as resp:
            assert resp.status == 200 and resp.content_type == "video/webm", (resp.status, await resp.text())
            sizes.append(len(await resp.read()))
    return sizes

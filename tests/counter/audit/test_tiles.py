"""The public C2SP tlog-tiles view of the log: paths, and a monitor that follows it without a login."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from counter.audit import AUDIT, AuditEvent
from counter.audit.tiles import TileNotFound, TileRef, parse_tile_path, tile_path

Client = TestClient[Any, Any]


def test_tile_paths_follow_the_spec() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(1, 0, 17) == "tile/1/000.p/17"
    assert tile_path(None, 5) == "tile/entries/005"
    assert parse_tile_path("0/x001/x234/067") == TileRef(0, 1234067)
    assert parse_tile_path("entries/x001/002.p/255") == TileRef(None, 1002, 255)
    for bad in ("0/1234067", "0/001/234", "0/x001", "01/000", "64/000", "0/000.p/0", "0/000.p/256", "e/000"):
        with pytest.raises(TileNotFound):
            parse_tile_path(bad)


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 2.1, written out again here: the monitor does not use the server's code."""
    if not leaves:
        return _h(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return _h(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:]))


def _path(level: str, index: int, width: int) -> str:
    d = f"{index:03d}"
    d = "0" * (-len(d) % 3) + d
    parts = [d[i:i + 3] for i in range(0, len(d), 3)]
    return "/tile/" + level + "/" + "/".join([f"x{p}" for p in parts[:-1]] + [parts[-1]]) + (
        f".p/{width}" if width < 256 else "")


class Monitor:
    """Follows the log through ``/checkpoint`` and the tiles only, from size 0."""

    def __init__(self, http: Client, vkey: str) -> None:
        self.http = http
        name, key_hash, key = vkey.split("+", 2)
        raw = base64.b64decode(key)
        assert raw[0] == 1
        self.origin, self.key_hash = name, bytes.fromhex(key_hash)
        self.key = Ed25519PublicKey.from_public_bytes(raw[1:])
        self.size, self.root, self.leaves = 0, _h(b""), list[bytes]()

    async def get(self, path: str) -> bytes:
        resp = await self.http.get(path)
        assert resp.status == 200, (path, resp.status, await resp.text())
        return await resp.read()

    async def follow(self) -> int:
        note = (await self.get("/checkpoint")).decode()
        body, sigs = note.split("\n\n", 1)
        body += "\n"
        mine = [base64.b64decode(line.split(" ")[2]) for line in sigs.splitlines()
                if line.split(" ")[1] == self.origin]
        assert any(s[:4] == self.key_hash for s in mine)
        self.key.verify(next(s[4:] for s in mine if s[:4] == self.key_hash), body.encode())
        origin, size_text, root_b64 = body.split("\n")[:3]
        size, root = int(size_text), base64.b64decode(root_b64)
        assert origin == self.origin and size >= self.size
        leaves: list[bytes] = []
        for n in range((size + 255) // 256):
            width = min(256, size - n * 256)
            tile = await self.get(_path("0", n, width))
            bundle = await self.get(_path("entries", n, width))
            hashes = [tile[i:i + 32] for i in range(0, len(tile), 32)]
            bodies, at = [], 0
            while at < len(bundle):
                length = int.from_bytes(bundle[at:at + 2], "big")
                bodies.append(bundle[at + 2:at + 2 + length])
                at += 2 + length
            assert [_h(b"\x00" + b) for b in bodies] == hashes
            for b in bodies:  # entries carry no personal data: pseudonyms and commitments only
                assert b"13811112222" not in b and "赵六".encode() not in b
            leaves += hashes
        if size >= 256:  # the level-1 tile agrees with the leaves below it
            level1 = await self.get(_path("1", 0, size // 256))
            assert level1 == b"".join(_mth(leaves[i * 256:(i + 1) * 256]) for i in range(size // 256))
        assert _mth(leaves) == root, "the tiles do not hash to the signed root"
        assert _mth(leaves[:self.size]) == self.root, "the log is not an extension of what was seen"
        assert leaves[:self.size] == self.leaves
        self.size, self.root, self.leaves = size, root, leaves
        return size


async def test_a_monitor_follows_the_public_tiles_from_0_to_n_without_a_login(app_client: Client) -> None:
    log = app_client.app[AUDIT]  # type: ignore[index]
    key = await (await app_client.get("/.well-known/audit-key")).json()
    monitor = Monitor(app_client, key["note_verifier_key"])
    sizes = []
    for batch in (3, 290, 40):
        for i in range(batch):
            await log.append(AuditEvent("transaction.puk.query", "agent", "agent1", account="13811112222",
                                        details={"i": i}, personal={"name": "赵六"}))
        await log.flush()
        sizes.append(await monitor.follow())
    assert sizes[0] >= 3 and sizes[-1] >= 333 and sizes == sorted(sizes)
    # Nothing beyond the checkpoint, nothing malformed: 404, never a 500.
    for path in (_path("0", sizes[-1] // 256, 255), _path("0", 9, 256), "/tile/0/12", "/tile/x/000"):
        assert (await app_client.get(path)).status == 404, path

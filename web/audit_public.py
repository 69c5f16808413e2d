"""The audit log's public, read-only face (C2SP ``tlog-tiles``): ``GET /checkpoint`` (the latest
checkpoint as a signed note, with witness cosignatures), ``GET /tile/<L>/<N>[.p/<W>]`` and
``GET /tile/entries/<N>[.p/<W>]``.  No login: monitors follow the log without an account; nothing
served carries personal data (see :mod:`counter.audit.tiles`)."""

from __future__ import annotations

from aiohttp import web

from counter.appkeys import SETTINGS
from counter.audit import AUDIT, AuditError
from counter.audit.tiles import TileNotFound, cosignatures, latest_checkpoint, parse_tile_path, read_tile

_IMMUTABLE = "public, max-age=31536000, immutable"


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type="text/plain", charset="utf-8",
                        headers={"Cache-Control": "no-store"})


async def checkpoint(request: web.Request) -> web.Response:
    """The latest checkpoint, ``text/plain`` signed note; may change every few hundred milliseconds."""
    log = request.app[AUDIT]
    cp = await latest_checkpoint(log, request.app[SETTINGS].audit_witness_quorum)
    if cp is None:
        return _text(404, "the audit log has no checkpoint yet")
    note = cp.signed_note(log.signer.public_key, await cosignatures(log, cp.tree_size))
    return web.Response(text=note, content_type="text/plain", charset="utf-8",
                        headers={"Cache-Control": "no-cache, max-age=2"})


async def tile(request: web.Request) -> web.Response:
    """A Merkle tree tile or an entry bundle covered by the latest checkpoint (immutable)."""
    log = request.app[AUDIT]
    try:
        ref = parse_tile_path(request.match_info["rest"])
        cp = await latest_checkpoint(log, request.app[SETTINGS].audit_witness_quorum)
        data = await read_tile(log, ref, cp.tree_size if cp else 0)
    except TileNotFound as exc:
        return _text(404, str(exc))
    except AuditError as exc:  # entries missing from the database: the log is damaged, not the request
        return _text(503, str(exc))
    return web.Response(body=data, content_type="application/octet-stream",
                        headers={"Cache-Control": "public, max-age=2" if ref.partial else _IMMUTABLE})


def add_routes(app: web.Application) -> None:
    """``/checkpoint`` and ``/tile/...`` (public)."""
    app.router.add_get("/checkpoint", checkpoint)
    app.router.add_get("/tile/{rest:.+}", tile)

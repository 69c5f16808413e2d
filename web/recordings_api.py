"""The witness on every call, its recordings, and their playback for auditors.

Setup puts the :class:`~signaling.witness.Witness` on the app (``app[WITNESS]``), routes its messages
on ``/ws``, closes recordings when calls end, indexes segments and writes each segment's sha256 to
the audit log (``recording.segment``) as it closes, and purges recordings past
``recording_retention_days``.  Auditors list, verify and play recordings; every playback is audited
(``auditor.play_recording``) and yields a ticket that the segment URLs need.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from counter.appkeys import DB, OWNERS, RECORDINGS, SETTINGS, WITNESS
from counter.audit import AUDIT, AuditEvent
from counter.background import repeat
from counter.users import Role
from signaling.aio import SIGNALING
from signaling.service import CallEvent
from signaling.witness import RecordingError, RecordingFiles, SegmentTampered
from signaling.witness.relay import Inbox, at_owner, attach
from storage.timeutil import iso, utcnow
from web.auth import require_role
from web.errors import ApiError
from web.owners import forwarded, pass_to
from web.params import path_int

log = logging.getLogger("web.recordings")

#: Playback tickets, sealed with the installation's master key (built by :mod:`counter.app`).
TICKETS: web.AppKey[Tickets] = web.AppKey("recording_tickets")
_ENDING = web.AppKey("recording_endings", set[asyncio.Task[Any]])
_INBOX = web.AppKey("witness_inbox", Inbox)
TICKET_TTL_S = 3600.0
PURGE_EVERY_S = 3600.0
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class Ticket:
    """Leave to stream one recording, given to one auditor by an audited ``play``."""

    recording_id: str
    user: str
    expires: float


class Tickets:
    """Tickets sealed with a key derived from the installation's master key: any node checks one
    that another node issued (behind a balancer each segment request may reach another node), and
    nothing is kept in one process's memory."""

    def __init__(self, master_key: bytes) -> None:
        self._key = hmac.new(master_key, b"remote-counter recording ticket v1", hashlib.sha256).digest()

    def _mac(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, payload, hashlib.sha256).digest()).decode().rstrip("=")

    def issue(self, ticket: Ticket) -> str:
        """The ticket as a URL-safe string."""
        body = json.dumps([ticket.recording_id, ticket.user, int(ticket.expires)], separators=(",", ":"))
        payload = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
        return f"{payload}.{self._mac(payload.encode())}"

    def check(self, text: str) -> Ticket | None:
        """The ticket ``text`` stands for, or ``None`` when forged, garbled or expired."""
        payload, _, mac = text[:512].partition(".")
        if not payload or not hmac.compare_digest(mac, self._mac(payload.encode())):
            return None
        try:
            rid, user, expires = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            ticket = Ticket(str(rid), str(user), float(expires))
        except (ValueError, TypeError):
            return None
        return ticket if ticket.expires >= time.time() else None


async def _call_hook(app: web.Application, event: CallEvent) -> None:
    witness, owners = app[WITNESS], app[OWNERS]
    if event.kind in ("ended", "abandoned"):
        job: Any = at_owner(witness, owners, event.call_id, "end")
    elif event.kind in ("requeued", "transferred"):
        job = at_owner(witness, owners, event.call_id, "leave", "agent")
    else:
        return
    task = asyncio.ensure_future(job)  # not under the routing lock: closing writes and audits segments
    app[_ENDING].add(task)
    task.add_done_callback(app[_ENDING].discard)


async def _consent_hook(app: web.Application, call_id: str, accepted: bool) -> None:
    # kept in the database: the witness of whichever node owns the call reads it (:func:`_consented_at`)
    if accepted:
        await app[DB].execute(
            "INSERT INTO call_consents (call_id, accepted_at) VALUES ($1, $2)"
            " ON CONFLICT (call_id) DO UPDATE SET accepted_at = excluded.accepted_at", call_id, time.time())
    else:
        await app[DB].execute("DELETE FROM call_consents WHERE call_id = $1", call_id)
    await app[AUDIT].append(AuditEvent(
        "recording.consent", "customer", f"session:{call_id}", outcome="ok" if accepted else "refused",
        session_id=call_id, details={"accepted": accepted},
    ))


# --- retention -----------------------------------------------------------------------------------------


async def purge_recordings(app: web.Application, older_than: dt.datetime | None = None) -> list[str]:
    """Delete recordings started before ``older_than`` (default: the retention period); audit each."""
    settings = app[SETTINGS]
    cutoff = older_than or utcnow() - dt.timedelta(days=settings.recording_retention_days)
    rows = await app[DB].fetch(
        "SELECT id, call_id FROM recordings WHERE purged_at IS NULL AND started_at < $1", iso(cutoff)
    )
    store = app[RECORDINGS]
    for row in rows:
        await asyncio.to_thread(store.remove, row["id"])
        await app[DB].execute("UPDATE recordings SET purged_at = $2 WHERE id = $1", row["id"], iso())
        await app[AUDIT].append(AuditEvent(
            "recording.purged", "system", "system", session_id=row["call_id"],
            details={"recording": row["id"], "retention_days": settings.recording_retention_days},
        ))
    return [r["id"] for r in rows]


# --- auditor API ---------------------------------------------------------------------------------------


_WITH_PART = ("SELECT r.*, p.part, p.previous_id, p.node FROM recordings r"
              " LEFT JOIN recording_parts p ON p.recording_id = r.id")


async def _recording(request: web.Request) -> dict[str, Any]:
    row = await request.app[DB].fetchrow(_WITH_PART + " WHERE r.id = $1", request.match_info["rid"])
    if row is None:
        raise ApiError(404, "no_recording", "no such recording: check the id in the list")
    if row["purged_at"] is not None:
        raise ApiError(410, "purged", f"recording purged on {row['purged_at']} after the retention period")
    return dict(row)


def _here(app: web.Application, recording_id: str) -> bool:
    """This node can read the recording's files (it wrote them, or the recordings folder is shared)."""
    try:
        return (app[RECORDINGS].open(recording_id).directory / "recording.json").exists()
    except RecordingError:
        return False


async def _at_writer(request: web.Request, row: dict[str, Any]) -> web.Response | None:
    """The answer of the node that wrote the recording, when its files are not here and it is alive."""
    owners = request.app[OWNERS]
    node = row.get("node")
    if forwarded(request) or not node or node == owners.node_id:
        return None
    if await asyncio.to_thread(_here, request.app, row["id"]):
        return None
    if not await owners.alive(node):
        return None
    return await pass_to(request, node)


async def audited_hashes(app: web.Application, call_id: str, recording_id: str) -> dict[int, str]:
    """Segment index -> sha256, as written in the audit log (the reference, not the index table)."""
    hashes: dict[int, str] = {}
    after = -1
    while True:
        found = await app[AUDIT].search(action="recording.segment", session_id=call_id, after_seq=after, limit=1000)
        for item in found:
            entry = item["entry"]
            if entry["details"].get("recording") == recording_id and entry["evidence"]:
                hashes[int(entry["details"]["index"])] = entry["evidence"][0]
        if len(found) < 1000:
            return hashes
        after = found[-1]["seq"]


async def verify_recording(app: web.Application, recording_id: str, call_id: str) -> list[dict[str, Any]]:
    """Each segment file checked against the audit log: ``ok``, ``altered``, ``missing`` or ``not_audited``."""
    expected = await audited_hashes(app, call_id, recording_id)
    files = app[RECORDINGS].open(recording_id)

    def check() -> list[dict[str, Any]]:
        present = set(files.segments())
        out = []
        for index in sorted(present | set(expected)):
            if index not in present:
                status = "missing"
            elif index not in expected:
                status = "not_audited"
            else:
                status = "ok" if files.file_sha256(index) == expected[index] else "altered"
            out.append({"index": index, "status": status, "sha256": expected.get(index)})
        return out

    return await asyncio.to_thread(check)


async def list_recordings(request: web.Request) -> web.Response:
    require_role(request, Role.AUDITOR)
    call_id = request.query.get("call")
    sql = _WITH_PART
    args: list[Any] = []
    if call_id:
        sql += " WHERE r.call_id = $1"
        args.append(call_id)
    rows = await request.app[DB].fetch(sql + " ORDER BY r.started_at DESC LIMIT 200", *args)
    return web.json_response({"recordings": [dict(r) for r in rows]})


async def get_recording(request: web.Request) -> web.Response:
    require_role(request, Role.AUDITOR)
    row = await _recording(request)
    if (elsewhere := await _at_writer(request, row)) is not None:
        return elsewhere
    row["next_id"] = await request.app[DB].fetchval(
        "SELECT recording_id FROM recording_parts WHERE previous_id = $1", row["id"])
    segments = await request.app[DB].fetch(
        "SELECT idx, sha256, size, start_ms, end_ms, tracks, audit_seq FROM recording_segments"
        " WHERE recording_id = $1 ORDER BY idx", row["id"],
    )
    checks = await verify_recording(request.app, row["id"], row["call_id"])
    return web.json_response({
        "recording": row,
        "segments": [{**dict(s), "tracks": json.loads(s["tracks"])} for s in segments],
        "verification": checks,
        "intact": bool(checks) and all(c["status"] == "ok" for c in checks),
    })


async def play(request: web.Request) -> web.Response:
    """An auditor starts watching a recording: audited; returns a ticket for the segment URLs."""
    user = require_role(request, Role.AUDITOR).user
    row = await _recording(request)
    if (elsewhere := await _at_writer(request, row)) is not None:
        return elsewhere  # the writer keeps the ticket: the segments are read there too
    await request.app[AUDIT].append(AuditEvent(
        "auditor.play_recording", "auditor", user.username, session_id=row["call_id"],
        details={"recording": row["id"]},
    ))
    ticket = request.app[TICKETS].issue(Ticket(row["id"], user.username, time.time() + TICKET_TTL_S))
    segments = await request.app[DB].fetch(
        "SELECT idx, start_ms, end_ms FROM recording_segments WHERE recording_id = $1 ORDER BY idx", row["id"]
    )
    base = f"/api/recordings/{row['id']}/segments"
    return web.json_response({
        "ticket": ticket,
        "expires_in_s": TICKET_TTL_S,
        "content_type": "video/webm",
        "segments": [{"index": s["idx"], "start_ms": s["start_ms"], "end_ms": s["end_ms"],
                      "url": f"{base}/{s['idx']}?ticket={ticket}"} for s in segments],
    })


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for a single-range ``Range`` header; ``None`` for the whole body."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    first, last = match.group(1), match.group(2)
    if not first:
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, end


async def segment(request: web.Request) -> web.StreamResponse:
    """A decrypted segment (``video/webm``), checked against the audit log; ``Range`` for seeking."""
    user = require_role(request, Role.AUDITOR).user
    if not forwarded(request) and not _here(request.app, request.match_info["rid"]):
        if (elsewhere := await _at_writer(request, await _recording(request))) is not None:
            return elsewhere
    ticket = request.app[TICKETS].check(request.query.get("ticket", ""))
    rid = request.match_info["rid"]
    if ticket is None or ticket.recording_id != rid or ticket.user != user.username:
        raise ApiError(403, "no_ticket", "start playback first (POST /api/recordings/{id}/play)")
    row = await _recording(request)
    index = path_int(request, "index")
    expected = (await audited_hashes(request.app, row["call_id"], rid)).get(index)
    if expected is None:
        raise ApiError(404, "no_segment", f"segment {index} is not in the audit log of this recording")
    files: RecordingFiles = request.app[RECORDINGS].open(rid)
    try:
        data = await asyncio.to_thread(files.read_segment, index, expected)
    except SegmentTampered as exc:
        await request.app[AUDIT].append(AuditEvent(
            "recording.tamper_detected", "system", "system", outcome="failed", session_id=row["call_id"],
            details={"recording": rid, "index": index}, reason=str(exc),
        ))
        raise ApiError(409, "tampered", str(exc)) from exc
    size = len(data)
    span = _byte_range(request.headers.get("Range"), size)
    headers = {"Accept-Ranges": "bytes", "Content-Type": "video/webm", "Cache-Control": "no-store"}
    if span is None:
        return web.Response(body=data, headers=headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return web.Response(status=206, body=data[start : end + 1], headers=headers)


# --- wiring --------------------------------------------------------------------------------------------


def setup(app: web.Application) -> None:
    """The auditor's recording routes, the witness tied to the calls (its messages on
    ``/ws``, recordings closed when calls end), and the purge past retention.  The witness itself is
    built by :mod:`counter.app`."""
    witness = app[WITNESS]
    app[_ENDING] = set[asyncio.Task[Any]]()

    async def start(app: web.Application) -> None:
        service, owners = app[SIGNALING], app[OWNERS]

        async def on_consent(call_id: str, accepted: bool) -> None:
            await _consent_hook(app, call_id, accepted)

        async def on_call(event: CallEvent) -> None:
            await _call_hook(app, event)

        attach(service, witness, on_consent, owners)
        inbox = app[_INBOX] = Inbox(service, witness, owners)
        await inbox.open()
        service.hooks.append(on_call)

    async def stop(app: web.Application) -> None:
        endings: set[asyncio.Task[Any]] = app[_ENDING]
        for task in list(endings):
            with contextlib.suppress(Exception):
                await task
        if _INBOX in app:
            await app[_INBOX].close()
        await witness.close()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    repeat(app, "recording-purge", PURGE_EVERY_S, lambda: purge_recordings(app))
    app.router.add_get("/api/recordings", list_recordings)
    app.router.add_get("/api/recordings/{rid}", get_recording)
    app.router.add_post("/api/recordings/{rid}/play", play)
    app.router.add_get("/api/recordings/{rid}/segments/{index}", segment)


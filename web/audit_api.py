"""Auditor HTTP API: search, records (viewing personal data is itself audited), proofs, checkpoints,
verify-now, export; and the public key at ``/.well-known/audit-key``.

Auditors see everything; supervisors may read entries without personal data.  The public key and
the latest checkpoint are public so that outside witnesses can keep copies of signed tree heads.
"""

from __future__ import annotations

import logging

from aiohttp import web

from counter.appkeys import DB, SETTINGS, WITNESSING
from counter.audit import AUDIT, AuditError, AuditEvent, AuditLog
from counter.audit.keys import Checkpoint, checkpoint_from_note, key_id, note_verifier_key, public_pem, raw_public
from counter.audit.purge import purge_task
from counter.audit.verify import MAX_KEPT, export_bundle, verify_database
from counter.audit.witnessing import WitnessConfig
from counter.users import Role
from web.audit_public import add_routes as add_public_routes
from web.auth import require_role
from web.errors import ApiError, read_json
from web.params import optional_query_int, parse_int, path_int, query_int

_READERS = (Role.AUDITOR, Role.SUPERVISOR)
log_error = logging.getLogger("counter.audit")
_MAX_EXPORT = 10_000
_MAX_PAGE = 1000


async def audit_key(request: web.Request) -> web.Response:
    signer = request.app[AUDIT].signer
    key = signer.public_key
    return web.json_response({
        "algorithm": "Ed25519",
        "public_key_pem": public_pem(key),
        "public_key_hex": raw_public(key).hex(),
        "key_id": key_id(key),
        "origin": signer.origin,
        "note_verifier_key": note_verifier_key(signer.origin, key),
        "checkpoint_format": "C2SP signed note at GET /checkpoint: <origin>\\n<size>\\n<base64 root>\\n<ISO time>\\n"
                             " (see docs/AUDIT.md)",
    })


async def latest_checkpoint(request: web.Request) -> web.Response:
    cp = request.app[AUDIT].latest_checkpoint()
    if cp is None:
        raise ApiError(404, "empty", "the audit log has no checkpoint yet")
    return web.json_response(cp.to_json())


async def search(request: web.Request) -> web.Response:
    session = require_role(request, *_READERS)
    log = request.app[AUDIT]
    q = request.query
    account = q.get("account") or None
    try:
        found = await log.search(
            since=q.get("since") or None,
            until=q.get("until") or None,
            actor_id=q.get("actor") or None,
            account=account,
            action=q.get("action") or None,
            outcome=q.get("outcome") or None,
            session_id=q.get("session") or None,
            after_seq=query_int(request, "after", -1, lo=-1),
            limit=query_int(request, "limit", 100, lo=1, hi=_MAX_PAGE),
        )
    except AuditError as exc:
        raise ApiError(400, "bad_request", str(exc)) from exc
    if account:
        await log.append(AuditEvent(
            "auditor.search", session.user.role.value, session.user.username, account=account,
            details={"results": len(found)},
        ))
    return web.json_response({"entries": found, "next_after": found[-1]["seq"] if found else None})


async def record(request: web.Request) -> web.Response:
    session = require_role(request, *_READERS)
    log = request.app[AUDIT]
    seq = path_int(request, "seq")
    entry = await log.get(seq)
    if entry is None:
        raise ApiError(404, "not_found", f"no audit entry {seq}")
    if request.query.get("personal") in ("1", "true", "yes"):
        if session.user.role is not Role.AUDITOR:
            raise ApiError(403, "forbidden", "only auditors may open personal data")
        if not entry["personal_stored"]:
            reason = "purged after the retention period" if entry["personal_purged"] else "none recorded"
            raise ApiError(404, "no_personal_data", f"entry {seq} has no personal data: {reason}")
        # Written (durably) before anything is shown: who looked at what is never lost.
        viewed = await log.append(AuditEvent(
            "auditor.view_record", "auditor", session.user.username,
            session_id=entry["entry"].get("session_id"), details={"seq": seq},
        ))
        try:
            entry["personal"] = await log.personal(seq)
        except AuditError as exc:
            raise ApiError(409, "tampered", str(exc)) from exc
        entry["view_logged_as"] = viewed.seq
    return web.json_response(entry)


async def inclusion(request: web.Request) -> web.Response:
    require_role(request, *_READERS)
    log = request.app[AUDIT]
    try:
        proof = await log.inclusion_proof(query_int(request, "seq"), optional_query_int(request, "size"))
    except AuditError as exc:
        raise ApiError(400, "bad_request", str(exc)) from exc
    cp = await log.checkpoint_at(proof.tree_size)
    return web.json_response({**proof.to_json(), "checkpoint": cp.to_json() if cp else None})


async def consistency(request: web.Request) -> web.Response:
    require_role(request, *_READERS)
    log = request.app[AUDIT]
    old = query_int(request, "from")
    try:
        path = await log.consistency_proof(old, optional_query_int(request, "to"))
    except AuditError as exc:
        raise ApiError(400, "bad_request", str(exc)) from exc
    latest = log.latest_checkpoint()
    new = optional_query_int(request, "to") or (latest.tree_size if latest else 0)
    return web.json_response({"old_size": old, "new_size": new, "path": path})


async def verify_now(request: web.Request) -> web.Response:
    session = require_role(request, Role.AUDITOR)
    log = request.app[AUDIT]
    kept = await _kept_checkpoints(request, log)
    await log.flush()
    settings = request.app[SETTINGS]
    witnesses = [WitnessConfig.parse(spec).cosigner for spec in settings.audit_witnesses]
    report = await verify_database(request.app[DB], log.signer.public_key, trusted=kept,
                                   witnesses=witnesses, quorum=min(settings.audit_witness_quorum, len(witnesses)))
    await log.append(AuditEvent(
        "auditor.verify", "auditor", session.user.username, outcome="ok" if report.ok else "failed",
        details={"entries": report.entries, "verified_size": report.verified_size},
        reason=report.first.message if report.first else None,
    ))
    return web.json_response(report.to_json())


async def _kept_checkpoints(request: web.Request, log: AuditLog) -> list[Checkpoint]:
    """Checkpoints the auditor kept (``{"checkpoints": [signed note text, ...]}``, optional body)."""
    if not request.can_read_body:
        return []
    body = await read_json(request, limit=64 * 1024)
    notes = body.get("checkpoints") if isinstance(body, dict) else None
    if not isinstance(notes, list) or len(notes) > MAX_KEPT or not all(isinstance(n, str) for n in notes):
        raise ApiError(400, "bad_request",
                       f"send {{\"checkpoints\": [up to {MAX_KEPT} signed notes from /checkpoint]}}")
    try:
        return [checkpoint_from_note(note, log.signer.public_key)[0] for note in notes]
    except ValueError as exc:
        raise ApiError(400, "bad_checkpoint", f"a kept checkpoint does not verify under the log key: {exc}") from exc


async def export(request: web.Request) -> web.Response:
    session = require_role(request, Role.AUDITOR)
    log = request.app[AUDIT]
    first = query_int(request, "from", 0)
    last = optional_query_int(request, "to")
    if last is not None and last - first >= _MAX_EXPORT:
        raise ApiError(400, "too_large", f"export at most {_MAX_EXPORT} entries at a time")
    since = [parse_int(v, "since", lo=1) for v in request.query.getall("since", [])][:MAX_KEPT + 1]
    if len(since) > MAX_KEPT:
        raise ApiError(400, "too_large", f"at most {MAX_KEPT} 'since' sizes")
    try:
        cosign = request.app[WITNESSING].cosign if WITNESSING in request.app else None
        bundle = await export_bundle(log, first, last if last is not None else None, since, cosign)
    except AuditError as exc:
        raise ApiError(400, "bad_request", str(exc)) from exc
    if len(bundle["entries"]) > _MAX_EXPORT:
        raise ApiError(400, "too_large", f"export at most {_MAX_EXPORT} entries at a time: give 'to'")
    await log.append(AuditEvent(
        "auditor.export", "auditor", session.user.username, details={"from": first, "to": last},
    ))
    return web.json_response(bundle, headers={"Content-Disposition": "attachment; filename=audit-bundle.json"})


def setup(app: web.Application) -> None:
    """The auditor's routes and the public checkpoint routes; the purge of personal data past retention.
    The audit log itself (``app[AUDIT]``) is opened by :mod:`counter.app`."""
    settings = app[SETTINGS]
    if settings.audit_purge_interval_s > 0:
        app.cleanup_ctx.append(purge_task(lambda: app[AUDIT], settings.evidence_retention_days,
                                          settings.audit_purge_interval_s))
    app.router.add_get("/.well-known/audit-key", audit_key)
    add_public_routes(app)
    app.router.add_get("/api/audit/checkpoint/latest", latest_checkpoint)
    app.router.add_get("/api/audit/entries", search)
    app.router.add_get(r"/api/audit/entries/{seq:\d+}", record)
    app.router.add_get("/api/audit/proof/inclusion", inclusion)
    app.router.add_get("/api/audit/proof/consistency", consistency)
    app.router.add_post("/api/audit/verify", verify_now)
    app.router.add_get("/api/audit/export", export)

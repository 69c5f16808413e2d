"""App wiring: the one place that knows every package.

:func:`build_app` opens the database, builds every service (:func:`build_services`) and hands them to
the web layer on the app under the keys of :mod:`counter.appkeys`; the web modules in
:data:`COMPONENTS` then add their routes, middlewares and the work they do beside the requests.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from counter.accounts import StorageAccountSystem
from counter.appkeys import (
    ACCOUNTS,
    CALLBACKS,
    DB,
    ENGINE,
    EVIDENCE,
    GUARD,
    GUIDANCE,
    HELPER_STARTS,
    HELPERS,
    HOLDS,
    IDENTITY,
    MAINTENANCE,
    NOT_READY,
    OWNERS,
    RECORDINGS,
    SESSIONS,
    SETTINGS,
    SMS_CODES,
    USERS,
    WITNESS,
    WITNESSING,
    WORKORDERS,
)
from counter.audit import AUDIT, AuditError, AuditEvent, AuditLog, open_audit_log
from counter.audit.witnessing import WitnessConfig, Witnessing, WitnessRefusal
from counter.callbacks import Callbacks
from counter.config import Settings
from counter.demo import load_demo
from counter.guessing import Guard
from counter.guidance import GuidanceRuns
from counter.identity_models import IdentityState
from counter.jobs import Maintenance
from counter.logging import install as mask_personal_data_in_logs
from counter.recordings import RecordingIndex
from counter.sealed import Sealer, seal_plain_photos
from counter.sessions import CounterSessions
from counter.smscode import SmsCodes
from counter.transactions.engine import TransactionEngine
from counter.users import UserStore
from counter.workorders import WorkOrders
from identity.evidence import EvidenceStore, load_or_create_master_key
from signaling.aio import SIGNALING
from signaling.bus import make_bus
from signaling.helper_start import HelperStarts
from signaling.helpers import HelperAudit, Helpers, HelperStore
from signaling.hold import HoldOptions, Holds
from signaling.owners import Owners
from signaling.service import IceConfig, SignalingService
from signaling.store import SignalingStore
from signaling.witness import RecordingStore, Witness
from signaling.witness.compat import Decode
from storage import Database, migrate, open_database
from web.error_map import domain_error_middleware
from web.errors import error_middleware
from web.owners import internal_url
from web.recordings_api import TICKETS, Tickets
from web.security import security_headers

log = logging.getLogger("counter.app")

#: Components set up in this order; each is ``"module:function"`` taking the application
#: (sync or async).  A web component declares its routes (and middlewares, and the work it does
#: beside the requests) with the services :func:`build_services` put on the app.
COMPONENTS: list[str] = [
    "web.health:setup",
    "web.ratelimit:setup",
    "web.availability:setup",
    "web.auth:setup",
    "web.audit_api:setup",
    "web.security_events:setup",
    "web.counter_api:setup",
    "web.care_link:setup",
    "counter.sms:setup",
    "web.pages:setup",
    "web.signaling_ws:setup",
    "web.helpers_api:setup",
    "web.owners:setup",
    "web.recordings_api:setup",
    "web.identity_api:setup",
    "web.consoles_api:setup",
    "web.staffing_api:setup",
    "web.waiting_api:setup",
    "web.callbacks_api:setup",
    "web.link_api:setup",
    "counter.keys:setup",
]


def private_dir(path: Path) -> None:
    """Create the data folder (database, keys, evidence, recordings) if needed, mode 0700 either way."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


async def _witnessing(settings: Settings, db: Database, audit: AuditLog) -> Witnessing | None:
    """Check the stored tree against the witnesses; refuse to serve (audited) if behind or inconsistent."""
    if not settings.audit_witnesses:
        return None
    try:
        configs = [WitnessConfig.parse(spec) for spec in settings.audit_witnesses]
    except ValueError as exc:
        raise AuditError(str(exc)) from exc
    witnessing = Witnessing(audit, configs)
    try:
        await witnessing.check_on_start()
    except WitnessRefusal as exc:
        logging.getLogger("counter.audit").error("refusing to serve: %s", exc)
        async with db.transaction() as tx:
            await audit.append_in(tx, AuditEvent("audit.start_refused", "system", "system", outcome="refused",
                                                 details=exc.details, reason=str(exc)))
        await witnessing.close()
        await audit.abandon()
        raise
    witnessing.start()
    return witnessing


async def _open_audit(app: web.Application) -> None:
    """The audit log (``app[AUDIT]``), checked against its witnesses if any; flushed and closed on cleanup."""
    audit = await open_audit_log(app[DB], app[SETTINGS])
    app[AUDIT] = audit
    witnessing = await _witnessing(app[SETTINGS], app[DB], audit)
    if witnessing is not None:
        app[WITNESSING] = witnessing

    async def close(app: web.Application) -> None:
        if WITNESSING in app:
            await app[WITNESSING].close()
        await app[AUDIT].close()

    app.on_cleanup.append(close)


async def _load_models(app: web.Application) -> None:
    """The face and ID models, loaded in an executor before serving; if they cannot be, /readyz says why."""
    ident = IdentityState(app[EVIDENCE])
    app[IDENTITY] = ident
    if (error := await ident.load(app[SETTINGS])) is not None:
        app[NOT_READY]["models"] = error


def _counter_services(app: web.Application) -> None:
    """Accounts, counter sessions, work orders, guidance, the transaction engine and its helpers."""
    db, audit, settings = app[DB], app[AUDIT], app[SETTINGS]
    accounts = StorageAccountSystem(db, Sealer(settings.effective_master_key_file))
    sessions = CounterSessions(db, audit)
    workorders = WorkOrders(db)
    app[ACCOUNTS] = accounts
    app[SESSIONS] = sessions
    app[WORKORDERS] = workorders
    app[GUIDANCE] = GuidanceRuns(db)
    app[ENGINE] = TransactionEngine(db, accounts, sessions, workorders, audit, node_id=settings.effective_node_id)
    app[MAINTENANCE] = Maintenance(accounts, audit)
    app[SMS_CODES] = SmsCodes(db, accounts, sessions, audit)


def _signaling(settings: Settings, db: Database) -> SignalingService:
    """The signaling service on the shared state (Redis, or this process alone)."""
    options = settings.signaling_options
    bus = make_bus(settings.redis_url, settings.effective_node_id, options.redis_prefix,
                   max_connections=settings.redis_max_connections, pool_timeout_s=settings.redis_pool_timeout_s)
    ice = IceConfig(settings.stun_urls, settings.turn_urls, settings.turn_secret, settings.turn_ttl_s)
    return SignalingService(SignalingStore(db), bus, options, ice)


def _helpers(app: web.Application) -> None:
    """Helpers (家属) joining a holder's call, their audit entries, and helpers starting a call."""
    helpers = Helpers(app[SIGNALING], HelperStore(app[DB]))
    helpers.attach()
    audit = app[AUDIT]

    async def to_audit(entry: HelperAudit) -> None:
        # The helper's name is personal data: purgeable, never in the entry's immutable body.
        details = {"relation": entry.relation} if entry.relation else {}
        await audit.append(AuditEvent(entry.action, entry.actor_role, entry.actor_id, outcome=entry.outcome,
                                      session_id=entry.call_id, account=entry.claimed_account, details=details,
                                      personal={"name": entry.name} if entry.name else {}))

    helpers.audit_hooks.append(to_audit)
    app[HELPERS] = helpers
    app[HELPER_STARTS] = HelperStarts(app[DB], app[SIGNALING].store, helpers.store)


def _public_url(settings: Settings) -> str:
    """Where customers reach the service (in the texts sent to kept places)."""
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else socket.gethostname()
    return f"{'https' if settings.tls else 'http'}://{host}:{settings.port}"


def _holds(app: web.Application) -> None:
    """Kept places in the queue (texted when their turn is near), audited."""
    options = HoldOptions.from_values(app[SETTINGS].hold)
    audit = app[AUDIT]

    async def to_audit(action: str, call_id: str, details: Mapping[str, Any]) -> None:
        await audit.append(AuditEvent(action, "system", "system", session_id=call_id, details=dict(details)))

    holds = Holds(app[SIGNALING], app[DB], options, options.public_url or _public_url(app[SETTINGS]), to_audit)
    holds.attach()
    app[HOLDS] = holds


def _witness(app: web.Application, master_key: bytes) -> None:
    """The witness on every call of this node, its recordings indexed and audited as they are made, and
    the tickets that let an auditor play one."""
    settings = app[SETTINGS]
    store = RecordingStore(settings.effective_recordings_dir, master_key)
    index = RecordingIndex(app[DB], app[AUDIT], app[SIGNALING].node_id)
    witness = Witness(store, segment_s=settings.witness_segment_s, on_segment=index.segment,
                      on_recording_end=index.ended, on_recording_start=index.started,
                      decode=Decode(settings.witness_decode), drain_s=settings.witness_drain_ms / 1000)
    witness.consent_lookup = index.consented_at
    app[RECORDINGS] = store
    app[WITNESS] = witness
    app[TICKETS] = Tickets(master_key)


async def build_services(app: web.Application) -> None:
    """Every service the web layer uses, on the app under its key."""
    settings, db = app[SETTINGS], app[DB]
    master_key = load_or_create_master_key(settings.effective_master_key_file)
    app[EVIDENCE] = EvidenceStore(settings.effective_evidence_dir, master_key)
    await _open_audit(app)
    app[USERS] = UserStore(db)
    app[GUARD] = Guard(db)
    _counter_services(app)
    app[SIGNALING] = _signaling(settings, db)
    app[OWNERS] = Owners(app[SIGNALING].bus, internal_url(settings))
    _helpers(app)
    _holds(app)
    app[CALLBACKS] = Callbacks(db)
    _witness(app, master_key)
    await _load_models(app)


async def build_app(settings: Settings) -> web.Application:
    """Open the database, apply migrations, load demo data on first start, build the services and set
    up every component."""
    mask_personal_data_in_logs()
    settings.check_paths()
    app = web.Application(middlewares=[security_headers, error_middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[NOT_READY] = {}
    private_dir(settings.data_dir)
    db = await open_database(settings.effective_database_url)
    app[DB] = db
    try:
        applied = await migrate(db)
        if applied:
            log.info("applied migrations: %s", ", ".join(f"{c}#{v}" for c, v in applied))
        if settings.demo_data:
            await load_demo(db, settings)
        sealed = await seal_plain_photos(db, Sealer(settings.effective_master_key_file))
        if sealed:
            log.info("sealed %d holder photos stored in clear before", sealed)
        await build_services(app)
        for ref in COMPONENTS:
            module, func = ref.split(":")
            result = getattr(importlib.import_module(module), func)(app)
            if inspect.isawaitable(result):
                await result
        # Innermost: a handler's domain error is its HTTP answer before any other middleware sees it.
        app.middlewares.append(domain_error_middleware)
    except BaseException:
        await db.close()
        raise

    async def close_db(app: web.Application) -> None:
        await app[DB].close()

    app.on_cleanup.append(close_db)
    return app

"""App wiring: the one place that knows every package."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from pathlib import Path

from aiohttp import web

from counter.appkeys import DB, EVIDENCE, NOT_READY, SETTINGS
from counter.config import Settings
from counter.demo import load_demo
from counter.logging import install as mask_personal_data_in_logs
from counter.sealed import Sealer, seal_plain_photos
from identity.evidence import EvidenceStore, load_or_create_master_key
from storage import migrate, open_database
from web.error_map import domain_error_middleware
from web.errors import error_middleware
from web.security import security_headers

log = logging.getLogger("counter.app")

#: Components set up in this order; each is ``"module:function"`` taking the application
#: (sync or async).  A component puts what it offers on the app under its own ``web.AppKey``.
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


async def build_app(settings: Settings) -> web.Application:
    """Open the database, apply migrations, load demo data on first start, and set up every component."""
    mask_personal_data_in_logs()
    settings.check_paths()
    app = web.Application(
        middlewares=[security_headers, error_middleware, domain_error_middleware],
        client_max_size=settings.max_body_bytes,
    )
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
        app[EVIDENCE] = EvidenceStore(settings.effective_evidence_dir,
                                      load_or_create_master_key(settings.effective_master_key_file))
        for ref in COMPONENTS:
            module, func = ref.split(":")
            result = getattr(importlib.import_module(module), func)(app)
            if inspect.isawaitable(result):
                await result
    except BaseException:
        await db.close()
        raise

    async def close_db(app: web.Application) -> None:
        await app[DB].close()

    app.on_cleanup.append(close_db)
    return app

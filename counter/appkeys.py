"""Typed keys for what the app wiring puts on the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from counter.config import Settings
from identity.evidence import EvidenceStore
from storage import Database

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
#: Set by components that are not ready yet (models loading...): name -> reason.  Read by /readyz.
NOT_READY = web.AppKey("not_ready", dict[str, str])
#: The encrypted face/ID evidence store, built by the composition root (``counter.app``).
EVIDENCE = web.AppKey("evidence", EvidenceStore)

"""Typed keys for what the app wiring (:mod:`counter.app`, the composition root) puts on the aiohttp
application: the services it builds, which the web layer reads."""

from __future__ import annotations

from aiohttp import web

from counter.accounts import AccountSystem
from counter.config import Settings
from counter.guidance import GuidanceRuns
from counter.identity_models import IdentityState
from counter.jobs import Maintenance
from counter.sessions import CounterSessions
from counter.smscode import SmsCodes
from counter.transactions.engine import TransactionEngine
from counter.workorders import WorkOrders
from identity.evidence import EvidenceStore
from signaling.witness import RecordingStore, Witness
from storage import Database

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
#: Set by components that are not ready yet (models loading...): name -> reason.  Read by /readyz.
NOT_READY = web.AppKey("not_ready", dict[str, str])
#: The encrypted face/ID evidence store.
EVIDENCE = web.AppKey("evidence", EvidenceStore)
#: The face and ID card models once loaded, and the evidence store.
IDENTITY = web.AppKey("identity", IdentityState)
ACCOUNTS = web.AppKey("accounts", AccountSystem)
SESSIONS = web.AppKey("counter_sessions", CounterSessions)
ENGINE = web.AppKey("transaction_engine", TransactionEngine)
WORKORDERS = web.AppKey("workorders", WorkOrders)
GUIDANCE = web.AppKey("guidance", GuidanceRuns)
MAINTENANCE = web.AppKey("counter_maintenance", Maintenance)
SMS_CODES = web.AppKey("sms_codes", SmsCodes)
#: The witness on every call of this node (it records them).
WITNESS = web.AppKey("witness", Witness)
RECORDINGS = web.AppKey("recordings", RecordingStore)

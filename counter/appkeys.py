"""Typed keys for what the app wiring (:mod:`counter.app`, the composition root) puts on the aiohttp
application: the services it builds, which the web layer reads."""

from __future__ import annotations

from aiohttp import web

from counter.accounts import AccountSystem
from counter.audit.witnessing import Witnessing
from counter.callbacks import Callbacks
from counter.config import Settings
from counter.guessing import Guard
from counter.guidance import GuidanceRuns
from counter.identity_models import IdentityState
from counter.jobs import Maintenance
from counter.sessions import CounterSessions
from counter.smscode import SmsCodes
from counter.transactions.engine import TransactionEngine
from counter.users import UserStore
from counter.workorders import WorkOrders
from identity.evidence import EvidenceStore
from signaling.helper_start import HelperStarts
from signaling.helpers import Helpers
from signaling.hold import Holds
from signaling.owners import Owners
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
#: The audit log's outside witnesses, when the installation has any.
WITNESSING = web.AppKey("audit_witnessing", Witnessing)
USERS = web.AppKey("users", UserStore)
#: Counts failed logins and service passwords, and locks what is guessed at.
GUARD = web.AppKey("guard", Guard)
#: Which node owns which call (its media, its witness), and how to reach that node.
OWNERS = web.AppKey("owners", Owners)
HELPERS = web.AppKey("helpers", Helpers)
HELPER_STARTS = web.AppKey("helper_starts", HelperStarts)
#: Kept places in the queue, and the way back to them.
HOLDS = web.AppKey("holds", Holds)
CALLBACKS = web.AppKey("callbacks", Callbacks)

"""Care lane by age: a join link that carries the customer's line, minted and sealed by the server.

Staff (or the SMS that invites a customer) hand out ``/customer?hint=<token>``: the token is the line
and an expiry, sealed with the service's master key (authenticated encryption: nobody can forge or
read it, and it stops working when it expires).  When a holder aged ``Settings.care_age`` or more
joins with it, the server puts the call in the care lane and the page turns senior mode on and says
so.  A customer may instead type their number on the first screen (optional): the same rule, the
same audit (``source: typed``); the number is never logged.  The decision is the server's, from the
account on record, and it is audited (``care_link.minted``, ``call.care_by_age``); the holder's age
itself is never written down.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
import time

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from counter.appkeys import ACCOUNTS, SETTINGS
from counter.audit import AUDIT, AuditEvent
from counter.sealed import Sealer
from counter.users import Role
from web.auth import require_role
from web.errors import ApiError, read_json

CONTEXT = b"care-link/v1"
MAX_HINT = 1024
MSISDN = re.compile(r"1[3-9][0-9]{9}")


class CareLinkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    msisdn: str = Field(pattern=r"^1[3-9][0-9]{9}$", description="the holder's line")


def _sealer(request: web.Request) -> Sealer:
    return Sealer(request.app[SETTINGS].effective_master_key_file)


def mint(sealer: Sealer, msisdn: str, ttl_s: float, now: float | None = None) -> tuple[str, float]:
    """A hint for ``msisdn`` valid for ``ttl_s``: (token, expiry in unix seconds)."""
    expires = (now if now is not None else time.time()) + ttl_s
    blob = sealer.seal(json.dumps({"msisdn": msisdn, "exp": expires}).encode(), CONTEXT)
    return base64.urlsafe_b64encode(blob).decode().rstrip("="), expires


def read(sealer: Sealer, token: str, now: float | None = None) -> str | None:
    """The line a hint carries; ``None`` if it is forged, damaged or expired."""
    if not token or len(token) > MAX_HINT:
        return None
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(sealer.unseal(blob, CONTEXT))
    except Exception:  # anything that does not open is no hint at all
        return None
    if not isinstance(data, dict) or not isinstance(data.get("msisdn"), str):
        return None
    if float(data.get("exp", 0)) < (now if now is not None else time.time()):
        return None
    return str(data["msisdn"])


def age_on(birth_date: str, today: dt.date) -> int:
    born = dt.date.fromisoformat(birth_date)
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


async def care_by_age(request: web.Request, hint: object) -> tuple[bool, str | None]:
    """(care lane?, the line) for a join hint: care when the line's holder is ``care_age`` or older."""
    if not isinstance(hint, str):
        return False, None
    msisdn = await asyncio.to_thread(read, _sealer(request), hint)  # the key files are read
    if msisdn is None:
        return False, None
    account = await request.app[ACCOUNTS].get(msisdn)
    if account is None:
        return False, msisdn
    return age_on(account.holder.birth_date, dt.date.today()) >= request.app[SETTINGS].care_age, msisdn


async def care_by_number(request: web.Request, typed: object) -> tuple[bool, str | None]:
    """(care lane?, the line) for the number a customer typed on the first screen (optional): decided
    exactly as for a care link, from the account on record.  Anything but a mobile number is no number."""
    if not isinstance(typed, str) or not MSISDN.fullmatch(typed):
        return False, None
    account = await request.app[ACCOUNTS].get(typed)
    if account is None:
        return False, typed
    return age_on(account.holder.birth_date, dt.date.today()) >= request.app[SETTINGS].care_age, typed


async def audit_join(request: web.Request, call_id: str, msisdn: str, source: str = "care_link") -> None:
    """The care lane chosen by age for ``call_id`` (the threshold, never the age); ``source`` is
    ``care_link`` or ``typed`` (the number typed on the first screen)."""
    await request.app[AUDIT].append(AuditEvent(
        "call.care_by_age", "system", "system", session_id=call_id, account=msisdn,
        details={"lane": "care", "age_at_least": request.app[SETTINGS].care_age, "source": source},
    ))


async def create(request: web.Request) -> web.Response:
    """Staff: a care link for a line (to send by SMS); audited."""
    session = require_role(request, Role.AGENT, Role.SUPERVISOR)
    raw = await read_json(request, limit=1024)
    try:
        body = CareLinkBody.model_validate(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid", f"send {{\"msisdn\": \"1xxxxxxxxxx\"}}: {exc}") from exc
    token, expires = await asyncio.to_thread(mint, _sealer(request), body.msisdn, request.app[SETTINGS].care_link_ttl_s)
    await request.app[AUDIT].append(AuditEvent(
        "care_link.minted", session.user.role.value, session.user.username, account=body.msisdn,
        details={"expires_at": int(expires)},
    ))
    return web.json_response({"link": f"/customer?hint={token}", "expires_at": int(expires)}, status=201)


async def check(request: web.Request) -> web.Response:
    """Customer, before joining: does this link put me in the care lane?  (Nothing else is told.)"""
    raw = await read_json(request, limit=MAX_HINT + 64)
    care, _ = await care_by_age(request, raw.get("hint") if isinstance(raw, dict) else None)
    return web.json_response({"care": care, "age": request.app[SETTINGS].care_age if care else None})


def setup(app: web.Application) -> None:
    app.router.add_post("/api/counter/care-links", create)
    app.router.add_post("/api/customer/care-hint", check)

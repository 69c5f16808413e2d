"""The catalog's test cases, one per code: good and bad input, a violated precondition, what to expect.

Shared by the catalog's tests and the at-rest hardening tests (every code's personal data encrypted).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from counter.accounts import LineStatus
from counter.sessions import CounterSession, Level
from counter.transactions.engine import TxStatus
from tests.counter.txkit import Kit, ProofKind, id_number

MSISDN = "13800138000"
Setup = Callable[[Kit, CounterSession], Awaitable[CounterSession | None]]


async def _nothing(kit: Kit, session: CounterSession) -> None:
    return None


def _line(**fields: Any) -> Setup:
    async def setup(kit: Kit, session: CounterSession) -> None:
        await kit.set_line(MSISDN, **fields)

    return setup


async def _unknown_account(kit: Kit, session: CounterSession) -> CounterSession:
    return await kit.session("13900000000", Level.A3)


async def _new_holder_verified(kit: Kit, session: CounterSession) -> CounterSession:
    return await kit.sessions.raise_level(
        session.id, Level.A3, await kit.prove(session.id, ProofKind.ID_CARD, ProofKind.FACE_MATCH), "idcard",
        subject=f"new_holder:{NEW_ID}",
    )


async def _no_account_session(kit: Kit, session: CounterSession) -> CounterSession:
    return await kit.session(None, Level.A0)


async def _open_complaint(kit: Kit, session: CounterSession) -> None:
    outcome = await kit.run(session, "complaint.register", {"category": "billing", "description": "charged twice"})
    assert outcome.status == TxStatus.DONE


NEW_ID = id_number("19900101", "456")
HOLDER_ID = id_number("19600307")
CLOSED = _line(status=LineStatus.CLOSED)


@dataclass
class Case:
    good: dict[str, Any]
    bad: dict[str, Any]
    violate: Setup
    prepare: Setup = _nothing
    violating_input: dict[str, Any] | None = None
    expect: dict[str, Any] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "puk.query": Case({}, {"iccid": "x"}, CLOSED),
    "line.suspend": Case(
        {"reason": "travel"},
        {"until": "2001-01-01"},
        _line(status=LineStatus.SUSPENDED),
        expect={"status": LineStatus.SUSPENDED},
    ),
    "line.resume": Case(
        {}, {"now": True}, _nothing, prepare=_line(status=LineStatus.SUSPENDED), expect={"status": LineStatus.ACTIVE}
    ),
    "sim.report_loss": Case({}, {"note": "x" * 500}, _line(status=LineStatus.LOST), expect={"status": LineStatus.LOST}),
    "sim.cancel_loss": Case(
        {},
        {"x": 1},
        _nothing,
        prepare=_line(status=LineStatus.LOST, status_before_loss=LineStatus.ACTIVE),
        expect={"status": LineStatus.ACTIVE},
    ),
    "line.emergency_resume": Case(
        {"hours": 48},
        {"hours": 100},
        _nothing,
        prepare=_line(status=LineStatus.SUSPENDED_ARREARS, balance_cents=-3000),
        expect={"status": LineStatus.EMERGENCY},
    ),
    "sim.replace": Case({"esim": True, "reason": "damaged"}, {"reason": "bored"}, CLOSED),
    "password.reset": Case({}, {"password": "1"}, CLOSED),
    "password.change": Case(
        {"old_password": "246810", "new_password": "135790"},
        {"old_password": "246810", "new_password": "123456"},
        _nothing,
        violating_input={"old_password": "000001", "new_password": "135790"},
    ),
    "realname.update": Case(
        {"name": "张三", "id_number": HOLDER_ID, "birth_date": "1960-03-07", "id_expires": "2040-01-01"},
        {
            "name": "张三",
            "id_number": HOLDER_ID[:-1] + ("0" if HOLDER_ID[-1] != "0" else "1"),
            "birth_date": "1960-03-07",
            "id_expires": "2040-01-01",
        },
        _nothing,
        violating_input={"name": "李四", "id_number": NEW_ID, "birth_date": "1990-01-01", "id_expires": "2040-01-01"},
    ),
    "contact.update": Case({"email": "new@example.cn"}, {}, CLOSED, expect={"contact_email": "new@example.cn"}),
    "balance.query": Case({}, {"all": True}, _unknown_account),
    "bill.query": Case({"month": "2026-10"}, {"month": "2026-13"}, _nothing, violating_input={"month": "2025-01"}),
    "payment.history": Case({"limit": 5}, {"limit": 0}, _unknown_account),
    "invoice.issue": Case({"month": "2026-09"}, {"month": "Sept"}, _nothing, violating_input={"month": "2026-10"}),
    "credit.query": Case({}, {"x": 1}, _unknown_account),
    "points.query": Case({}, {"x": 1}, _unknown_account),
    "points.redeem": Case(
        {"reward": "data-1g", "quantity": 2}, {"reward": "car"}, _line(points=100), expect={"points": 4000}
    ),
    "plan.change": Case(
        {"plan": "5g-59"},
        {"plan": "free"},
        _nothing,
        violating_input={"plan": "basic-19"},
        expect={"pending_plan": "5g-59"},
    ),
    "addon.subscribe": Case({"addon": "ringback"}, {"addon": "x"}, _nothing, violating_input={"addon": "caller-id"}),
    "addon.unsubscribe": Case(
        {"addon": "caller-id"}, {}, _nothing, violating_input={"addon": "ringback"}, expect={"addons": ()}
    ),
    "roaming.set": Case(
        {"enabled": True}, {"enabled": "maybe"}, _line(status=LineStatus.SUSPENDED), expect={"roaming": True}
    ),
    "forwarding.set": Case(
        {"target": "13912345678"},
        {"target": "12345"},
        _nothing,
        violating_input={"target": MSISDN},
        expect={"forwarding": "13912345678"},
    ),
    "datacap.set": Case({"cap_mb": 2048}, {"cap_mb": 5}, CLOSED, expect={"datacap_mb": 2048}),
    "spamblock.set": Case({"enabled": True}, {}, CLOSED, expect={"spamblock": True}),
    "owner.transfer": Case(
        {"new_name": "李四", "new_id_number": NEW_ID, "new_birth_date": "1990-01-01", "new_id_expires": "2040-01-01"},
        {"new_name": "李四", "new_id_number": NEW_ID, "new_birth_date": "1991-01-01", "new_id_expires": "2040-01-01"},
        _nothing,
        prepare=_new_holder_verified,
    ),
    "account.close": Case({}, {"refund_to": "pocket"}, _line(balance_cents=-100), expect={"status": LineStatus.CLOSED}),
    "portability.check": Case({}, {"x": 1}, CLOSED),
    "fault.report": Case(
        {"service": "broadband", "description": "no internet since noon"},
        {"service": "gas", "description": "smell"},
        CLOSED,
    ),
    "fault.guide": Case(
        {"script": "broadband.no_internet", "steps_done": ["lights", "power_cycle"], "outcome": "solved"},
        {"script": "broadband.no_internet", "steps_done": ["dance"], "outcome": "solved"},
        _no_account_session,
        violating_input={
            "script": "tv.no_signal",
            "steps_done": ["source"],
            "outcome": "not_solved",
            "open_work_order": True,
        },
    ),
    "complaint.register": Case(
        {"category": "network", "description": "weak signal at home"},
        {"category": "network", "description": ""},
        _open_complaint,
        violating_input={"category": "billing", "description": "charged twice again"},
    ),
}

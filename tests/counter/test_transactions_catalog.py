"""Every code of the catalog: success at its level, refusal below it, bad input, precondition
violated, idempotent retry.  SQLite only (the storage-sensitive paths run on both in test_transactions_engine)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from counter.accounts import LineStatus
from counter.sessions import CounterSession, Level
from counter.transactions import CATALOG
from counter.transactions.engine import TxStatus
from storage import migrate, open_database
from tests.counter.txkit import Kit, ProofKind, id_number, make_kit

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


def test_the_catalog_has_every_code_of_the_spec() -> None:
    spec = (Path(__file__).resolve().parents[3] / "shared" / "spec" / "transactions.md").read_text(encoding="utf-8")
    codes = {
        line.split("|")[2].strip() for line in spec.splitlines() if line.startswith("| ") and "." in line.split("|")[2]
    }
    assert set(CATALOG) == codes == set(CASES)


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    db = await open_database(f"sqlite:///{tmp_path / 'tx.db'}")
    await migrate(db)
    k = await make_kit(db)
    await k.account(MSISDN)
    yield k
    await k.audit.close()
    await db.close()


@pytest.mark.parametrize("code", sorted(CASES))
async def test_every_code(kit: Kit, code: str) -> None:
    spec = CATALOG[code]
    case = CASES[code]
    level = spec.session_level

    # Success at its level (A4: A3 plus a supervisor's approval), with one audit entry and a receipt.
    session = await kit.session(MSISDN, level)
    session = await case.prepare(kit, session) or session
    before = await kit.audit_count(session.id)
    version = await kit.version(MSISDN)
    first = await kit.engine.request(session.id, code, case.good, "key-1", "agent1")
    # Every request, a look-up too, waits for the customer's confirmation of the server's words.
    assert first.status == TxStatus.PENDING, first.reason
    assert await kit.version(MSISDN) == version, "nothing may change before the customer confirms"
    assert await kit.audit_count(session.id) == before, "nothing runs before the customer confirms"
    words = first.to_json(for_customer=True)["confirm"]
    assert words["title_zh"] == spec.title_zh and words["effect_zh"] and words["effect_en"], words
    first = await kit.engine.confirm(first.id, session.id, True)
    if spec.needs_approval:
        assert first.status == TxStatus.PENDING
        first = await kit.engine.approve(first.id, "super1")
    assert first.status == TxStatus.DONE, first.reason
    assert first.text_zh and first.text_en and "{" not in first.text_zh + first.text_en
    assert await kit.audit_count(session.id) == before + 1
    account = await kit.accounts.get(MSISDN)
    assert account is not None
    for name, value in case.expect.items():
        assert getattr(account, name) == value, name
    sms = await kit.db.fetchval("SELECT COUNT(*) FROM sms_outbox WHERE tx_id = $1", first.id)
    assert sms == 1
    done_version = await kit.version(MSISDN)
    assert (done_version > version) == (
        spec.changes_state and code not in ("fault.report", "complaint.register", "invoice.issue", "fault.guide")
    )

    # Idempotent retry: the same key returns the first outcome and applies nothing again.
    again = await kit.engine.request(session.id, code, case.good, "key-1", "agent1")
    assert again.id == first.id and again.status == TxStatus.DONE and again.result == first.result
    assert (await kit.engine.confirm(first.id, session.id, True)).status == TxStatus.DONE
    assert await kit.version(MSISDN) == done_version
    assert await kit.audit_count(session.id) == before + 1

    # Refusal below its level, with the level named.
    if level > Level.A0:
        low = await kit.session(MSISDN, Level(level - 1))
        refused = await kit.engine.request(low.id, code, case.good, "key-low", "agent1")
        assert refused.status == TxStatus.REFUSED
        assert refused.reason and f"needs {spec.level}" in refused.reason
        assert await kit.audit_count(refused.session_id) == 1

    # Bad input: specific errors, nothing changed, audited.
    fresh = await kit.session(MSISDN, level)
    version = await kit.version(MSISDN)
    bad = await kit.engine.request(fresh.id, code, case.bad, "key-bad", "agent1")
    assert bad.status == TxStatus.REFUSED and bad.reason and bad.reason.startswith("bad input")
    assert bad.errors and all(e["field"] and e["error"] for e in bad.errors)
    assert await kit.version(MSISDN) == version
    assert await kit.audit_count(fresh.id) == 1


@pytest.mark.parametrize("code", sorted(CASES))
async def test_every_code_refuses_a_violated_precondition(kit: Kit, code: str) -> None:
    spec = CATALOG[code]
    case = CASES[code]
    session = await kit.session(MSISDN, spec.session_level)
    session = await case.violate(kit, session) or session
    version = await kit.version(MSISDN)
    sms = await kit.db.fetchval("SELECT COUNT(*) FROM sms_outbox")
    inputs = case.violating_input if case.violating_input is not None else case.good
    before = await kit.audit_count(session.id)
    outcome = await kit.run(session, code, inputs)
    assert outcome.status == TxStatus.REFUSED, outcome
    assert outcome.reason and not outcome.reason.startswith("bad input") and "needs A" not in outcome.reason
    assert outcome.reason_zh
    assert await kit.version(MSISDN) == version
    assert await kit.db.fetchval("SELECT COUNT(*) FROM sms_outbox") == sms
    assert await kit.audit_count(session.id) == before + 1


#: Inputs that are neither personal nor secret although free-form: codes and months, never a person's data.
NOT_PERSONAL = {("bill.query", "month"), ("invoice.issue", "month"), ("fault.guide", "script"),
                ("fault.guide", "steps_done"), ("line.suspend", "until")}


def test_every_personal_input_is_declared_so() -> None:
    """The audit entry's immutable body holds ``details.inputs`` for ever: every input that can hold a
    phone number, a name, an address, a date of a person or free text is personal (purgeable) or
    secret (never kept), unless listed above as a code."""
    undeclared = []
    for code, spec in CATALOG.items():
        for name, info in spec.inputs.model_fields.items():
            kind = str(info.annotation)
            free = ("str" in kind or "date" in kind) and "Literal" not in kind
            declared = name in spec.personal_fields or name in spec.secret_fields
            if free and not declared and (code, name) not in NOT_PERSONAL:
                undeclared.append(f"{code}.{name}: {kind}")
    assert undeclared == []


async def test_forwarding_target_is_in_the_purgeable_part_only(tmp_path: Path) -> None:
    db = await open_database(f"sqlite:///{tmp_path / 'fw.db'}")
    try:
        await migrate(db)
        kit = await make_kit(db)
        await kit.account(MSISDN)
        session = await kit.session(MSISDN, Level.A2)
        done = await kit.run(session, "forwarding.set", {"target": "13912345678"})
        assert done.status == TxStatus.DONE, done
        await kit.audit.flush()
        bodies = [r["body"] for r in await db.fetch("SELECT body FROM audit_entries")]
        personal = [r["data"] for r in await db.fetch("SELECT data FROM audit_personal")]
        assert any("forwarding.set" in b for b in bodies)
        assert not [b for b in bodies if "12345678" in b]
        assert any("13912345678" in p for p in personal)
    finally:
        await db.close()

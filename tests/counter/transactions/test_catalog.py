"""Every code of the catalog: success at its level, refusal below it, bad input, precondition
violated, idempotent retry.  SQLite only (the storage-sensitive paths run on both in test_engine)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from counter.sessions import Level
from counter.transactions import CATALOG
from counter.transactions.engine import TxStatus
from storage import migrate, open_database
from tests.conftest import SHARED
from tests.counter.transactions.cases import CASES, MSISDN
from tests.counter.txkit import Kit, make_kit


def test_the_catalog_has_every_code_of_the_spec() -> None:
    spec = (SHARED / "spec" / "transactions.md").read_text(encoding="utf-8")
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

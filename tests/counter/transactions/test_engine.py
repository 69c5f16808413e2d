"""Engine rules on both back-ends: racing agents, confirmation, approval by another person, expiry;
and the line state machine under random sequences of transactions (Hypothesis)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from counter.accounts import LineStatus
from counter.sessions import Level
from counter.transactions.engine import (
    NODE_TTL_S,
    RESTARTED_CALL_ENDED,
    RESTARTED_RUNNING,
    TransactionEngine,
    TxError,
    TxStatus,
)
from storage import Database, migrate, open_database
from storage.timeutil import iso, utcnow
from tests.counter.txkit import ProofKind, make_kit

MSISDN = "13800138000"


async def test_two_agents_racing_conflicting_changes_exactly_one_wins(db: Database) -> None:
    kit = await make_kit(db)
    try:
        await kit.account(MSISDN, points=1500)
        one = await kit.session(MSISDN, Level.A2, agent="agent1")
        two = await kit.session(MSISDN, Level.A2, agent="agent2")
        for code, inputs in (
            ("line.suspend", {}),
            ("points.redeem", {"reward": "credit-10"}),  # 1000 points each: only one can be afforded
        ):
            if code == "points.redeem":
                await kit.set_line(MSISDN, status=LineStatus.ACTIVE)
            a = await kit.engine.request(one.id, code, inputs, f"{code}-a", "agent1")
            b = await kit.engine.request(two.id, code, inputs, f"{code}-b", "agent2")
            assert a.status == b.status == TxStatus.PENDING
            before = await kit.audit_count()
            results = await asyncio.gather(
                kit.engine.confirm(a.id, one.id, True), kit.engine.confirm(b.id, two.id, True)
            )
            assert sorted(r.status.value for r in results) == ["done", "refused"], results
            assert await kit.audit_count() == before + 2
        account = await kit.accounts.get(MSISDN)
        assert account is not None and account.points == 500
        outcomes = await kit.db.fetch("SELECT outcome FROM audit_entries ORDER BY seq")
        assert [o["outcome"] for o in outcomes].count("refused") == 2
    finally:
        await kit.audit.close()


async def test_same_request_confirmed_twice_at_once_applies_once(db: Database) -> None:
    kit = await make_kit(db)
    try:
        await kit.account(MSISDN)
        session = await kit.session(MSISDN, Level.A2)
        pending = await kit.engine.request(session.id, "points.redeem", {"reward": "data-1g"}, "k", "agent1")
        results = await asyncio.gather(*(kit.engine.confirm(pending.id, session.id, True) for _ in range(4)))
        assert {r.id for r in results} == {pending.id}
        account = await kit.accounts.get(MSISDN)
        assert account is not None and account.points == 4500
        assert await kit.audit_count(session.id) == 1
    finally:
        await kit.audit.close()


async def test_confirmation_approval_and_expiry(db: Database) -> None:
    kit = await make_kit(db)
    try:
        await kit.account(MSISDN)
        session = await kit.session(MSISDN, Level.A3)
        # A4: the requesting agent cannot approve; the customer's decline ends it, audited.
        pending = await kit.engine.request(session.id, "sim.replace", {}, "r1", "agent1")
        try:
            await kit.engine.approve(pending.id, "agent1")
            raise AssertionError("self-approval must be refused")
        except TxError as exc:
            assert exc.code == "same_person"
        approved = await kit.engine.approve(pending.id, "super1")
        assert approved.status == TxStatus.PENDING and approved.approved_by == "super1"
        declined = await kit.engine.confirm(pending.id, session.id, False)
        assert declined.status == TxStatus.DECLINED
        assert await kit.audit_count(session.id) == 1
        # An A2+ proof older than 10 minutes is re-checked before a state change, not before a query.
        await kit.db.execute(
            "UPDATE counter_sessions SET level_at = $2 WHERE id = $1", session.id, iso(utcnow() - timedelta(minutes=11))
        )
        stale = await kit.engine.request(session.id, "line.suspend", {}, "s1", "agent1")
        assert stale.status == TxStatus.REFUSED and "minutes old" in (stale.reason or "")
        query = await kit.engine.request(session.id, "puk.query", {}, "q1", "agent1")
        assert query.status == TxStatus.PENDING
        assert (await kit.engine.confirm(query.id, session.id, True)).status == TxStatus.DONE
        # A key reused for another code is an error, not a silent replay.
        try:
            await kit.engine.request(session.id, "balance.query", {}, "q1", "agent1")
            raise AssertionError("reused key must be refused")
        except TxError as exc:
            assert exc.status == 409
    finally:
        await kit.audit.close()


async def test_recovery_finishes_what_a_crash_left_in_flight(db: Database) -> None:
    """Rows as a SIGKILL leaves them, then a restarted engine (same node name): nothing stays half-done,
    each finished request has its one audit entry, keys still return it; another live node's request is
    left alone until that node stops saying it is alive."""
    kit = await make_kit(db)
    try:
        await kit.account(MSISDN)
        live = await kit.session(MSISDN, Level.A3)
        ended = await kit.session(MSISDN, Level.A2, agent="agent2")
        running = await kit.engine.request(live.id, "balance.query", {}, "q", "agent1")
        confirmed = await kit.engine.request(live.id, "datacap.set", {"cap_mb": 300}, "c", "agent1")
        orphan_ended = await kit.engine.request(ended.id, "datacap.set", {"cap_mb": 400}, "g", "agent2")
        waiting = await kit.engine.request(live.id, "balance.query", {}, "w", "agent1")
        a4 = await kit.engine.request(live.id, "sim.replace", {}, "a4", "agent1")
        elsewhere = await kit.engine.request(live.id, "puk.query", {}, "b", "agent1")
        # The crash: inserted and never checked; confirmed and never run; an A4 confirmed, not approved.
        await db.execute("UPDATE tx_requests SET status = 'running' WHERE id = $1", running.id)
        for tx in (confirmed, orphan_ended, a4):
            await db.execute("UPDATE tx_requests SET confirmed_at = $2 WHERE id = $1", tx.id, iso())
        await db.execute("UPDATE tx_requests SET status = 'running', node = 'node-b' WHERE id = $1", elsewhere.id)
        await kit.sessions.end_call(ended.id)
        before = await kit.audit_count()

        engine = TransactionEngine(db, kit.accounts, kit.sessions, kit.workorders, kit.audit, node_id="local")
        other = TransactionEngine(db, kit.accounts, kit.sessions, kit.workorders, kit.audit, node_id="node-b")
        await other.heartbeat()
        await engine.heartbeat()
        report = await engine.recover(at_start=True)
        assert (report.failed, report.rerun, report.refused) == ([running.id], [confirmed.id], [orphan_ended.id])

        failed = await engine.get(running.id)
        assert failed.status == TxStatus.FAILED
        assert (failed.reason, failed.reason_zh) == RESTARTED_RUNNING
        done = await engine.get(confirmed.id)
        assert done.status == TxStatus.DONE, done
        account = await kit.accounts.get(MSISDN)
        assert account is not None and account.datacap_mb == 300
        refused = await engine.get(orphan_ended.id)
        assert refused.status == TxStatus.REFUSED and (refused.reason, refused.reason_zh) == RESTARTED_CALL_ENDED
        for tx in (waiting, a4):  # waiting for the customer, or for a supervisor
            assert (await engine.get(tx.id)).status == TxStatus.PENDING
        assert (await engine.get(elsewhere.id)).status == TxStatus.RUNNING  # another live node's
        assert await kit.audit_count() == before + 3
        for tx in (failed, done, refused):
            assert tx.audit_seq is not None
            action = await db.fetchval("SELECT action FROM audit_entries WHERE seq = $1", tx.audit_seq)
            assert action == f"transaction.{tx.code}"

        # Keys still hold; confirming again changes nothing.
        again = await engine.request(live.id, "balance.query", {}, "q", "agent1")
        assert again.id == running.id and again.status == TxStatus.FAILED
        assert (await engine.confirm(confirmed.id, live.id, True)).status == TxStatus.DONE
        assert (await engine.recover()).count == 0
        assert await kit.audit_count() == before + 3

        # Node b falls silent: its request is finished once its liveness lapses.
        lapsed = await engine.recover(now=time.time() + NODE_TTL_S + 1)
        assert lapsed.failed == [elsewhere.id]
        assert (await engine.get(elsewhere.id)).status == TxStatus.FAILED
        assert (await engine.get(waiting.id)).status == TxStatus.PENDING
        assert await kit.audit_count() == before + 4
    finally:
        await kit.audit.close()


async def test_a_look_up_waits_for_the_customers_confirmation(db: Database) -> None:
    kit = await make_kit(db)
    try:
        await kit.account(MSISDN, balance_cents=1234)
        session = await kit.session(MSISDN, Level.A1)
        asked = await kit.engine.request(session.id, "balance.query", {}, "b1", "agent1")
        assert asked.status == TxStatus.PENDING and asked.needs_confirmation and asked.result == {}
        assert await kit.audit_count(session.id) == 0, "nothing ran, nothing to audit yet"
        words = asked.to_json(for_customer=True)["confirm"]
        assert words["title_zh"] == "余额查询" and "138****8000" in words["what_zh"], words
        assert words["effect_en"] == "A look-up only: nothing is changed.", words
        # Declined on the customer's screen: it never runs.
        no = await kit.engine.request(session.id, "points.query", {}, "p1", "agent1")
        declined = await kit.engine.confirm(no.id, session.id, False)
        assert declined.status == TxStatus.DECLINED and declined.result == {}
        # Another session's customer cannot confirm it.
        other = await kit.session(MSISDN, Level.A1, agent="agent2")
        try:
            await kit.engine.confirm(asked.id, other.id, True)
            raise AssertionError("another session's customer must not confirm it")
        except TxError as exc:
            assert exc.status == 404
        done = await kit.engine.confirm(asked.id, session.id, True)
        assert done.status == TxStatus.DONE and done.result["balance"] == "12.34"
        body = await kit.db.fetchval(
            "SELECT body FROM audit_entries WHERE session_id = $1 AND action = 'transaction.balance.query'", session.id
        )
        assert json.loads(body)["details"]["customer_confirmed_at"] == done.confirmed_at
    finally:
        await kit.audit.close()


async def test_secrets_reach_only_the_customers_answer(db: Database) -> None:
    kit = await make_kit(db)
    try:
        await kit.account(MSISDN)
        session = await kit.session(MSISDN, Level.A3)
        account = await kit.accounts.get(MSISDN)
        assert account is not None and account.sim is not None
        puk = account.sim.puk
        query = await kit.run(session, "puk.query", {})
        replaced = await kit.run(session, "sim.replace", {})
        assert query.status == replaced.status == TxStatus.DONE
        account = await kit.accounts.get(MSISDN)
        assert account is not None and account.sim is not None
        secrets = {puk, account.sim.puk, account.sim.iccid}
        staff = json.dumps([o.to_json() for o in await kit.engine.history(session.id)], ensure_ascii=False)
        assert not [s for s in secrets if s in staff], staff
        assert "显示在客户屏幕" in staff and '"shown_to_customer": ["puk"]' in staff
        mine = [o.to_json(for_customer=True) for o in await kit.engine.history(session.id)]
        assert [s["value"] for s in mine[0]["secrets"]] == [puk] and puk in mine[0]["text_zh"]
        assert {s["name"]: s["value"] for s in mine[1]["secrets"]} == {
            "iccid": account.sim.iccid, "puk": account.sim.puk
        }
        logged = " ".join(r["body"] for r in await kit.db.fetch("SELECT body FROM audit_entries"))
        assert not [s for s in secrets if s in logged] and "shown_to_customer" in logged
        sms = " ".join(r["body"] for r in await kit.db.fetch("SELECT body FROM sms_outbox"))
        assert not [s for s in secrets if s in sms], sms
        # Not kept at rest once the call is over and its short after-call window has passed.
        assert await kit.engine.forget_secrets(iso()) == 0  # the call is still on
        await kit.sessions.end_call(session.id)
        assert await kit.engine.forget_secrets("2000-01-01T00:00:00+00:00") == 0  # ended after that
        assert await kit.engine.forget_secrets(iso(utcnow() + timedelta(seconds=1))) == 2
        stored = " ".join(r["result"] for r in await kit.db.fetch("SELECT result FROM tx_requests"))
        assert not [s for s in secrets if s in stored], stored
        mine = [o.to_json(for_customer=True) for o in await kit.engine.history(session.id)]
        assert all(not m.get("secrets") for m in mine) and puk not in json.dumps(mine)
    finally:
        await kit.audit.close()


async def test_face_declined_path_reaches_a2_by_attestation(db: Database) -> None:
    kit = await make_kit(db)
    try:
        await kit.account(MSISDN)
        session = await kit.sessions.open("call-attest", "agent1")
        await kit.sessions.claim_account(session.id, MSISDN)
        await kit.sessions.set_face_consent(session.id, False)
        await kit.sessions.raise_level(session.id, Level.A1, await kit.prove(session.id, ProofKind.PASSWORD),
                                       "password", "agent1")
        session = await kit.sessions.raise_level(session.id, Level.A2, await kit.prove(session.id, ProofKind.ID_STILL),
                                                 "attestation", "agent1")
        outcome = await kit.run(session, "sim.report_loss", {})
        assert outcome.status == TxStatus.DONE
        row = await kit.db.fetchval(
            "SELECT body FROM audit_entries WHERE session_id = $1 AND action = $2",
            session.id,
            "transaction.sim.report_loss",
        )
        assert "face declined, agent attestation" in row
    finally:
        await kit.audit.close()


# --- the line state machine ----------------------------------------------------------------------

OPS: list[tuple[str, dict[str, Any]]] = [
    ("line.suspend", {}),
    ("line.resume", {}),
    ("sim.report_loss", {}),
    ("sim.cancel_loss", {}),
    ("line.emergency_resume", {}),
    ("points.redeem", {"reward": "data-1g"}),
    ("points.redeem", {"reward": "credit-10", "quantity": 2}),
    ("roaming.set", {"enabled": True}),
    ("addon.subscribe", {"addon": "ringback"}),
    ("sim.replace", {}),
    ("account.close", {}),
    ("arrears", {}),  # the billing system suspends the line for arrears
    ("pay", {}),
]
VALID = set(LineStatus)


async def _scenario(ops: list[int]) -> None:
    db = await open_database("sqlite://:memory:")
    await migrate(db)
    kit = await make_kit(db)
    try:
        await kit.account(MSISDN, points=1800)
        session = await kit.session(MSISDN, Level.A3)
        closed = False
        for i in ops:
            code, inputs = OPS[i]
            before = await kit.accounts.get(MSISDN)
            assert before is not None
            if code == "arrears":
                if before.status == LineStatus.ACTIVE:
                    await kit.set_line(MSISDN, status=LineStatus.SUSPENDED_ARREARS, balance_cents=-2000)
                continue
            if code == "pay":
                if before.status != LineStatus.CLOSED:
                    await kit.set_line(MSISDN, balance_cents=before.balance_cents + 5000)
                continue
            outcome = await kit.run(session, code, inputs)
            after = await kit.accounts.get(MSISDN)
            assert after is not None
            assert outcome.status in (TxStatus.DONE, TxStatus.REFUSED), outcome.reason
            assert after.status in VALID and after.points >= 0
            if closed:
                assert after == before, "a closed line never changes"
            if outcome.status == TxStatus.REFUSED:
                assert after.version == before.version
            if after.status == LineStatus.LOST:
                assert after.status_before_loss is not None and after.status_before_loss != LineStatus.LOST
            closed = after.status == LineStatus.CLOSED
    finally:
        await kit.audit.close()
        await db.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(OPS) - 1), min_size=1, max_size=14))
def test_no_sequence_reaches_an_invalid_state_or_negative_points(ops: list[int]) -> None:
    asyncio.run(_scenario(ops))

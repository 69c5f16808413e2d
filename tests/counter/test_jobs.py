"""Scheduled maintenance on both back-ends: emergency resumes expire after 72 h, booked plans apply on the 1st."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from counter.accounts import LineStatus
from counter.appkeys import MAINTENANCE
from counter.jobs import apply_plan_changes, expire_emergencies, run_maintenance
from counter.sessions import Level
from counter.transactions.engine import TxStatus
from storage import Database
from storage.timeutil import parse_iso, utcnow
from tests.counter.txkit import Kit, open_kit

MSISDN = "13800138000"


async def _system_entries(kit: Kit, action: str) -> list[dict[str, Any]]:
    rows = await kit.db.fetch(
        "SELECT actor_role, actor_id, outcome, account, body FROM audit_entries WHERE action = $1 ORDER BY seq", action
    )
    return [{**r, "body": json.loads(r["body"])} for r in rows]


async def _sms(kit: Kit, msisdn: str) -> list[str]:
    return [r["body"] for r in await kit.db.fetch("SELECT body FROM sms_outbox WHERE msisdn = $1 ORDER BY id", msisdn)]


async def test_emergency_resume_expires_after_72_hours(db: Database) -> None:
    async with open_kit(db) as kit:
        await kit.account(MSISDN, status=LineStatus.SUSPENDED_ARREARS, balance_cents=-4200)
        paid = "13900139000"
        await kit.account(paid, status=LineStatus.SUSPENDED_ARREARS, balance_cents=-100)
        lost = "13700137000"
        await kit.account(lost, status=LineStatus.SUSPENDED_ARREARS, balance_cents=-100)
        for msisdn in (MSISDN, paid, lost):
            session = await kit.session(msisdn, Level.A2)
            done = await kit.run(session, "line.emergency_resume", {})
            assert done.status == TxStatus.DONE, done
        account = await kit.accounts.get(MSISDN)
        assert account is not None and account.status == LineStatus.EMERGENCY and account.emergency_until
        started = parse_iso(account.emergency_until) - timedelta(hours=72)
        await kit.set_line(paid, balance_cents=500)  # paid the arrears meanwhile
        session = await kit.session(lost, Level.A2)
        assert (await kit.run(session, "sim.report_loss", {})).status == TxStatus.DONE

        assert await expire_emergencies(kit.accounts, kit.audit, started + timedelta(hours=71)) == []
        assert (await kit.accounts.get(MSISDN)).status == LineStatus.EMERGENCY  # type: ignore[union-attr]
        expired = await expire_emergencies(kit.accounts, kit.audit, started + timedelta(hours=72, minutes=1))
        assert sorted(expired) == sorted([MSISDN, paid, lost])
        account = await kit.accounts.get(MSISDN)
        assert account is not None and account.status == LineStatus.SUSPENDED_ARREARS
        assert account.emergency_until is None
        assert (await kit.accounts.get(paid)).status == LineStatus.ACTIVE  # type: ignore[union-attr]
        lost_line = await kit.accounts.get(lost)
        assert lost_line is not None and lost_line.status == LineStatus.LOST
        assert lost_line.status_before_loss == LineStatus.SUSPENDED_ARREARS  # cancelling the loss: barred again
        entries = await _system_entries(kit, "line.emergency_expired")
        assert len(entries) == 3
        assert {(e["actor_role"], e["actor_id"], e["outcome"]) for e in entries} == {("system", "system", "ok")}
        assert "42.00" in (await _sms(kit, MSISDN))[-1]
        assert "缴清" in (await _sms(kit, paid))[-1] and "停机" not in (await _sms(kit, paid))[-1]
        # A second run (or a second node) finds nothing left to do.
        assert await expire_emergencies(kit.accounts, kit.audit, started + timedelta(hours=80)) == []
        assert len(await _system_entries(kit, "line.emergency_expired")) == 3


async def test_booked_plan_change_applies_on_the_first(db: Database) -> None:
    async with open_kit(db) as kit:
        await kit.account(MSISDN, plan="basic-19")
        session = await kit.session(MSISDN, Level.A2)
        booked = await kit.run(session, "plan.change", {"plan": "silver-39"})
        assert booked.status == TxStatus.DONE, booked
        account = await kit.accounts.get(MSISDN)
        assert account is not None and account.pending_plan == "silver-39" and account.pending_plan_from
        first = datetime.fromisoformat(account.pending_plan_from).replace(tzinfo=UTC)
        assert first.day == 1 and first > utcnow()
        eve = first - timedelta(seconds=1)
        assert (await run_maintenance(kit.accounts, kit.audit, eve)).plans_applied == []
        assert await apply_plan_changes(kit.accounts, kit.audit, first) == [MSISDN]
        account = await kit.accounts.get(MSISDN)
        assert account is not None and account.plan == "silver-39"
        assert account.pending_plan is None and account.pending_plan_from is None
        [entry] = await _system_entries(kit, "plan.change_applied")
        assert entry["actor_id"] == "system" and entry["body"]["details"]["to"] == "silver-39"
        assert "银龄关爱39元套餐" in (await _sms(kit, MSISDN))[-1]
        assert await apply_plan_changes(kit.accounts, kit.audit, first + timedelta(days=3)) == []


async def test_maintenance_task_runs_with_the_app_and_stops_on_cleanup(app_client: TestClient[Any, Any]) -> None:
    maintenance = app_client.app[MAINTENANCE]
    assert maintenance.task is not None
    await asyncio.sleep(0)
    assert not maintenance.task.done()
    await app_client.close()
    assert maintenance.task.cancelled()

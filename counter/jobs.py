"""Scheduled account maintenance: emergency resumes that ran out, plan changes that fall due.

Plain async functions taking ``now``, so tests drive them without waiting; :func:`maintenance_loop`
runs them periodically (started by the counter component).  Each change takes the account lock,
checks again under it (two nodes may run the job at once: the second finds nothing to do), and
commits the change with its audit entry (actor ``system``) and an SMS notice to the line.

These jobs are for the built-in account system; a remote BSS applies its own schedules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from counter.accounts import PLANS, LineStatus, StorageAccountSystem
from counter.audit import AuditEvent
from counter.sms import queue_sms
from counter.transactions.engine import AuditSink
from storage import Executor
from storage.timeutil import parse_iso, utcnow

log = logging.getLogger("counter.jobs")

#: How often the maintenance loop runs.
INTERVAL_S = 60.0


@dataclass
class MaintenanceReport:
    """What one maintenance run changed (line numbers)."""

    emergencies_expired: list[str] = field(default_factory=list)
    plans_applied: list[str] = field(default_factory=list)


async def _notify(ex: Executor, audit: AuditSink, msisdn: str, action: str, details: dict[str, Any], sms: str,
                  now: datetime) -> None:
    await audit.append_in(
        ex, AuditEvent(action, "system", "system", account=msisdn, details=details, reason="scheduled")
    )
    await queue_sms(ex, msisdn, f"【远程柜台】{sms}", now)


async def expire_emergencies(accounts: StorageAccountSystem, audit: AuditSink, now: datetime) -> list[str]:
    """End emergency resumes whose time is up: the line goes back to ``suspended_arrears``.

    If the arrears were paid meanwhile (balance not below zero) the line stays in service
    (``active``).  A line reported lost during its emergency resume comes back, on cancelling the
    loss, to the status it would have now.
    """
    rows = await accounts.db.fetch(
        "SELECT msisdn FROM acct_lines WHERE emergency_until IS NOT NULL AND status IN ($1, $2)",
        LineStatus.EMERGENCY.value,
        LineStatus.LOST.value,
    )
    done = []
    for row in rows:
        async with accounts.change(row["msisdn"]) as change:
            account = change.account
            if account.emergency_until is None or parse_iso(account.emergency_until) > now:
                continue
            after = LineStatus.ACTIVE if not account.in_arrears else LineStatus.SUSPENDED_ARREARS
            if account.status == LineStatus.EMERGENCY:
                await change.update_line(status=after, emergency_until=None)
            elif account.status_before_loss == LineStatus.EMERGENCY:
                await change.update_line(status_before_loss=after, emergency_until=None)
            else:
                await change.update_line(emergency_until=None)
                continue
            assert change.executor is not None
            details = {"until": account.emergency_until, "status": account.status.value, "after": after.value}
            if account.status == LineStatus.LOST:  # no SMS: the SIM is reported lost
                event = AuditEvent("line.emergency_expired", "system", "system", account=account.msisdn,
                                   details=details, reason="scheduled")
                await audit.append_in(change.executor, event)
            else:
                if after == LineStatus.ACTIVE:
                    sms = "您的紧急开机已到期，欠费已缴清，号码继续正常使用。"
                else:
                    arrears = -account.balance_cents / 100
                    sms = f"您的紧急开机已到期，号码已停机。缴清欠费{arrears:.2f}元后即可恢复使用。"
                await _notify(change.executor, audit, account.msisdn, "line.emergency_expired", details, sms, now)
            done.append(account.msisdn)
    return done


async def apply_plan_changes(accounts: StorageAccountSystem, audit: AuditSink, now: datetime) -> list[str]:
    """Switch lines to their booked plan once its start date (UTC, as booked) has come."""
    today = now.date().isoformat()
    rows = await accounts.db.fetch(
        "SELECT msisdn FROM acct_lines WHERE pending_plan IS NOT NULL AND pending_plan_from <= $1", today
    )
    done = []
    for row in rows:
        async with accounts.change(row["msisdn"]) as change:
            account = change.account
            if account.pending_plan is None or (account.pending_plan_from or "9999") > today:
                continue
            old, new = account.plan, account.pending_plan
            await change.update_line(plan=new, pending_plan=None, pending_plan_from=None)
            assert change.executor is not None
            zh = PLANS[new][0] if new in PLANS else new
            await _notify(
                change.executor,
                audit,
                account.msisdn,
                "plan.change_applied",
                {"from": old, "to": new, "booked_for": account.pending_plan_from},
                f"您预约的“{zh}”已于今日生效。",
                now,
            )
            done.append(account.msisdn)
    return done


async def run_maintenance(
    accounts: StorageAccountSystem, audit: AuditSink, now: datetime | None = None
) -> MaintenanceReport:
    """One maintenance run at ``now`` (default: the current time)."""
    now = now or utcnow()
    return MaintenanceReport(
        emergencies_expired=await expire_emergencies(accounts, audit, now),
        plans_applied=await apply_plan_changes(accounts, audit, now),
    )


async def maintenance_loop(accounts: StorageAccountSystem, audit: AuditSink, interval_s: float = INTERVAL_S) -> None:
    """Run :func:`run_maintenance` every ``interval_s`` until cancelled; a failed run is logged and retried."""
    while True:
        try:
            report = await run_maintenance(accounts, audit)
            if report.emergencies_expired or report.plans_applied:
                log.info(
                    "maintenance: %d emergency resumes ended, %d plan changes applied",
                    len(report.emergencies_expired),
                    len(report.plans_applied),
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("maintenance run failed; retrying in %.0f s", interval_s)
        await asyncio.sleep(interval_s)


class Maintenance:
    """The periodic maintenance task of one process: :meth:`start` on app start, :meth:`stop` on cleanup."""

    def __init__(self, accounts: StorageAccountSystem, audit: AuditSink, interval_s: float = INTERVAL_S) -> None:
        self.accounts = accounts
        self.audit = audit
        self.interval_s = interval_s
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(
                maintenance_loop(self.accounts, self.audit, self.interval_s), name="counter-maintenance"
            )

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

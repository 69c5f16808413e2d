"""Work orders on both back-ends: due dates, statuses, the call-back (回访) step, the supervisor's list."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from counter.workorders import (
    CALLBACK_DUE,
    DUE,
    CallbackOutcome,
    WorkOrder,
    WorkOrderError,
    WorkOrders,
    WorkOrderStatus,
)
from storage import Database
from storage.timeutil import parse_iso, utcnow


async def _create(
    orders: WorkOrders, kind: str, ago: timedelta = timedelta(0), account: str = "13800138000"
) -> WorkOrder:
    async with orders.db.transaction() as tx:
        return await orders.create(
            tx, kind=kind, category="broadband", summary=f"{kind} order", created_by="agent1",
            session_id="call-1", account=account, now=utcnow() - ago,
        )


async def test_due_dates_by_kind(db: Database) -> None:
    orders = WorkOrders(db)
    fault = await _create(orders, "fault")
    complaint = await _create(orders, "complaint")
    assert fault.status == WorkOrderStatus.OPEN and fault.history[0]["status"] == "open"
    assert parse_iso(fault.due_at) - parse_iso(fault.created_at) == DUE["fault"] == timedelta(hours=48)
    assert fault.callback_due_at is None  # a fault's call-back is due once it is resolved
    assert parse_iso(complaint.due_at) - parse_iso(complaint.created_at) == timedelta(days=5)
    assert complaint.callback_due_at is not None
    assert parse_iso(complaint.callback_due_at) - parse_iso(complaint.created_at) == CALLBACK_DUE["complaint"]
    with pytest.raises(WorkOrderError, match="unknown kind 'repair'"):
        await _create(orders, "repair")
    assert (await orders.get(fault.id)) == fault
    with pytest.raises(WorkOrderError, match="no work order #9999"):
        await orders.get(9999)


async def test_statuses_and_callback_cycle(db: Database) -> None:
    orders = WorkOrders(db)
    order = await _create(orders, "fault")
    with pytest.raises(WorkOrderError, match="can go to: in_progress, resolved"):
        await orders.set_status(order.id, WorkOrderStatus.CLOSED, "agent1")
    with pytest.raises(WorkOrderError, match="resolve it before the call-back"):
        await orders.record_callback(order.id, CallbackOutcome.SATISFIED, "agent1")
    order = await orders.set_status(order.id, WorkOrderStatus.IN_PROGRESS, "tech1", "on the way")
    order = await orders.set_status(order.id, WorkOrderStatus.RESOLVED, "tech1")
    assert order.callback_due_at is not None
    due = parse_iso(order.callback_due_at) - parse_iso(order.updated_at)
    assert abs(due - CALLBACK_DUE["fault"]) < timedelta(seconds=5)
    with pytest.raises(WorkOrderError, match="none \\(call back the customer\\)"):
        await orders.set_status(order.id, WorkOrderStatus.IN_PROGRESS, "tech1")
    # Unreachable: stays resolved, still waiting for its call-back.
    order = await orders.record_callback(order.id, CallbackOutcome.UNREACHABLE, "agent2")
    assert order.status == WorkOrderStatus.RESOLVED and order.callback_outcome == "unreachable"
    # Unsatisfied: back to work with a fresh due date, the call-back due again after the next resolution.
    order = await orders.record_callback(order.id, CallbackOutcome.UNSATISFIED, "agent2", "still slow")
    assert order.status == WorkOrderStatus.IN_PROGRESS and order.callback_due_at is None
    assert parse_iso(order.due_at) > utcnow() + DUE["fault"] - timedelta(minutes=1)
    order = await orders.set_status(order.id, WorkOrderStatus.RESOLVED, "tech1")
    assert order.callback_due_at is not None
    order = await orders.record_callback(order.id, CallbackOutcome.SATISFIED, "agent2")
    assert order.status == WorkOrderStatus.CLOSED and order.callback_done_at is not None
    assert [h["status"] for h in order.history] == [
        "open", "in_progress", "resolved", "resolved", "in_progress", "resolved", "closed",
    ]
    assert order.history[1]["by"] == "tech1" and order.history[1]["note"] == "on the way"
    with pytest.raises(WorkOrderError, match="closed already"):
        await orders.record_callback(order.id, CallbackOutcome.SATISFIED, "agent2")
    # A complaint is called back while still open (within a day of filing).
    complaint = await _create(orders, "complaint")
    complaint = await orders.record_callback(complaint.id, CallbackOutcome.SATISFIED, "agent2")
    assert complaint.status == WorkOrderStatus.CLOSED


async def test_concurrent_updates_one_wins(db: Database) -> None:
    orders = WorkOrders(db)
    order = await _create(orders, "fault")
    results = await asyncio.gather(
        *(orders.set_status(order.id, WorkOrderStatus.IN_PROGRESS, f"tech{i}") for i in range(3)),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, WorkOrderError)]
    assert len(errors) == 2, results
    final = await orders.get(order.id)
    assert len(final.history) == 2


async def test_supervisor_list_overdue_first(db: Database) -> None:
    orders = WorkOrders(db)
    fresh = await _create(orders, "fault")
    late_fault = await _create(orders, "fault", ago=timedelta(hours=49))
    late_complaint = await _create(orders, "complaint", ago=timedelta(days=6), account="13900139000")
    # Resolved in time, but its call-back is overdue.
    waiting = await _create(orders, "fault", ago=timedelta(hours=30))
    await orders.set_status(waiting.id, WorkOrderStatus.RESOLVED, "tech1")
    an_hour_ago = (utcnow() - timedelta(hours=1)).isoformat()
    await db.execute("UPDATE work_orders SET callback_due_at = $2 WHERE id = $1", waiting.id, an_hour_ago)
    closed = await _create(orders, "complaint", ago=timedelta(days=9))
    await orders.record_callback(closed.id, CallbackOutcome.SATISFIED, "agent2")
    listed = await orders.list()
    ids = [o.id for o in listed]
    overdue = {late_fault.id, late_complaint.id, waiting.id}
    assert set(ids[:3]) == overdue, [(o.id, o.status, o.overdue()) for o in listed]
    assert ids[0] == late_complaint.id  # the oldest due date first among the overdue
    assert ids[-1] == closed.id and not listed[-1].overdue()
    assert all(o.to_json()["overdue"] for o in listed[:3]) and fresh.id in ids[3:]
    only = await orders.list(status=WorkOrderStatus.RESOLVED)
    assert [o.id for o in only] == [waiting.id]
    assert [o.id for o in await orders.list(account="13900139000")] == [late_complaint.id]
    assert len(await orders.list(session_id="call-1")) == 5

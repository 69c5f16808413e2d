"""Work orders: faults, complaints and whatever cannot be solved in the call.

Life of a work order::

    open -> in_progress -> resolved -> (call-back 回访) -> closed
                                  \\-> call-back unsatisfied -> in_progress again

Every work order has a due date; complaints (and faults once resolved) carry a call-back due date,
and the supervisor's list shows overdue ones first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from storage import Database, Executor, Row
from storage.timeutil import iso, parse_iso, utcnow


class WorkOrderStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"


class CallbackOutcome(StrEnum):
    SATISFIED = "satisfied"
    UNSATISFIED = "unsatisfied"
    UNREACHABLE = "unreachable"


#: How long each kind of work order may take.
DUE = {"fault": timedelta(hours=48), "complaint": timedelta(days=5), "guidance": timedelta(hours=48)}
#: When the customer is called back: complaints within a day, faults a day after resolution.
CALLBACK_DUE = {"complaint": timedelta(hours=24), "fault": timedelta(hours=24), "guidance": timedelta(hours=24)}

_NEXT: dict[WorkOrderStatus, set[WorkOrderStatus]] = {
    WorkOrderStatus.OPEN: {WorkOrderStatus.IN_PROGRESS, WorkOrderStatus.RESOLVED},
    WorkOrderStatus.IN_PROGRESS: {WorkOrderStatus.RESOLVED},
    WorkOrderStatus.RESOLVED: set(),
    WorkOrderStatus.CLOSED: set(),
}


class WorkOrderError(Exception):
    """A work-order operation was refused; the message says why."""


class NotYourWorkOrder(WorkOrderError):
    """An agent asked for a work order that is neither of their own sessions nor assigned to them."""


@dataclass(frozen=True)
class WorkOrder:
    id: int
    session_id: str | None
    account: str | None
    kind: str
    category: str
    summary: str
    status: WorkOrderStatus
    due_at: str
    callback_due_at: str | None
    callback_done_at: str | None
    callback_outcome: str | None
    created_by: str
    history: tuple[dict[str, Any], ...]
    created_at: str
    updated_at: str
    assigned_to: str | None = None

    def overdue(self, now: datetime | None = None) -> bool:
        """Past its due date (or its call-back due date) and not closed."""
        now = now or utcnow()
        if self.status == WorkOrderStatus.CLOSED:
            return False
        if self.status == WorkOrderStatus.RESOLVED:
            return self.callback_due_at is not None and parse_iso(self.callback_due_at) < now
        return parse_iso(self.due_at) < now

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "account": self.account,
            "kind": self.kind,
            "category": self.category,
            "summary": self.summary,
            "status": self.status.value,
            "due_at": self.due_at,
            "callback_due_at": self.callback_due_at,
            "callback_done_at": self.callback_done_at,
            "callback_outcome": self.callback_outcome,
            "created_by": self.created_by,
            "assigned_to": self.assigned_to,
            "history": list(self.history),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "overdue": self.overdue(),
        }


def _order(row: Row) -> WorkOrder:
    return WorkOrder(
        id=int(row["id"]),
        session_id=row["session_id"],
        account=row["account"],
        kind=row["kind"],
        category=row["category"],
        summary=row["summary"],
        status=WorkOrderStatus(row["status"]),
        due_at=row["due_at"],
        callback_due_at=row["callback_due_at"],
        callback_done_at=row["callback_done_at"],
        callback_outcome=row["callback_outcome"],
        created_by=row["created_by"],
        history=tuple(json.loads(row["history"])),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        assigned_to=row["assigned_to"],
    )


class WorkOrders:
    """Work orders in the database (``work_orders``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        ex: Executor,
        *,
        kind: str,
        category: str,
        summary: str,
        created_by: str,
        session_id: str | None = None,
        account: str | None = None,
        now: datetime | None = None,
    ) -> WorkOrder:
        """Open a work order inside the caller's transaction ``ex``."""
        if kind not in DUE:
            raise WorkOrderError(f"unknown kind {kind!r}; use one of {', '.join(DUE)}")
        now = now or utcnow()
        callback = iso(now + CALLBACK_DUE[kind]) if kind == "complaint" else None
        history = [{"at": iso(now), "by": created_by, "status": WorkOrderStatus.OPEN.value, "note": "opened"}]
        order_id = await ex.fetchval(
            "INSERT INTO work_orders (session_id, account, kind, category, summary, status, due_at, callback_due_at,"
            " created_by, history, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING id",
            session_id,
            account,
            kind,
            category,
            summary[:2000],
            WorkOrderStatus.OPEN.value,
            iso(now + DUE[kind]),
            callback,
            created_by,
            json.dumps(history, ensure_ascii=False),
            iso(now),
        )
        row = await ex.fetchrow("SELECT * FROM work_orders WHERE id = $1", order_id)
        assert row is not None
        return _order(row)

    async def get(self, order_id: int) -> WorkOrder:
        row = await self.db.fetchrow("SELECT * FROM work_orders WHERE id = $1", order_id)
        if row is None:
            raise WorkOrderError(f"no work order #{order_id}")
        return _order(row)

    async def for_agent(self, order_id: int, agent: str) -> WorkOrder:
        """The work order if ``agent`` may read or change it: opened in one of their sessions, or
        assigned to them (supervisors see every one; that check is the caller's)."""
        order = await self.get(order_id)
        if order.assigned_to == agent:
            return order
        if order.session_id is not None and order.assigned_to is None:
            owner = await self.db.fetchval("SELECT agent FROM counter_sessions WHERE id = $1", order.session_id)
            if owner == agent:
                return order
        raise NotYourWorkOrder(f"work order #{order_id} is not one of your sessions' nor assigned to you")

    async def assign(self, order_id: int, agent: str, by: str) -> WorkOrder:
        """A supervisor hands the work order to ``agent`` (who alone of the agents may then move it on)."""
        order = await self.get(order_id)
        return await self._update(order, by, f"assigned to {agent}", assigned_to=agent)

    async def list(
        self,
        *,
        status: WorkOrderStatus | None = None,
        account: str | None = None,
        session_id: str | None = None,
        assigned_to: str | None = None,
    ) -> list[WorkOrder]:
        """Work orders, the supervisor's order: overdue first, then by due date."""
        clauses, args = [], []
        for column, value in (
            ("status", status.value if status else None),
            ("account", account),
            ("session_id", session_id),
            ("assigned_to", assigned_to),
        ):
            if value is not None:
                args.append(value)
                clauses.append(f"{column} = ${len(args)}")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self.db.fetch(f"SELECT * FROM work_orders{where} ORDER BY due_at, id", *args)
        orders = [_order(r) for r in rows]
        now = utcnow()
        return sorted(orders, key=lambda o: (not o.overdue(now), o.status == WorkOrderStatus.CLOSED))

    async def _update(self, order: WorkOrder, by: str, note: str, **fields: Any) -> WorkOrder:
        now = iso()
        history = [*order.history, {"at": now, "by": by, "status": fields.get("status", order.status), "note": note}]
        fields["history"] = json.dumps(history, ensure_ascii=False, default=str)
        fields["updated_at"] = now
        names = list(fields)
        sets = ", ".join(f"{n} = ${i + 3}" for i, n in enumerate(names))
        changed = await self.db.execute(
            f"UPDATE work_orders SET {sets} WHERE id = $1 AND updated_at = $2",
            order.id,
            order.updated_at,
            *(v.value if isinstance(v, StrEnum) else v for v in fields.values()),
        )
        if changed != 1:
            raise WorkOrderError(f"work order #{order.id} was changed by someone else meanwhile; reload it")
        return await self.get(order.id)

    async def set_status(self, order_id: int, status: WorkOrderStatus, by: str, note: str = "") -> WorkOrder:
        """Move a work order on (open -> in_progress -> resolved); closing happens at the call-back."""
        order = await self.get(order_id)
        if status not in _NEXT[order.status]:
            allowed = ", ".join(sorted(s.value for s in _NEXT[order.status])) or "none (call back the customer)"
            raise WorkOrderError(f"work order #{order_id} is {order.status.value}; it can go to: {allowed}")
        fields: dict[str, Any] = {"status": status}
        if status == WorkOrderStatus.RESOLVED and order.callback_due_at is None:
            fields["callback_due_at"] = iso(utcnow() + CALLBACK_DUE[order.kind])
        return await self._update(order, by, note or status.value, **fields)

    async def record_callback(self, order_id: int, outcome: CallbackOutcome, by: str, note: str = "") -> WorkOrder:
        """The call-back (回访): satisfied closes it, unsatisfied reopens it, unreachable keeps it waiting."""
        order = await self.get(order_id)
        if order.status == WorkOrderStatus.CLOSED:
            raise WorkOrderError(f"work order #{order_id} is closed already")
        if order.kind != "complaint" and order.status != WorkOrderStatus.RESOLVED:
            raise WorkOrderError(f"work order #{order_id} is {order.status.value}: resolve it before the call-back")
        fields: dict[str, Any] = {"callback_outcome": outcome.value}
        if outcome == CallbackOutcome.SATISFIED:
            fields.update(status=WorkOrderStatus.CLOSED, callback_done_at=iso())
        elif outcome == CallbackOutcome.UNSATISFIED:
            fields.update(
                status=WorkOrderStatus.IN_PROGRESS, callback_due_at=None, due_at=iso(utcnow() + DUE[order.kind])
            )
        return await self._update(order, by, note or f"call-back: {outcome.value}", **fields)

"""Running a request and ending it: each ends once, with exactly one audit entry.

A request runs under the account's lock (or a plain database transaction where it needs no account):
the change, its ``done`` record, its audit entry and its SMS receipt commit together or not at all.
One that does not run (refused, declined, failed) ends in :meth:`TxRunner._finish`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any, Protocol

from counter.accounts import AccountChange, AccountNotFound, AccountSystem
from counter.audit import AuditEvent, AuditReceipt
from counter.levels import transaction_refusal
from counter.sessions import CounterSession, CounterSessions
from counter.sms import queue_sms
from counter.transactions.outcome import FINAL, TxError, TxOutcome, TxStatus, audit_event, outcome_of, worded_result
from counter.transactions.spec import CATALOG, Refused, TxContext, TxSpec
from counter.workorders import WorkOrders
from storage import Database, Executor, Row
from storage.timeutil import iso, utcnow

log = logging.getLogger("counter.transactions")


class AuditSink(Protocol):
    """What the engine needs of the audit log (:class:`counter.audit.AuditLog`)."""

    async def append(self, event: AuditEvent) -> AuditReceipt: ...

    async def append_in(self, tx: Executor, event: AuditEvent) -> AuditReceipt: ...


class AlreadyClaimed(Exception):
    """Another runner (a double click, another node, recovery) moved the request on first."""


class TxRunner:
    """Runs and ends the requests of ``tx_requests`` against an :class:`AccountSystem`, audited."""

    def __init__(
        self,
        db: Database,
        accounts: AccountSystem,
        sessions: CounterSessions,
        workorders: WorkOrders,
        audit: AuditSink,
        node_id: str = "local",
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.sessions = sessions
        self.workorders = workorders
        self.audit = audit
        #: This process's name among the nodes sharing the database (stamped on requests in flight).
        self.node_id = node_id
        #: Requests this process is working on right now (never orphans while listed here).
        self._inflight: set[int] = set()

    @contextmanager
    def _working_on(self, tx_id: int) -> Iterator[None]:
        self._inflight.add(tx_id)
        try:
            yield
        finally:
            self._inflight.discard(tx_id)

    async def get(self, tx_id: int) -> TxOutcome:
        """Request ``tx_id`` as it stands."""
        row = await self.db.fetchrow("SELECT * FROM tx_requests WHERE id = $1", tx_id)
        if row is None:
            raise TxError(404, "no_transaction", f"no transaction request #{tx_id}")
        return outcome_of(row)

    @staticmethod
    def _refusal(spec: TxSpec, session: CounterSession) -> tuple[str, str] | None:
        why = transaction_refusal(spec, session)
        return None if why is None else (why.en, why.zh)

    async def _hold(self, stack: AsyncExitStack, account: str | None) -> tuple[AccountChange | None, Executor]:
        """The account held for change (its lock, and its transaction where the account system shares our
        database), and the database transaction the request's own records go in."""
        change = None if account is None else await stack.enter_async_context(self.accounts.change(account))
        if change is not None and change.executor is not None:
            return change, change.executor
        return change, await stack.enter_async_context(self.db.transaction())

    async def _execute(self, tx_id: int) -> TxOutcome:
        row = await self.db.fetchrow("SELECT * FROM tx_requests WHERE id = $1", tx_id)
        assert row is not None
        spec = CATALOG[row["code"]]
        session = await self.sessions.get(row["session_id"])
        refusal = self._refusal(spec, session)
        if refusal is not None:
            return await self._finish(tx_id, TxStatus.REFUSED, *refusal)
        try:
            async with AsyncExitStack() as stack:
                assert session.account is not None or not spec.needs_account
                change, ex = await self._hold(stack, session.account)
                # Claim the request: only one runner ever gets it (a double click, two nodes).
                claimed = await ex.execute(
                    "UPDATE tx_requests SET status = 'running' WHERE id = $1 AND status = 'pending'", tx_id
                )
                if claimed != 1:
                    raise AlreadyClaimed
                return await self._run(ex, spec, session, row, change, tx_id)
        except AlreadyClaimed:
            return await self.get(tx_id)
        except Refused as exc:
            return await self._finish(tx_id, TxStatus.REFUSED, exc.reason, exc.reason_zh)
        except AccountNotFound as exc:
            return await self._finish(tx_id, TxStatus.REFUSED, str(exc), "号码不存在")
        except Exception as exc:
            error_id = uuid.uuid4().hex[:12]
            log.exception("transaction #%s (%s) failed, error id %s", tx_id, spec.code, error_id)
            return await self._finish(
                tx_id,
                TxStatus.FAILED,
                f"the system could not complete it (error {error_id}: {type(exc).__name__}); nothing was changed",
                "系统暂时无法办理，未做任何更改",
            )

    async def _run(
        self, ex: Executor, spec: TxSpec, session: CounterSession, row: Row, change: AccountChange | None, tx_id: int
    ) -> TxOutcome:
        inputs = spec.inputs.model_validate_json(row["inputs"] or "{}")
        now = utcnow()
        ctx = TxContext(session, row["requested_by"], now, ex, change, self.workorders, tx_id=tx_id)
        await spec.check(ctx, inputs)
        worded = worded_result(spec, await spec.handler(ctx, inputs))
        if change is not None:
            sms = f"{worded.receipt_zh}{ctx.sms_extra or ''}"
            await queue_sms(ex, change.account.msisdn, f"【远程柜台】{sms}", now, tx_id)
        finished = iso()
        event = audit_event(
            spec, session, row, TxStatus.DONE, None, inputs.model_dump(mode="json"), sorted(worded.secrets)
        )
        receipt = await self.audit.append_in(ex, event)
        await ex.execute(
            "UPDATE tx_requests SET status = 'done', result = $2, finished_at = $3, audit_seq = $4,"
            " inputs = '{}' WHERE id = $1",
            tx_id,
            json.dumps(worded.record(), ensure_ascii=False, default=str),
            finished,
            receipt.seq,
        )
        fresh = await ex.fetchrow("SELECT * FROM tx_requests WHERE id = $1", tx_id)
        assert fresh is not None
        return outcome_of(fresh)

    async def _finish(
        self,
        tx_id: int,
        status: TxStatus,
        reason: str,
        reason_zh: str,
        errors: list[dict[str, Any]] | None = None,
    ) -> TxOutcome:
        """End a request that did not run (refused, declined, failed): one audit entry, then the record."""
        row = await self.db.fetchrow("SELECT * FROM tx_requests WHERE id = $1", tx_id)
        assert row is not None
        if TxStatus(row["status"]) in FINAL:
            return outcome_of(row)
        spec = CATALOG[row["code"]]
        session = await self.sessions.get(row["session_id"])
        inputs = json.loads(row["inputs"] or "{}")
        event = audit_event(spec, session, row, status, reason, inputs)
        result = {"_reason_zh": reason_zh, "_errors": errors or []}
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE tx_requests SET status = $2, reason = $3, result = $4, finished_at = $5, inputs = '{}'"
                " WHERE id = $1 AND status = $6",
                tx_id,
                status.value,
                reason,
                json.dumps(result, ensure_ascii=False),
                iso(),
                row["status"],
            )
            if changed == 1:
                receipt = await self.audit.append_in(tx, event)
                await tx.execute("UPDATE tx_requests SET audit_seq = $2 WHERE id = $1", tx_id, receipt.seq)
        return await self.get(tx_id)

"""The execution engine: every transaction goes through :class:`TransactionEngine`.

Rules applied to every code of the catalog:

* inputs validated against the code's schema (specific errors, nothing changed);
* the session's assurance level checked server-side by :func:`counter.levels.transaction_refusal`
  (A2+ proofs older than 10 minutes re-checked before a state change), with the reason in words;
* preconditions checked on the account, and again under the account lock when it runs;
* every request, a look-up as much as a state change, waits (``pending``) for the customer's
  confirmation on their own screen, of the words the server gives (:mod:`counter.transactions.wording`),
  and an A4 one also for a supervisor's approval (a different logged-in person); the audit entry
  records when the customer confirmed (``customer_confirmed_at``);
* results the catalog marks secret (``secret_results``: a PUK, a new ICCID) reach only the customer's
  own answers: staff answers and the audit entry say they were shown to the customer;
* idempotency keys: the same key in a session returns the first result and never applies twice;
* conflicting changes on one account are serialised by the account lock, so only one can succeed;
* every attempt (done, refused, failed) writes exactly one audit entry; a done change writes it in
  the same database transaction as the change, with the SMS receipt (``sms_outbox``);
* nothing is left half-done by a crash (:meth:`TransactionEngine.recover`): a request in flight is
  stamped with the node handling it (``tx_requests.node``); on start, and every few seconds after, a
  request left ``running`` (its change never committed) ends ``failed``, and one the customer
  confirmed that never ran is run now if its call is still live (else refused), each with its one
  audit entry.  Only orphans are touched: this node's own from before its start, or another node's
  once that node stopped saying it is alive (``counter_nodes``, :data:`NODE_TTL_S`).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Protocol

from pydantic import ValidationError

from counter.accounts import AccountNotFound, AccountSystem
from counter.audit import AuditEvent, AuditReceipt
from counter.levels import transaction_refusal
from counter.sessions import CounterSession, CounterSessions, SessionError
from counter.sms import queue_sms
from counter.transactions.spec import CATALOG, Refused, TxContext, TxInput, TxSpec
from counter.transactions.wording import confirm_words, secret_json
from counter.workorders import WorkOrders
from storage import Database, Executor, IntegrityError, Row
from storage.timeutil import iso, parse_iso, utcnow

log = logging.getLogger("counter.transactions")


class AuditSink(Protocol):
    """What the engine needs of the audit log (:class:`counter.audit.AuditLog`)."""

    async def append(self, event: AuditEvent) -> AuditReceipt: ...

    async def append_in(self, tx: Executor, event: AuditEvent) -> AuditReceipt: ...


class TxStatus(StrEnum):
    PENDING = "pending"  # waiting for the customer's confirmation and/or the supervisor's approval
    RUNNING = "running"
    DONE = "done"
    REFUSED = "refused"
    FAILED = "failed"
    DECLINED = "declined"  # the customer said no on their screen


FINAL = {TxStatus.DONE, TxStatus.REFUSED, TxStatus.FAILED, TxStatus.DECLINED}

#: What staff read where a result holds a secret for the customer's eyes only.
SHOWN_TO_CUSTOMER = ("〔显示在客户屏幕〕", "[shown to the customer]")

#: How often a node says it is alive (``counter_nodes``) and looks for orphaned requests.
HEARTBEAT_S = 3.0
#: A node silent this long is taken for dead: another node finishes what it had in flight.  Also how
#: long this node's own request must have been in flight outside any running code before it counts as
#: orphaned (a database outage in the middle of a request).  Node clocks must agree well within it.
NODE_TTL_S = 15.0
#: A confirmed request that never ran (the node died in between) is run on recovery only if the
#: customer confirmed it this recently, with the level and preconditions checked again; older ones are
#: refused (the customer may ask again).
RERUN_WITHIN = timedelta(minutes=10)

#: The reasons a recovered request ends with (English, zh-CN): shown on both screens and audited.
RESTARTED_RUNNING = (
    "the system restarted before it finished; nothing was changed",
    "系统重启，本次业务未办理完成，未做任何更改",
)
RESTARTED_CALL_ENDED = (
    "the system restarted before it ran and the call is no longer connected; nothing was changed",
    "系统重启时通话已不在线，本次业务未办理，未做任何更改",
)
RESTARTED_TOO_OLD = (
    "the system restarted before it ran and the confirmation is too old to run it now; nothing was changed, "
    "ask again if it is still wanted",
    "系统重启，您的确认已过时，本次业务未办理，未做任何更改；如仍需办理请重新发起",
)


class TxError(Exception):
    """The request itself cannot be handled (unknown code, unknown request, wrong person)."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class TxOutcome:
    """Where a transaction request stands; what the agent's and the customer's screens show."""

    id: int
    session_id: str
    code: str
    account: str | None
    status: TxStatus
    needs_confirmation: bool
    needs_approval: bool
    confirmed_at: str | None
    approved_by: str | None
    requested_by: str
    reason: str | None
    reason_zh: str | None
    errors: list[dict[str, Any]]
    result: dict[str, Any]
    text_zh: str | None
    text_en: str | None
    audit_seq: int | None
    created_at: str
    finished_at: str | None
    #: The validated inputs while the request waits (cleared once it ends).
    inputs: dict[str, Any]
    #: For the customer only: the result's secrets and the result in words with them.
    secrets: dict[str, str]
    customer_text_zh: str | None
    customer_text_en: str | None

    def to_json(self, *, for_customer: bool = False) -> dict[str, Any]:
        """The request as staff see it, or (``for_customer``) as the customer's own screen shows it:
        only the customer's answer carries the secrets.  A pending one carries the server's words for
        the confirmation screen (``confirm``)."""
        spec = CATALOG.get(self.code)
        body: dict[str, Any] = {
            "id": self.id,
            "code": self.code,
            "title_zh": spec.title_zh if spec else self.code,
            "title_en": spec.title_en if spec else self.code,
            "status": self.status.value,
            "needs_confirmation": self.needs_confirmation,
            "needs_approval": self.needs_approval,
            "confirmed": self.confirmed_at is not None,
            "approved": self.approved_by is not None,
            "reason": self.reason,
            "reason_zh": self.reason_zh,
            "text_zh": self.text_zh,
            "text_en": self.text_en,
            "shown_to_customer": sorted(self.secrets),
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }
        if self.status == TxStatus.PENDING and spec is not None:
            body["confirm"] = confirm_words(spec, self.inputs, self.account).to_json()
        if for_customer:
            body.update(
                text_zh=self.customer_text_zh or self.text_zh,
                text_en=self.customer_text_en or self.text_en,
                secrets=[secret_json(name, value) for name, value in sorted(self.secrets.items())],
            )
        else:
            body.update(
                session_id=self.session_id,
                errors=self.errors,
                result=self.result,
                requested_by=self.requested_by,
                approved_by=self.approved_by,
                confirmed_at=self.confirmed_at,
                audit_seq=self.audit_seq,
            )
        return body


def _outcome(row: Row) -> TxOutcome:
    result = json.loads(row["result"]) if row["result"] else {}
    customer = result.pop("_customer", {})
    return TxOutcome(
        id=int(row["id"]),
        session_id=row["session_id"],
        code=row["code"],
        account=row["account"],
        status=TxStatus(row["status"]),
        needs_confirmation=bool(row["needs_confirmation"]),
        needs_approval=bool(row["needs_approval"]),
        confirmed_at=row["confirmed_at"],
        approved_by=row["approved_by"],
        requested_by=row["requested_by"],
        reason=row["reason"],
        reason_zh=result.pop("_reason_zh", None),
        errors=result.pop("_errors", []),
        result=result.get("data", {}),
        text_zh=result.get("text_zh"),
        text_en=result.get("text_en"),
        audit_seq=row["audit_seq"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        inputs=json.loads(row["inputs"] or "{}"),
        secrets=customer.get("secrets", {}),
        customer_text_zh=customer.get("text_zh"),
        customer_text_en=customer.get("text_en"),
    )


def _format(template: str, values: Mapping[str, Any]) -> str:
    return template.format_map(dict(values))


#: Requests that only a running engine can finish: ``running``, or confirmed (and approved where an
#: approval is needed) but not yet claimed to run.  A4 requests waiting for a supervisor are not in it.
IN_FLIGHT_SQL = (
    "SELECT * FROM tx_requests WHERE status = 'running' OR (status = 'pending' AND confirmed_at IS NOT NULL"
    " AND (needs_approval = 0 OR approved_by IS NOT NULL)) ORDER BY id"
)


@dataclass
class RecoveryReport:
    """What one :meth:`TransactionEngine.recover` pass finished (request ids)."""

    failed: list[int] = field(default_factory=list)
    rerun: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many requests were finished."""
        return len(self.failed) + len(self.rerun) + len(self.refused)


class TransactionEngine:
    """Runs the catalog's transactions against an :class:`AccountSystem`, audited."""

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

    # Reading ---------------------------------------------------------------------------------------

    async def get(self, tx_id: int) -> TxOutcome:
        row = await self.db.fetchrow("SELECT * FROM tx_requests WHERE id = $1", tx_id)
        if row is None:
            raise TxError(404, "no_transaction", f"no transaction request #{tx_id}")
        return _outcome(row)

    async def pending(self, session_id: str) -> list[TxOutcome]:
        """Requests of the session waiting for the customer or a supervisor, oldest first."""
        rows = await self.db.fetch(
            "SELECT * FROM tx_requests WHERE session_id = $1 AND status = 'pending' ORDER BY id", session_id
        )
        return [_outcome(r) for r in rows]

    async def awaiting_approval(self) -> list[TxOutcome]:
        """A4 requests no supervisor has approved yet (the supervisor's queue)."""
        rows = await self.db.fetch(
            "SELECT * FROM tx_requests WHERE status = 'pending' AND needs_approval = 1 AND approved_by IS NULL"
            " ORDER BY id"
        )
        return [_outcome(r) for r in rows]

    async def history(self, session_id: str) -> list[TxOutcome]:
        rows = await self.db.fetch("SELECT * FROM tx_requests WHERE session_id = $1 ORDER BY id", session_id)
        return [_outcome(r) for r in rows]

    # Requesting ------------------------------------------------------------------------------------

    async def request(
        self, session_id: str, code: str, inputs: Mapping[str, Any], idempotency_key: str, actor: str
    ) -> TxOutcome:
        """Ask for transaction ``code`` in a session.

        Refused at once when the input, the level or a precondition is wrong; otherwise it comes back
        ``pending`` (a look-up too) and runs only once the customer confirms on their own screen
        (:meth:`confirm`) and, for A4, a supervisor approves.  The same ``idempotency_key`` returns
        the first outcome.
        """
        if not idempotency_key or len(idempotency_key) > 100:
            raise TxError(400, "idempotency_key", "send an Idempotency-Key of 1 to 100 characters")
        spec = CATALOG.get(code)
        if spec is None:
            raise TxError(404, "unknown_code", f"no transaction {code!r}; GET the catalog for the codes")
        existing = await self._by_key(session_id, idempotency_key)
        if existing is not None:
            return self._same(existing, code)
        try:
            session = await self.sessions.get(session_id)
        except SessionError as exc:
            raise TxError(404, "no_session", str(exc)) from exc
        parsed: TxInput | None = None
        errors: list[dict[str, Any]] = []
        try:
            parsed = spec.inputs.model_validate(dict(inputs))
        except ValidationError as exc:
            errors = [
                {
                    "field": ".".join(str(p) for p in e["loc"]) or "(input)",
                    "error": e["msg"].removeprefix("Value error, "),
                }
                for e in exc.errors()
            ]
        row_id = await self._insert(session, spec, parsed, idempotency_key, actor)
        if row_id is None:  # the same key raced in: return the winner
            existing = await self._by_key(session_id, idempotency_key)
            assert existing is not None
            return self._same(existing, code)
        with self._working_on(row_id):
            return await self._check_request(row_id, session, spec, parsed, errors, actor)

    async def _check_request(
        self,
        row_id: int,
        session: CounterSession,
        spec: TxSpec,
        parsed: TxInput | None,
        errors: list[dict[str, Any]],
        actor: str,
    ) -> TxOutcome:
        """Refuse a new (``running``) request at once, or let it wait (``pending``) for the customer."""
        if parsed is None:
            reason = "bad input: " + "; ".join(f"{e['field']}: {e['error']}" for e in errors)
            return await self._finish(row_id, TxStatus.REFUSED, reason, "输入有误，请核对", errors=errors)
        refusal = self._refusal(spec, session)
        if refusal is not None:
            return await self._finish(row_id, TxStatus.REFUSED, *refusal)
        try:
            await self._precheck(spec, session, parsed, actor, row_id)
        except Refused as exc:
            return await self._finish(row_id, TxStatus.REFUSED, exc.reason, exc.reason_zh)
        except AccountNotFound as exc:
            return await self._finish(row_id, TxStatus.REFUSED, str(exc), "号码不存在")
        except _AlreadyClaimed:
            pass  # recovery finished it meanwhile (this node was taken for dead)
        return await self.get(row_id)

    async def _by_key(self, session_id: str, key: str) -> Row | None:
        return await self.db.fetchrow(
            "SELECT * FROM tx_requests WHERE session_id = $1 AND idem_key = $2", session_id, key
        )

    @staticmethod
    def _same(row: Row, code: str) -> TxOutcome:
        if row["code"] != code:
            raise TxError(
                409, "idempotency_key_reused", f"this Idempotency-Key was used for {row['code']}: use a new key"
            )
        return _outcome(row)

    async def _insert(
        self, session: CounterSession, spec: TxSpec, inputs: TxInput | None, key: str, actor: str
    ) -> int | None:
        """Record the request (with its validated inputs, ``{}`` when they were invalid)."""
        try:
            value = await self.db.fetchval(
                "INSERT INTO tx_requests (session_id, idem_key, code, account, status, needs_confirmation,"
                " needs_approval, requested_by, created_at, inputs, node)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                session.id,
                key,
                spec.code,
                session.account if spec.needs_account or session.account else None,
                TxStatus.RUNNING.value,
                1,
                int(spec.needs_approval),
                actor,
                iso(),
                inputs.model_dump_json() if inputs is not None else "{}",
                self.node_id,
            )
        except IntegrityError:
            return None
        return int(value)

    @staticmethod
    def _refusal(spec: TxSpec, session: CounterSession) -> tuple[str, str] | None:
        why = transaction_refusal(spec, session)
        return None if why is None else (why.en, why.zh)

    async def _precheck(self, spec: TxSpec, session: CounterSession, inputs: Any, actor: str, tx_id: int) -> None:
        """Run the preconditions on the current state; if they hold, the request waits (``pending``)."""
        async with AsyncExitStack() as stack:
            if session.account is not None:
                change = await stack.enter_async_context(self.accounts.change(session.account))
                ex = change.executor
            else:
                change = None
                ex = None
            if ex is None:
                ex = await stack.enter_async_context(self.db.transaction())
            ctx = TxContext(session, actor, utcnow(), ex, change, self.workorders)
            await spec.check(ctx, inputs)
            waiting = await ex.execute(
                "UPDATE tx_requests SET status = 'pending' WHERE id = $1 AND status = 'running'", tx_id
            )
            if waiting != 1:
                raise _AlreadyClaimed

    # Confirming and approving --------------------------------------------------------------------------

    async def confirm(self, tx_id: int, session_id: str, accept: bool) -> TxOutcome:
        """The customer's answer on their own screen (authenticated by their session token)."""
        outcome = await self.get(tx_id)
        if outcome.session_id != session_id:
            raise TxError(404, "no_transaction", f"no transaction request #{tx_id} in your session")
        if outcome.status != TxStatus.PENDING or outcome.confirmed_at is not None:
            return outcome
        if not accept:
            return await self._finish(tx_id, TxStatus.DECLINED, "the customer declined on their screen", "您已取消")
        with self._working_on(tx_id):
            changed = await self.db.execute(
                "UPDATE tx_requests SET confirmed_at = $2, node = $3"
                " WHERE id = $1 AND status = 'pending' AND confirmed_at IS NULL",
                tx_id,
                iso(),
                self.node_id,
            )
            if changed != 1:
                return await self.get(tx_id)
            return await self._maybe_run(tx_id)

    async def approve(self, tx_id: int, supervisor: str) -> TxOutcome:
        """A supervisor's approval of an A4 request: a different person from the requesting agent."""
        outcome = await self.get(tx_id)
        if not outcome.needs_approval:
            raise TxError(409, "no_approval_needed", f"{outcome.code} needs no supervisor approval")
        if outcome.requested_by == supervisor:
            raise TxError(403, "same_person", "the approval must come from a different person than the requester")
        if outcome.status != TxStatus.PENDING or outcome.approved_by is not None:
            return outcome
        with self._working_on(tx_id):
            changed = await self.db.execute(
                "UPDATE tx_requests SET approved_by = $2, approved_at = $3, node = $4"
                " WHERE id = $1 AND status = 'pending' AND approved_by IS NULL",
                tx_id,
                supervisor,
                iso(),
                self.node_id,
            )
            if changed != 1:
                return await self.get(tx_id)
            return await self._maybe_run(tx_id)

    async def _maybe_run(self, tx_id: int) -> TxOutcome:
        outcome = await self.get(tx_id)
        if outcome.confirmed_at is None or (outcome.needs_approval and outcome.approved_by is None):
            return outcome
        return await self._execute(tx_id)

    # Running -----------------------------------------------------------------------------------------

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
                change = None
                ex: Executor | None = None
                if spec.needs_account or session.account is not None:
                    assert session.account is not None
                    change = await stack.enter_async_context(self.accounts.change(session.account))
                    ex = change.executor
                if ex is None:
                    ex = await stack.enter_async_context(self.db.transaction())
                # Claim the request: only one runner ever gets it (a double click, two nodes).
                claimed = await ex.execute(
                    "UPDATE tx_requests SET status = 'running' WHERE id = $1 AND status = 'pending'", tx_id
                )
                if claimed != 1:
                    raise _AlreadyClaimed
                return await self._run(ex, spec, session, row, change, tx_id)
        except _AlreadyClaimed:
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
        self, ex: Executor, spec: TxSpec, session: CounterSession, row: Row, change: Any, tx_id: int
    ) -> TxOutcome:
        inputs = spec.inputs.model_validate_json(row["inputs"] or "{}")
        now = utcnow()
        ctx = TxContext(session, row["requested_by"], now, ex, change, self.workorders, tx_id=tx_id)
        await spec.check(ctx, inputs)
        data = await spec.handler(ctx, inputs)
        secrets = {k: str(data.pop(k)) for k in sorted(spec.secret_results) if k in data}
        shown = {k: SHOWN_TO_CUSTOMER for k in secrets}
        text_zh = _format(spec.result_zh, {**data, **{k: v[0] for k, v in shown.items()}})
        text_en = _format(spec.result_en, {**data, **{k: v[1] for k, v in shown.items()}})
        customer = {
            "text_zh": _format(spec.result_zh, {**data, **secrets}),
            "text_en": _format(spec.result_en, {**data, **secrets}),
            "secrets": secrets,
        }
        if change is not None:
            sms = _format(spec.receipt_zh or spec.result_zh, {**data, **{k: v[0] for k, v in shown.items()}})
            if ctx.sms_extra:
                sms = f"{sms}{ctx.sms_extra}"
            await queue_sms(ex, change.account.msisdn, f"【远程柜台】{sms}", now, tx_id)
        result = {"data": data, "text_zh": text_zh, "text_en": text_en, "_customer": customer}
        finished = iso()
        event = self._event(spec, session, row, TxStatus.DONE, None, inputs.model_dump(mode="json"), sorted(secrets))
        receipt = await self.audit.append_in(ex, event)
        await ex.execute(
            "UPDATE tx_requests SET status = 'done', result = $2, finished_at = $3, audit_seq = $4,"
            " inputs = '{}' WHERE id = $1",
            tx_id,
            json.dumps(result, ensure_ascii=False, default=str),
            finished,
            receipt.seq,
        )
        fresh = await ex.fetchrow("SELECT * FROM tx_requests WHERE id = $1", tx_id)
        assert fresh is not None
        return _outcome(fresh)

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
            return _outcome(row)
        spec = CATALOG[row["code"]]
        session = await self.sessions.get(row["session_id"])
        inputs = json.loads(row["inputs"] or "{}")
        event = self._event(spec, session, row, status, reason, inputs)
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

    def _event(
        self,
        spec: TxSpec,
        session: CounterSession,
        row: Row,
        status: TxStatus,
        reason: str | None,
        inputs: Mapping[str, Any],
        shown: list[str] | None = None,
    ) -> AuditEvent:
        details: dict[str, Any] = {
            "tx_id": int(row["id"]),
            "status": status.value,
            "level_required": str(spec.level),
            "level_reached": str(session.level),
            "level_method": session.level_method,
            "inputs": {
                k: ("***" if k in spec.secret_fields else v) for k, v in inputs.items() if k not in spec.personal_fields
            },
        }
        if session.level_method in ("attestation", "idcard_attested"):
            details["identity_path"] = "face declined, agent attestation"
        if row["confirmed_at"]:
            details["customer_confirmed_at"] = row["confirmed_at"]
        if row["approved_by"]:
            details["approved_by"] = row["approved_by"]
        if shown:
            details["shown_to_customer"] = shown  # that it was shown, never what
        personal = {k: v for k, v in inputs.items() if k in spec.personal_fields}
        outcome = {TxStatus.DONE: "ok", TxStatus.FAILED: "failed"}.get(status, "refused")
        return AuditEvent(
            action=f"transaction.{spec.code}",
            actor_role="agent",
            actor_id=row["requested_by"],
            outcome=outcome,
            session_id=session.id,
            account=row["account"],
            details=details,
            personal=personal,
            evidence=tuple(sorted(set(session.evidence_hashes()))),
            reason=reason,
        )

    # Recovering ----------------------------------------------------------------------------------------

    async def heartbeat(self, now: float | None = None) -> None:
        """This node is alive (``counter_nodes``): other nodes leave what it has in flight alone."""
        await self.db.execute(
            "INSERT INTO counter_nodes (id, seen_at) VALUES ($1, $2)"
            " ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
            self.node_id,
            time.time() if now is None else now,
        )

    async def recover(
        self,
        *,
        at_start: bool = False,
        now: float | None = None,
        still_connected: Callable[[CounterSession], Awaitable[bool]] | None = None,
    ) -> RecoveryReport:
        """Finish every request left in flight by a node that is gone, each with its one audit entry.

        * ``running`` (its change never committed: the change and its ``done`` are one database
          transaction) ends ``failed``, "the system restarted before it finished; nothing was changed";
        * confirmed by the customer (and approved, where needed) but never run: run now if its session
          is still live (no end of its call recorded and, where ``still_connected`` is given, the call
          still connected to its agent in the shared signaling state) and the confirmation is recent
          (:data:`RERUN_WITHIN`; the level and the preconditions are checked again as for any run),
          else refused with the reason;
        * plain ``pending`` ones (waiting for the customer or a supervisor) are left alone: they end
          with the call (:meth:`call_ended`).

        Orphans are a request stamped with this node that no code of this process is working on
        (``at_start``: all of them, this process has just begun; later: those in flight longer than
        :data:`NODE_TTL_S`), one of a node that has not said it is alive for :data:`NODE_TTL_S`, and
        one with no node (recorded before nodes were stamped).  Every ending is a conditional update,
        so a request a slow node is still working on is finished once, by whoever comes first.
        """
        clock = time.time() if now is None else now
        alive = {
            str(r["id"])
            for r in await self.db.fetch("SELECT id FROM counter_nodes WHERE seen_at >= $1", clock - NODE_TTL_S)
        }
        report = RecoveryReport()
        for row in await self.db.fetch(IN_FLIGHT_SQL):
            tx_id = int(row["id"])
            if not self._orphaned(row, alive, at_start=at_start, now=clock) or tx_id in self._inflight:
                continue
            with self._working_on(tx_id):
                try:
                    await self._recover_one(row, report, clock, still_connected)
                except Exception:
                    log.exception("could not recover transaction #%s; will try again", tx_id)
        if report.count:
            log.warning(
                "recovered %d transaction request(s) left in flight: failed %s, run %s, refused %s",
                report.count, report.failed, report.rerun, report.refused,
            )
        return report

    def _orphaned(self, row: Row, alive: set[str], *, at_start: bool, now: float) -> bool:
        node = row["node"]
        if node is None:
            return True
        if node != self.node_id:
            return node not in alive
        if at_start:
            return True
        since = row["created_at"] if row["status"] == TxStatus.RUNNING.value else row["confirmed_at"]
        return parse_iso(since).timestamp() < now - NODE_TTL_S

    async def _recover_one(
        self,
        row: Row,
        report: RecoveryReport,
        now: float,
        still_connected: Callable[[CounterSession], Awaitable[bool]] | None,
    ) -> None:
        tx_id = int(row["id"])
        if row["status"] == TxStatus.RUNNING.value:
            await self._finish(tx_id, TxStatus.FAILED, *RESTARTED_RUNNING)
            report.failed.append(tx_id)
            return
        try:
            session = await self.sessions.get(row["session_id"])
            live = session.live and (still_connected is None or await still_connected(session))
        except SessionError:
            live = False
        confirmed = parse_iso(row["confirmed_at"]).timestamp()
        if not live:
            await self._finish(tx_id, TxStatus.REFUSED, *RESTARTED_CALL_ENDED)
            report.refused.append(tx_id)
        elif confirmed < now - RERUN_WITHIN.total_seconds():
            await self._finish(tx_id, TxStatus.REFUSED, *RESTARTED_TOO_OLD)
            report.refused.append(tx_id)
        else:
            await self._execute(tx_id)
            report.rerun.append(tx_id)

    async def call_ended(self, session_id: str) -> list[TxOutcome]:
        """The session's call ended: requests still waiting for the customer (or a supervisor) are
        refused, one audit entry each, so none is left half-done or confirmable later."""
        rows = await self.db.fetch(
            "SELECT id FROM tx_requests WHERE session_id = $1 AND status = 'pending' ORDER BY id", session_id
        )
        return [
            await self._finish(
                int(r["id"]), TxStatus.REFUSED, "the call ended before it was done: nothing was changed",
                "通话已结束，本次业务未办理",
            )
            for r in rows
        ]

    async def forget_secrets(self, ended_before: str) -> int:
        """Drop the customer's copy of secret results (a PUK, a new SIM's ICCID) of sessions whose call
        ended before ``ended_before`` (ISO time): it was theirs to see on their own screen during the
        call and the short while after it; it is not kept at rest beyond that.  Returns how many."""
        rows = await self.db.fetch(
            "SELECT r.id, r.result FROM tx_requests r JOIN counter_sessions s ON s.id = r.session_id"
            " WHERE s.call_ended_at IS NOT NULL AND s.call_ended_at < $1 AND r.result LIKE $2",
            ended_before,
            '%"_customer"%',
        )
        forgotten = 0
        for row in rows:
            result = json.loads(row["result"])
            if result.pop("_customer", None) is None:
                continue
            forgotten += await self.db.execute(
                "UPDATE tx_requests SET result = $2 WHERE id = $1 AND result = $3",
                int(row["id"]),
                json.dumps(result, ensure_ascii=False, default=str),
                row["result"],
            )
        return forgotten


class _AlreadyClaimed(Exception):
    pass

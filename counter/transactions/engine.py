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
* nothing is left half-done by a crash (:meth:`TransactionEngine.recover`, :mod:`.recovery`).

Split by responsibility: this module takes requests and the customer's and supervisor's answers;
:mod:`counter.transactions.runner` runs and ends them; :mod:`counter.transactions.recovery` finishes
what a crash left; :mod:`counter.transactions.outcome` is what a request's record and answers say.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

from pydantic import ValidationError

from counter.accounts import AccountNotFound
from counter.sessions import CounterSession, SessionError
from counter.transactions.outcome import FINAL, SHOWN_TO_CUSTOMER, TxError, TxOutcome, TxStatus, outcome_of
from counter.transactions.recovery import (
    HEARTBEAT_S,
    NODE_TTL_S,
    RERUN_WITHIN,
    RESTARTED_CALL_ENDED,
    RESTARTED_RUNNING,
    RESTARTED_TOO_OLD,
    RecoveryReport,
    TxRecovery,
)
from counter.transactions.runner import AlreadyClaimed, AuditSink
from counter.transactions.spec import CATALOG, Refused, TxContext, TxInput, TxSpec
from storage import IntegrityError, Row
from storage.timeutil import iso, utcnow

__all__ = [
    "FINAL",
    "HEARTBEAT_S",
    "NODE_TTL_S",
    "RERUN_WITHIN",
    "RESTARTED_CALL_ENDED",
    "RESTARTED_RUNNING",
    "RESTARTED_TOO_OLD",
    "SHOWN_TO_CUSTOMER",
    "AuditSink",
    "RecoveryReport",
    "TransactionEngine",
    "TxError",
    "TxOutcome",
    "TxStatus",
]


class TransactionEngine(TxRecovery):
    """Runs the catalog's transactions against an :class:`AccountSystem`, audited."""

    # Reading ---------------------------------------------------------------------------------------

    async def pending(self, session_id: str) -> list[TxOutcome]:
        """Requests of the session waiting for the customer or a supervisor, oldest first."""
        rows = await self.db.fetch(
            "SELECT * FROM tx_requests WHERE session_id = $1 AND status = 'pending' ORDER BY id", session_id
        )
        return [outcome_of(r) for r in rows]

    async def awaiting_approval(self) -> list[TxOutcome]:
        """A4 requests no supervisor has approved yet (the supervisor's queue)."""
        rows = await self.db.fetch(
            "SELECT * FROM tx_requests WHERE status = 'pending' AND needs_approval = 1 AND approved_by IS NULL"
            " ORDER BY id"
        )
        return [outcome_of(r) for r in rows]

    async def history(self, session_id: str) -> list[TxOutcome]:
        """Every request of the session, oldest first."""
        rows = await self.db.fetch("SELECT * FROM tx_requests WHERE session_id = $1 ORDER BY id", session_id)
        return [outcome_of(r) for r in rows]

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
        except AlreadyClaimed:
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
        return outcome_of(row)

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

    async def _precheck(self, spec: TxSpec, session: CounterSession, inputs: Any, actor: str, tx_id: int) -> None:
        """Run the preconditions on the current state; if they hold, the request waits (``pending``)."""
        async with AsyncExitStack() as stack:
            change, ex = await self._hold(stack, session.account)
            ctx = TxContext(session, actor, utcnow(), ex, change, self.workorders)
            await spec.check(ctx, inputs)
            waiting = await ex.execute(
                "UPDATE tx_requests SET status = 'pending' WHERE id = $1 AND status = 'running'", tx_id
            )
            if waiting != 1:
                raise AlreadyClaimed

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
        return await self._answered(tx_id, "confirmed_at = $2", "confirmed_at", iso())

    async def approve(self, tx_id: int, supervisor: str) -> TxOutcome:
        """A supervisor's approval of an A4 request: a different person from the requesting agent."""
        outcome = await self.get(tx_id)
        if not outcome.needs_approval:
            raise TxError(409, "no_approval_needed", f"{outcome.code} needs no supervisor approval")
        if outcome.requested_by == supervisor:
            raise TxError(403, "same_person", "the approval must come from a different person than the requester")
        if outcome.status != TxStatus.PENDING or outcome.approved_by is not None:
            return outcome
        return await self._answered(tx_id, "approved_by = $2, approved_at = $3", "approved_by", supervisor, iso())

    async def _answered(self, tx_id: int, answer: str, unanswered: str, *values: Any) -> TxOutcome:
        """Record an answer (SQL ``answer`` setting ``values`` from ``$2``) once, while ``unanswered`` is
        still NULL, stamped with this node; run the request if nothing else is awaited."""
        with self._working_on(tx_id):
            changed = await self.db.execute(
                f"UPDATE tx_requests SET {answer}, node = ${len(values) + 2}"
                f" WHERE id = $1 AND status = 'pending' AND {unanswered} IS NULL",
                tx_id,
                *values,
                self.node_id,
            )
            if changed != 1:
                return await self.get(tx_id)
            outcome = await self.get(tx_id)
            if outcome.confirmed_at is None or (outcome.needs_approval and outcome.approved_by is None):
                return outcome
            return await self._execute(tx_id)

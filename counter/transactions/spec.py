"""What a transaction is: a declarative :class:`TxSpec` entry plus its handler, kept in :data:`CATALOG`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from counter.accounts import Account, AccountChange
from counter.sessions import CounterSession, Level
from counter.workorders import WorkOrders
from storage import Executor


class TxInput(BaseModel):
    """Base of every transaction's input schema: unknown fields are refused, strings stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Refused(Exception):
    """A precondition is not met: nothing was changed.  ``reason`` is shown to agent and customer."""

    def __init__(self, reason: str, reason_zh: str | None = None, code: str = "precondition") -> None:
        super().__init__(reason)
        self.reason = reason
        self.reason_zh = reason_zh or reason
        self.code = code


@dataclass
class TxContext:
    """What a handler works with: the session, the account held for change, and the transaction."""

    session: CounterSession
    actor: str
    now: datetime
    tx: Executor
    change: AccountChange | None
    workorders: WorkOrders
    tx_id: int | None = None
    #: Extra SMS text the handler wants in the receipt (e.g. a new password); never shown on screen.
    sms_extra: str | None = None

    @property
    def account(self) -> Account:
        if self.change is None:
            raise Refused("this needs an account: claim the customer's line in the session first", "请先确认办理的号码")
        return self.change.account

    @property
    def account_change(self) -> AccountChange:
        if self.change is None:
            raise Refused("this needs an account: claim the customer's line in the session first", "请先确认办理的号码")
        return self.change


Handler = Callable[[TxContext, Any], Awaitable[dict[str, Any]]]
Check = Callable[[TxContext, Any], Awaitable[None]]


async def _no_check(ctx: TxContext, inputs: Any) -> None:
    return None


@dataclass(frozen=True)
class TxSpec:
    """One transaction of the catalog."""

    code: str
    title_zh: str
    title_en: str
    level: Level
    inputs: type[TxInput]
    handler: Handler
    #: What it changes ("" when it changes nothing), for staff.
    effect: str = ""
    #: The same in the customer's words, on their confirmation screen (see :mod:`counter.transactions.wording`).
    effect_zh: str = ""
    effect_en: str = ""
    reversal: str = ""
    #: Plain-words result for the customer; ``{name}`` fields come from the handler's result.
    result_zh: str = "已办理完成。"
    result_en: str = "Done."
    #: The SMS receipt (default: the result text); ``{name}`` fields as above.
    receipt_zh: str | None = None
    check: Check = _no_check
    needs_account: bool = True
    #: Input fields logged as personal data (purgeable), and fields never logged at all.
    personal_fields: frozenset[str] = field(default_factory=frozenset)
    secret_fields: frozenset[str] = field(default_factory=frozenset)
    #: Result fields for the customer's eyes only (a PUK, a new ICCID, a temporary code): shown on the
    #: customer's own screen, never in an answer or message to staff, never in the audit log.
    secret_results: frozenset[str] = field(default_factory=frozenset)
    notes: str = ""

    @property
    def changes_state(self) -> bool:
        return bool(self.effect)

    @property
    def needs_approval(self) -> bool:
        """A4: a supervisor (a second logged-in person) approves before it runs."""
        return self.level >= Level.A4

    @property
    def session_level(self) -> Level:
        """The level the session itself must reach (A4 is A3 plus the approval)."""
        return min(self.level, Level.A3)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "title_zh": self.title_zh,
            "title_en": self.title_en,
            "level": str(self.level),
            "changes_state": self.changes_state,
            "needs_confirmation": True,
            "needs_approval": self.needs_approval,
            "effect": self.effect,
            "reversal": self.reversal,
            "needs_account": self.needs_account,
            "notes": self.notes,
            "shown_to_customer_only": sorted(self.secret_results),
            "input_schema": self.inputs.model_json_schema(),
        }


#: Every transaction, by code.  Filled by :func:`transaction` in :mod:`counter.transactions.catalog`.
CATALOG: dict[str, TxSpec] = {}


def transaction(
    code: str, title_zh: str, title_en: str, level: Level, inputs: type[TxInput], **options: Any
) -> Callable[[Handler], Handler]:
    """Register the decorated handler as transaction ``code`` (options: the other :class:`TxSpec` fields)."""

    def register(handler: Handler) -> Handler:
        if code in CATALOG:
            raise ValueError(f"transaction {code} is registered twice")
        CATALOG[code] = TxSpec(code, title_zh, title_en, level, inputs, handler, **options)
        return handler

    return register

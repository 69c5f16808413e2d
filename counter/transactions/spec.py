"""What a transaction is: its entry of ``entries.toml`` (words and flags) plus its inputs, preconditions
and handler (Python, registered with :func:`transaction`), together a :class:`TxSpec` in :data:`CATALOG`."""

from __future__ import annotations

import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class Entry(BaseModel):
    """One transaction as ``entries.toml`` declares it: what it is called, needs and does, in words."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title_zh: str
    title_en: str
    level: Level
    #: Whether it changes the account (or records something): an A2+ proof older than 10 minutes is
    #: re-checked first, and the customer confirms the effect below.
    changes_state: bool
    #: What it changes, for staff ("" when it changes nothing).
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
    needs_account: bool = True
    #: Input fields logged as personal data (purgeable), and fields never logged at all.
    personal_fields: frozenset[str] = Field(default_factory=frozenset)
    secret_fields: frozenset[str] = Field(default_factory=frozenset)
    #: Result fields for the customer's eyes only (a PUK, a new ICCID, a temporary code): shown on the
    #: customer's own screen, never in an answer or message to staff, never in the audit log.
    secret_results: frozenset[str] = Field(default_factory=frozenset)
    notes: str = ""

    @model_validator(mode="after")
    def _effect_worded(self) -> Entry:
        if self.changes_state and not (self.effect and self.effect_zh and self.effect_en):
            raise ValueError("a transaction that changes state says what it changes: effect, effect_zh, effect_en")
        return self

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return Level.parse(value) if isinstance(value, str) else value


#: Where every transaction is declared.
ENTRIES_FILE = Path(__file__).with_name("entries.toml")


def load_entries(path: Path = ENTRIES_FILE) -> dict[str, Entry]:
    """The entries of ``path``, by code, in the file's order."""
    with path.open("rb") as f:
        table = tomllib.load(f)
    return {code: Entry.model_validate(fields) for code, fields in table.items()}


#: Every declared transaction, by code; :func:`transaction` gives each its handler.
ENTRIES: dict[str, Entry] = load_entries()


class TxSpec(Entry):
    """One transaction of the catalog: its declared :class:`Entry`, its inputs, preconditions and handler."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    code: str
    inputs: type[TxInput]
    handler: Handler
    check: Check = _no_check

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


#: Every transaction, by code.  Filled by :func:`transaction` in the modules of :mod:`counter.transactions.catalog`.
CATALOG: dict[str, TxSpec] = {}


def transaction(code: str, inputs: type[TxInput], check: Check = _no_check) -> Callable[[Handler], Handler]:
    """Register the decorated handler as transaction ``code`` of ``entries.toml``, with its inputs and
    its preconditions (``check``, run when it is asked for and again under the account lock)."""

    def register(handler: Handler) -> Handler:
        entry = ENTRIES.get(code)
        if entry is None:
            raise ValueError(f"transaction {code} has no entry in {ENTRIES_FILE.name}")
        if code in CATALOG:
            raise ValueError(f"transaction {code} is registered twice")
        undeclared = (entry.personal_fields | entry.secret_fields) - set(inputs.model_fields)
        if undeclared:
            raise ValueError(f"transaction {code}: {sorted(undeclared)} are not inputs of {inputs.__name__}")
        CATALOG[code] = TxSpec(code=code, inputs=inputs, handler=handler, check=check, **dict(entry))
        return handler

    return register


def check_complete() -> None:
    """Every entry of ``entries.toml`` has its handler (run once every domain module is imported)."""
    missing = [code for code in ENTRIES if code not in CATALOG]
    if missing:
        raise ValueError(f"no handler for {', '.join(missing)} of {ENTRIES_FILE.name}")
    ordered = {code: CATALOG[code] for code in ENTRIES}  # the file's order, whatever the modules' order
    CATALOG.clear()
    CATALOG.update(ordered)

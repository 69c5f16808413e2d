"""The account system interface: what the counter needs from the operator's business support system.

Everything is async so that an HTTP adapter to a real BSS is a drop-in.  Reads go through
:class:`AccountSystem`; changes go through one :class:`AccountChange` unit of work opened with
:meth:`AccountSystem.change`, which holds the account exclusively until it ends (so two agents can
never both apply conflicting changes) and commits everything at once.
"""

from __future__ import annotations

import abc
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from storage import Executor


class LineStatus(StrEnum):
    """The states a line can be in."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    SUSPENDED_ARREARS = "suspended_arrears"
    LOST = "lost"
    EMERGENCY = "emergency"
    CLOSED = "closed"


#: Plans: code -> (zh-CN name, English name, monthly fee in cents).
PLANS: dict[str, tuple[str, str, int]] = {
    "basic-19": ("畅享19元套餐", "Basic 19", 1900),
    "silver-39": ("银龄关爱39元套餐", "Silver care 39", 3900),
    "5g-59": ("5G畅享59元套餐", "5G 59", 5900),
    "5g-129": ("5G尊享129元套餐", "5G 129", 12900),
}

#: Add-ons: code -> (zh-CN name, English name, monthly fee in cents).
ADDONS: dict[str, tuple[str, str, int]] = {
    "data-10g": ("10GB流量包", "10 GB data pack", 3000),
    "caller-id": ("来电显示", "Caller ID", 500),
    "ringback": ("彩铃", "Ring-back tone", 500),
    "video-vip": ("视频会员", "Video membership", 1500),
    "family-call": ("亲情通话", "Family calling", 1000),
}


@dataclass(frozen=True)
class Holder:
    """The registered (real-name) holder of a line."""

    id: int
    name: str
    id_number: str
    birth_date: str
    id_expires: str
    photo_sha256: str


@dataclass(frozen=True)
class Sim:
    iccid: str
    puk: str
    esim: bool
    issued_at: str


@dataclass(frozen=True)
class Account:
    """One line (the unit customers come about) with its holder and current SIM."""

    msisdn: str
    holder: Holder
    status: LineStatus
    status_before_loss: LineStatus | None
    suspended_until: str | None
    emergency_until: str | None
    plan: str
    pending_plan: str | None
    pending_plan_from: str | None
    roaming: bool
    forwarding: str | None
    datacap_mb: int | None
    spamblock: bool
    balance_cents: int
    credit_limit_cents: int
    points: int
    contact_address: str
    contact_email: str
    addons: tuple[str, ...]
    sim: Sim | None
    refund_cents: int | None
    version: int

    @property
    def in_arrears(self) -> bool:
        """Whether the balance is below zero (unpaid bills)."""
        return self.balance_cents < 0


@dataclass(frozen=True)
class Bill:
    month: str
    amount_cents: int
    paid: bool
    items: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Payment:
    paid_at: str
    amount_cents: int
    channel: str


@dataclass(frozen=True)
class Invoice:
    id: int
    month: str
    amount_cents: int
    email: str
    issued_at: str


class AccountError(Exception):
    """An account operation could not be done; the message says why."""


class AccountNotFound(AccountError):
    """No line with that number: check the number with the customer."""


#: Line fields that :meth:`AccountChange.update_line` may set.
LINE_FIELDS = frozenset(
    {
        "status",
        "status_before_loss",
        "suspended_until",
        "emergency_until",
        "plan",
        "pending_plan",
        "pending_plan_from",
        "roaming",
        "forwarding",
        "datacap_mb",
        "spamblock",
        "balance_cents",
        "credit_limit_cents",
        "points",
        "contact_address",
        "contact_email",
        "refund_cents",
        "closed_at",
    }
)
HOLDER_FIELDS = frozenset({"name", "id_number", "birth_date", "id_expires"})


class AccountChange(abc.ABC):
    """A unit of work on one account, holding it exclusively until committed or rolled back."""

    #: The account as read under the lock, refreshed after every change.
    account: Account

    @property
    @abc.abstractmethod
    def executor(self) -> Executor | None:
        """The storage transaction the change runs in, so the caller can commit its own records
        (audit entry, outbox, idempotency) atomically with it; ``None`` for a remote system."""

    @abc.abstractmethod
    async def update_line(self, **fields: Any) -> Account:
        """Set line fields (names in :data:`LINE_FIELDS`); return the new state."""

    @abc.abstractmethod
    async def update_holder(self, **fields: Any) -> Account:
        """Set holder fields (names in :data:`HOLDER_FIELDS`) of this line's holder."""

    @abc.abstractmethod
    async def transfer_to(self, name: str, id_number: str, birth_date: str, id_expires: str) -> Account:
        """Make a new holder (or the existing one with that ID number) the holder of this line."""

    @abc.abstractmethod
    async def set_password(self, password: str) -> None:
        """Store a new service password (hashed)."""

    @abc.abstractmethod
    async def verify_password(self, password: str) -> bool:
        """Whether ``password`` is the line's service password."""

    @abc.abstractmethod
    async def add_addon(self, addon: str) -> Account: ...

    @abc.abstractmethod
    async def remove_addon(self, addon: str) -> Account: ...

    @abc.abstractmethod
    async def replace_sim(self, esim: bool) -> Sim:
        """Invalidate the current SIM and issue a new one (new ICCID and PUK)."""

    @abc.abstractmethod
    async def record_emergency(self, started_at: str, until: str) -> None: ...

    @abc.abstractmethod
    async def last_emergency(self) -> str | None:
        """When the last emergency resume started, or ``None``."""

    @abc.abstractmethod
    async def bill(self, month: str) -> Bill | None: ...

    @abc.abstractmethod
    async def bills(self, months: int = 6) -> list[Bill]:
        """The latest bills, newest first."""

    @abc.abstractmethod
    async def payments(self, limit: int = 20) -> list[Payment]:
        """The latest payments, newest first."""

    @abc.abstractmethod
    async def issue_invoice(self, month: str, amount_cents: int, email: str) -> Invoice: ...

    @abc.abstractmethod
    async def invoice(self, month: str) -> Invoice | None: ...


class AccountSystem(abc.ABC):
    """The operator's business support system, as the counter sees it."""

    @abc.abstractmethod
    async def get(self, msisdn: str) -> Account | None:
        """The line and its holder, or ``None``."""

    @abc.abstractmethod
    async def holder_photo(self, msisdn: str) -> bytes | None:
        """The real-name photo on file for the line's holder (JPEG/PNG bytes)."""

    @abc.abstractmethod
    async def bills(self, msisdn: str, months: int = 6) -> list[Bill]:
        """The latest bills, newest first."""

    @abc.abstractmethod
    async def payments(self, msisdn: str, limit: int = 20) -> list[Payment]:
        """The latest payments, newest first."""

    @abc.abstractmethod
    async def verify_password(self, msisdn: str, password: str) -> bool:
        """Whether ``password`` is the line's service password."""

    @abc.abstractmethod
    def change(self, msisdn: str) -> AbstractAsyncContextManager[AccountChange]:
        """Open a unit of work holding the line exclusively; raises :class:`AccountNotFound`."""

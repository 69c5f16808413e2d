"""What the transactions of every domain share: input types, money and time in words, common preconditions."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from counter.accounts import LineStatus
from counter.transactions.spec import Refused, TxContext, TxInput

Msisdn = Annotated[str, Field(pattern=r"^1[3-9]\d{9}$", description="an 11-digit mainland mobile number")]
Month = Annotated[str, Field(pattern=r"^20\d\d-(0[1-9]|1[0-2])$", description="a bill month, YYYY-MM")]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=200)]


class NoInput(TxInput):
    """No input."""


def yuan(cents: int) -> str:
    """An amount in cents as yuan with two decimals."""
    return f"{cents / 100:.2f}"


def tail(text: str, n: int = 4) -> str:
    """The last ``n`` characters (of a SIM number, say)."""
    return text[-n:]


def utc_minutes(stamp: str) -> str:
    """An ISO time as the customer reads it: ``2026-05-01 09:30 UTC``."""
    return stamp[:16].replace("T", " ") + " UTC"


def ensure_not_closed(ctx: TxContext) -> None:
    """Refuse on a closed line: nothing can be changed on it."""
    if ctx.account.status == LineStatus.CLOSED:
        raise Refused("the line is closed: nothing can be changed on it", "该号码已销户，无法办理")


def ensure_in_service(ctx: TxContext) -> None:
    """Refuse unless the line is in service (active, or resumed for an emergency)."""
    status = ctx.account.status
    if status not in (LineStatus.ACTIVE, LineStatus.EMERGENCY):
        raise Refused(
            f"the line is {status.value}, not in service: resume it first",
            f"号码当前状态为{status.value}，请先恢复使用",
        )


async def not_closed(ctx: TxContext, inputs: Any) -> None:
    """A transaction's check: the line is not closed."""
    ensure_not_closed(ctx)


async def in_service(ctx: TxContext, inputs: Any) -> None:
    """A transaction's check: the line is in service."""
    ensure_in_service(ctx)


"""The line's status: suspending and resuming it, the emergency resume, closing it, porting it out."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Literal

from pydantic import Field, field_validator

from counter.accounts import LineStatus
from counter.transactions.catalog.common import NoInput, ensure_not_closed, not_closed, utc_minutes, yuan
from counter.transactions.spec import Refused, TxContext, TxInput, transaction
from storage.timeutil import iso, parse_iso

#: Each status as the customer reads it.
STATUS_ZH = {
    LineStatus.ACTIVE: "正常",
    LineStatus.SUSPENDED: "停机",
    LineStatus.SUSPENDED_ARREARS: "欠费停机",
    LineStatus.LOST: "挂失",
    LineStatus.EMERGENCY: "紧急开机",
    LineStatus.CLOSED: "已销户",
}

#: The credit policy: one emergency resume per this long.
EMERGENCY_EVERY = timedelta(days=30)


class SuspendIn(TxInput):
    until: date | None = Field(None, description="optional end date of the suspension")
    reason: str = Field("", max_length=200)

    @field_validator("until")
    @classmethod
    def _future(cls, value: date | None) -> date | None:
        if value is not None and value <= date.today():
            raise ValueError("the end date must be after today")
        return value


async def _suspend_check(ctx: TxContext, inputs: SuspendIn) -> None:
    if ctx.account.status != LineStatus.ACTIVE:
        raise Refused(
            f"only an active line can be suspended; this one is {ctx.account.status.value}",
            "只有正常使用的号码可以报停",
        )


@transaction("line.suspend", SuspendIn, _suspend_check)
async def line_suspend(ctx: TxContext, inputs: SuspendIn) -> dict[str, Any]:
    """Suspend an active line, until a date or until it is resumed."""
    until = inputs.until.isoformat() if inputs.until else None
    await ctx.account_change.update_line(status=LineStatus.SUSPENDED, suspended_until=until)
    return {
        "msisdn": ctx.account.msisdn,
        "until_zh": f"至{until}" if until else "",
        "until_en": f" until {until}" if until else "",
    }


async def _resume_check(ctx: TxContext, inputs: NoInput) -> None:
    account = ctx.account
    if account.status == LineStatus.SUSPENDED_ARREARS or (
        account.status == LineStatus.SUSPENDED and account.in_arrears
    ):
        raise Refused(
            f"arrears of {yuan(-account.balance_cents)} yuan are unpaid: pay them first, or offer an emergency "
            "resume (line.emergency_resume)",
            f"您有欠费{yuan(-account.balance_cents)}元未缴清，请先缴费，或办理紧急开机",
        )
    if account.status != LineStatus.SUSPENDED:
        raise Refused(f"the line is {account.status.value}, not suspended", "该号码不是停机状态")


@transaction("line.resume", NoInput, _resume_check)
async def line_resume(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    """A suspended line works again."""
    await ctx.account_change.update_line(status=LineStatus.ACTIVE, suspended_until=None)
    return {"msisdn": ctx.account.msisdn}


class EmergencyIn(TxInput):
    hours: int = Field(72, ge=1, le=72, description="how long, at most 72 hours")


async def _emergency_check(ctx: TxContext, inputs: EmergencyIn) -> None:
    if ctx.account.status != LineStatus.SUSPENDED_ARREARS:
        raise Refused("emergency resume is for lines suspended for arrears", "紧急开机仅适用于欠费停机的号码")
    last = await ctx.account_change.last_emergency()
    if last is not None and ctx.now - parse_iso(last) < EMERGENCY_EVERY:
        again = (parse_iso(last) + EMERGENCY_EVERY).date().isoformat()
        raise Refused(
            f"an emergency resume was used on {last[:10]}: the credit policy allows one per 30 days"
            f" (next from {again})",
            f"30天内只能紧急开机一次，上次为{last[:10]}",
        )


@transaction("line.emergency_resume", EmergencyIn, _emergency_check)
async def line_emergency_resume(ctx: TxContext, inputs: EmergencyIn) -> dict[str, Any]:
    """A line suspended for arrears works for up to 72 hours (recorded for the credit policy)."""
    until = iso(ctx.now + timedelta(hours=inputs.hours))
    await ctx.account_change.update_line(status=LineStatus.EMERGENCY, emergency_until=until)
    await ctx.account_change.record_emergency(iso(ctx.now), until)
    return {"until": until, "until_local": utc_minutes(until), "arrears": yuan(max(0, -ctx.account.balance_cents))}


class CloseIn(TxInput):
    refund_to: Literal["original_payment", "bank_transfer"] = "original_payment"


async def _close_check(ctx: TxContext, inputs: CloseIn) -> None:
    ensure_not_closed(ctx)
    if ctx.account.in_arrears:
        raise Refused(
            f"arrears of {yuan(-ctx.account.balance_cents)} yuan must be paid before closing", "销户前请先缴清欠费"
        )
    if ctx.account.status == LineStatus.LOST:
        raise Refused("the SIM is reported lost: cancel the loss report first", "号码挂失中，请先解挂")


@transaction("account.close", CloseIn, _close_check)
async def account_close(ctx: TxContext, inputs: CloseIn) -> dict[str, Any]:
    """Close the line for good, recording the balance refunded."""
    refund = max(0, ctx.account.balance_cents)
    await ctx.account_change.update_line(
        status=LineStatus.CLOSED,
        refund_cents=refund,
        balance_cents=0,
        closed_at=iso(ctx.now),
        roaming=False,
        forwarding=None,
    )
    return {"msisdn": ctx.account.msisdn, "refund": yuan(refund), "refund_to": inputs.refund_to}


#: What keeps a line from being ported out, in words (zh-CN, English).
_PORT_BLOCKERS = {
    "arrears": ("有欠费未缴清", "unpaid arrears"),
    "status": ("号码不在正常使用状态", "the line is not in normal service"),
    "plan": ("有未生效的套餐变更", "a plan change is pending"),
}


@transaction("portability.check", NoInput, not_closed)
async def portability_check(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    """Whether the number can be ported out, and if not, why."""
    account = ctx.account
    held = {
        "arrears": account.in_arrears,
        "status": account.status in (LineStatus.LOST, LineStatus.SUSPENDED, LineStatus.SUSPENDED_ARREARS),
        "plan": bool(account.pending_plan),
    }
    blockers = [_PORT_BLOCKERS[why] for why, holds in held.items() if holds]
    if not blockers:
        return {"eligible": True, "answer_zh": "您的号码可以办理携号转网。", "answer_en": "Your number can be ported."}
    return {
        "eligible": False,
        "reasons": [en for _, en in blockers],
        "answer_zh": "暂不能携号转网：" + "；".join(zh for zh, _ in blockers) + "。",
        "answer_en": "Not portable yet: " + "; ".join(en for _, en in blockers) + ".",
    }

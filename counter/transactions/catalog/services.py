"""What the line offers: the plan, add-ons, and the switches (roaming, forwarding, data cap, spam blocking)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Literal

from pydantic import Field

from counter.accounts import ADDONS, PLANS
from counter.transactions.catalog.common import Msisdn, ensure_in_service, ensure_not_closed, not_closed, yuan
from counter.transactions.spec import Refused, TxContext, TxInput, transaction


def first_of_next_month(today: date) -> date:
    """When a booked plan change starts."""
    return (today.replace(day=1) + timedelta(days=32)).replace(day=1)


class PlanIn(TxInput):
    plan: Literal["basic-19", "silver-39", "5g-59", "5g-129"]


async def _plan_check(ctx: TxContext, inputs: PlanIn) -> None:
    ensure_not_closed(ctx)
    account = ctx.account
    if inputs.plan == account.plan and account.pending_plan is None:
        raise Refused(f"the line is on {inputs.plan} already", "您已经在使用这个套餐")
    if inputs.plan == account.pending_plan:
        raise Refused(f"a change to {inputs.plan} is already booked", "已预约变更为该套餐")


@transaction("plan.change", PlanIn, _plan_check)
async def plan_change(ctx: TxContext, inputs: PlanIn) -> dict[str, Any]:
    """Book a plan for the 1st of next month; asking for the current plan cancels a booked change."""
    if inputs.plan == ctx.account.plan:
        await ctx.account_change.update_line(pending_plan=None, pending_plan_from=None)
        return {
            "done_zh": "已取消预约的套餐变更，继续使用现有套餐。",
            "done_en": "The booked plan change is cancelled; you stay on your plan.",
        }
    start = first_of_next_month(ctx.now.date()).isoformat()
    await ctx.account_change.update_line(pending_plan=inputs.plan, pending_plan_from=start)
    zh, en, fee = PLANS[inputs.plan]
    return {
        "plan": inputs.plan,
        "from": start,
        "done_zh": f"已为您预约“{zh}”（每月{yuan(fee)}元），{start}起生效，生效前可以取消。",
        "done_en": f"{en} ({yuan(fee)} yuan a month) starts on {start}; you can cancel it before then.",
    }


class AddonIn(TxInput):
    addon: Literal["data-10g", "caller-id", "ringback", "video-vip", "family-call"]


async def _subscribe_check(ctx: TxContext, inputs: AddonIn) -> None:
    ensure_in_service(ctx)
    if inputs.addon in ctx.account.addons:
        raise Refused(f"{inputs.addon} is already subscribed", "您已经订购了该业务")


@transaction("addon.subscribe", AddonIn, _subscribe_check)
async def addon_subscribe(ctx: TxContext, inputs: AddonIn) -> dict[str, Any]:
    """Switch the add-on on (charged monthly)."""
    await ctx.account_change.add_addon(inputs.addon)
    zh, en, fee = ADDONS[inputs.addon]
    return {"name_zh": zh, "name_en": en, "fee": yuan(fee)}


async def _unsubscribe_check(ctx: TxContext, inputs: AddonIn) -> None:
    ensure_not_closed(ctx)
    if inputs.addon not in ctx.account.addons:
        raise Refused(f"{inputs.addon} is not subscribed", "您没有订购该业务")


@transaction("addon.unsubscribe", AddonIn, _unsubscribe_check)
async def addon_unsubscribe(ctx: TxContext, inputs: AddonIn) -> dict[str, Any]:
    """Switch the add-on off."""
    await ctx.account_change.remove_addon(inputs.addon)
    zh, en, _ = ADDONS[inputs.addon]
    return {"name_zh": zh, "name_en": en}


class SwitchIn(TxInput):
    enabled: bool


def _on(enabled: bool) -> dict[str, Any]:
    return {"on_zh": "开通" if enabled else "关闭", "on_en": "on" if enabled else "off"}


def _set_or_cleared(value: object, cleared: tuple[str, str], done: tuple[str, str]) -> dict[str, Any]:
    """The result words of a setting that ``None`` clears."""
    zh, en = cleared if value is None else done
    return {"done_zh": zh, "done_en": en}


async def _roaming_check(ctx: TxContext, inputs: SwitchIn) -> None:
    ensure_in_service(ctx)
    if inputs.enabled and ctx.account.in_arrears:
        raise Refused("international roaming needs the arrears paid first", "开通国际漫游前请先缴清欠费")


@transaction("roaming.set", SwitchIn, _roaming_check)
async def roaming_set(ctx: TxContext, inputs: SwitchIn) -> dict[str, Any]:
    """International roaming on or off."""
    await ctx.account_change.update_line(roaming=inputs.enabled)
    return _on(inputs.enabled)


class ForwardingIn(TxInput):
    target: Msisdn | None = Field(None, description="the number to forward to; null clears forwarding")


async def _forwarding_check(ctx: TxContext, inputs: ForwardingIn) -> None:
    ensure_in_service(ctx)
    if inputs.target == ctx.account.msisdn:
        raise Refused("a line cannot forward to itself", "不能转移到本机号码")


@transaction("forwarding.set", ForwardingIn, _forwarding_check)
async def forwarding_set(ctx: TxContext, inputs: ForwardingIn) -> dict[str, Any]:
    """Forward calls to the target, or (no target) stop forwarding."""
    await ctx.account_change.update_line(forwarding=inputs.target)
    done = (f"来电将转移到 {inputs.target}。", f"Calls are now forwarded to {inputs.target}.")
    words = _set_or_cleared(inputs.target, ("呼叫转移已取消。", "Call forwarding is off."), done)
    return words if inputs.target is None else {"target": inputs.target, **words}


class DatacapIn(TxInput):
    cap_mb: int | None = Field(None, ge=100, le=1_000_000, description="monthly cap in MB; null clears it")


@transaction("datacap.set", DatacapIn, not_closed)
async def datacap_set(ctx: TxContext, inputs: DatacapIn) -> dict[str, Any]:
    """Set the monthly data cap, or (no cap) remove it."""
    await ctx.account_change.update_line(datacap_mb=inputs.cap_mb)
    done = (f"每月流量用到 {inputs.cap_mb}MB 后将自动停止。", f"Mobile data stops each month after {inputs.cap_mb} MB.")
    return _set_or_cleared(inputs.cap_mb, ("流量封顶已取消。", "The data cap is off."), done)


@transaction("spamblock.set", SwitchIn, not_closed)
async def spamblock_set(ctx: TxContext, inputs: SwitchIn) -> dict[str, Any]:
    """Spam-call blocking on or off."""
    await ctx.account_change.update_line(spamblock=inputs.enabled)
    return _on(inputs.enabled)


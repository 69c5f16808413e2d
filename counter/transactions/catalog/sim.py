"""The SIM's transactions: the PUK look-up, reporting it lost and cancelling that, a new SIM."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from counter.accounts import LineStatus
from counter.transactions.catalog.common import NoInput, ensure_not_closed, not_closed, tail
from counter.transactions.catalog.line import STATUS_ZH
from counter.transactions.spec import Refused, TxContext, TxInput, transaction


async def _puk_check(ctx: TxContext, inputs: Any) -> None:
    ensure_not_closed(ctx)
    if ctx.account.sim is None:
        raise Refused("the line has no active SIM: replace the SIM instead (sim.replace)", "该号码没有有效的SIM卡")


@transaction("puk.query", NoInput, _puk_check)
async def puk_query(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    """The SIM's PUK (for the customer's eyes only)."""
    sim = ctx.account.sim
    assert sim is not None
    return {"puk": sim.puk, "iccid_tail": tail(sim.iccid)}


class ReportLossIn(TxInput):
    note: str = Field("", max_length=200, description="where/when it was lost (optional)")


async def _loss_check(ctx: TxContext, inputs: Any) -> None:
    ensure_not_closed(ctx)
    if ctx.account.status == LineStatus.LOST:
        raise Refused("the SIM is already reported lost", "该号码已经挂失")


@transaction("sim.report_loss", ReportLossIn, _loss_check)
async def sim_report_loss(ctx: TxContext, inputs: ReportLossIn) -> dict[str, Any]:
    """Bar the line at once; the status it had is kept for :func:`sim_cancel_loss`."""
    await ctx.account_change.update_line(status=LineStatus.LOST, status_before_loss=ctx.account.status)
    return {"msisdn": ctx.account.msisdn}


async def _cancel_loss_check(ctx: TxContext, inputs: NoInput) -> None:
    if ctx.account.status != LineStatus.LOST:
        raise Refused("the SIM is not reported lost", "该号码没有挂失")


@transaction("sim.cancel_loss", NoInput, _cancel_loss_check)
async def sim_cancel_loss(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    """The line goes back to the status it had before the loss report."""
    before = ctx.account.status_before_loss or LineStatus.ACTIVE
    await ctx.account_change.update_line(status=before, status_before_loss=None)
    return {"msisdn": ctx.account.msisdn, "status": before.value, "status_zh": STATUS_ZH[before]}


class ReplaceSimIn(TxInput):
    esim: bool = False
    reason: Literal["lost", "damaged", "upgrade", "esim"] = "lost"


@transaction("sim.replace", ReplaceSimIn, not_closed)
async def sim_replace(ctx: TxContext, inputs: ReplaceSimIn) -> dict[str, Any]:
    """A new ICCID and PUK; the old SIM stops working, and a loss report ends with it."""
    change = ctx.account_change
    sim = await change.replace_sim(inputs.esim)
    if ctx.account.status == LineStatus.LOST:
        await change.update_line(status=ctx.account.status_before_loss or LineStatus.ACTIVE, status_before_loss=None)
    return {"iccid": sim.iccid, "puk": sim.puk, "iccid_tail": tail(sim.iccid), "esim": sim.esim}

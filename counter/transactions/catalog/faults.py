"""Faults and complaints: work orders for broadband/TV faults and complaints, and video fault guidance."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from counter.guidance import SCRIPTS, GuidanceError, GuidanceRuns
from counter.transactions.catalog.common import not_closed, utc_minutes
from counter.transactions.spec import Refused, TxContext, TxInput, transaction
from counter.workorders import WorkOrder


async def open_work_order(ctx: TxContext, kind: str, category: str, summary: str) -> WorkOrder:
    """A work order on the session's line, opened in the transaction's database transaction."""
    return await ctx.workorders.create(
        ctx.tx,
        kind=kind,
        category=category,
        summary=summary,
        created_by=ctx.actor,
        session_id=ctx.session.id,
        account=ctx.account.msisdn,
        now=ctx.now,
    )


class FaultIn(TxInput):
    service: Literal["broadband", "tv"]
    description: str = Field(min_length=4, max_length=1000)


@transaction("fault.report", FaultIn, not_closed)
async def fault_report(ctx: TxContext, inputs: FaultIn) -> dict[str, Any]:
    """A repair work order for the service."""
    order = await open_work_order(ctx, "fault", inputs.service, inputs.description)
    return {"order_id": order.id, "due": utc_minutes(order.due_at)}


class GuideIn(TxInput):
    script: str = Field(description="a guidance script code from the knowledge base")
    run_id: int | None = Field(None, description="the guidance run the steps were pushed in, if any")
    steps_done: list[str] = Field(default_factory=list, max_length=50)
    outcome: Literal["solved", "not_solved", "abandoned"]
    open_work_order: bool = False

    @model_validator(mode="after")
    def _known(self) -> GuideIn:
        script = SCRIPTS.get(self.script)
        if script is None:
            raise ValueError(f"no guidance script {self.script!r}; scripts: {', '.join(SCRIPTS)}")
        known = {s.id for s in script.steps}
        unknown = [s for s in self.steps_done if s not in known]
        if unknown:
            raise ValueError(f"steps {unknown} are not in {self.script}; its steps: {', '.join(sorted(known))}")
        if self.open_work_order and self.outcome == "solved":
            raise ValueError("a solved fault needs no work order")
        return self


async def _guide_check(ctx: TxContext, inputs: GuideIn) -> None:
    if inputs.open_work_order and ctx.change is None:
        raise Refused("a work order needs the customer's line: claim it in the session first", "请先确认办理的号码")


@transaction("fault.guide", GuideIn, _guide_check)
async def fault_guide(ctx: TxContext, inputs: GuideIn) -> dict[str, Any]:
    """Record the guidance run (with a technician's work order when it did not solve the fault)."""
    order_id = None
    if inputs.open_work_order:
        script = SCRIPTS[inputs.script]
        summary = f"{script.title_en}: not solved by video guidance; steps done: {', '.join(inputs.steps_done)}"
        order_id = (await open_work_order(ctx, "guidance", script.service, summary)).id
    try:
        run_id = await GuidanceRuns.finish(
            ctx.tx, ctx.session.id, inputs.script, inputs.run_id, inputs.steps_done, inputs.outcome, order_id
        )
    except GuidanceError as exc:
        raise Refused(f"{exc}: start a new run, or leave run_id out", "本次辅导记录已结束") from exc
    if inputs.outcome == "solved":
        done = ("问题已解决，感谢您的配合。", "Fixed. Thank you for your help.")
    elif order_id is not None:
        done = (f"已为您登记上门维修，单号 {order_id}。", f"A technician visit is booked, work order {order_id}.")
    else:
        done = ("本次辅导已记录。", "This guidance session is recorded.")
    return {"run_id": run_id, "order_id": order_id, "done_zh": done[0], "done_en": done[1]}


class ComplaintIn(TxInput):
    category: Literal["billing", "network", "service", "marketing", "other"]
    description: str = Field(min_length=4, max_length=2000)


async def _complaint_check(ctx: TxContext, inputs: ComplaintIn) -> None:
    existing = await ctx.tx.fetchval(
        "SELECT id FROM work_orders WHERE account = $1 AND kind = 'complaint' AND category = $2"
        " AND status <> 'closed' ORDER BY id LIMIT 1",
        ctx.account.msisdn,
        inputs.category,
    )
    if existing is not None:
        raise Refused(
            f"an open {inputs.category} complaint exists already (work order {existing}): add to it instead",
            f"您已有同类投诉在处理中（单号{existing}）",
        )


@transaction("complaint.register", ComplaintIn, _complaint_check)
async def complaint_register(ctx: TxContext, inputs: ComplaintIn) -> dict[str, Any]:
    """A complaint work order with a call-back due date."""
    order = await open_work_order(ctx, "complaint", inputs.category, inputs.description)
    assert order.callback_due_at is not None
    return {"order_id": order.id, "callback": utc_minutes(order.callback_due_at)}

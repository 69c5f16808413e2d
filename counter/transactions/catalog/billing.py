"""Money and points: balance, bills, payments, invoices, the credit limit, loyalty points."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from counter.accounts import Bill
from counter.transactions.catalog.common import Email, Month, NoInput, ensure_not_closed, yuan
from counter.transactions.spec import Refused, TxContext, TxInput, transaction

#: Rewards: code -> (zh-CN, English, points).
REWARDS: dict[str, tuple[str, str, int]] = {
    "credit-10": ("10元话费", "10 yuan call credit", 1000),
    "data-1g": ("1GB流量", "1 GB data", 500),
    "gift-towel": ("毛巾礼品", "Towel gift", 800),
}


@transaction("balance.query", NoInput)
async def balance_query(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    """The account's balance."""
    return {"balance": yuan(ctx.account.balance_cents), "balance_cents": ctx.account.balance_cents}


async def _bill_of(ctx: TxContext, month: str) -> Bill:
    bill = await ctx.account_change.bill(month)
    if bill is None:
        raise Refused(f"there is no bill for {month}", f"没有{month}的账单")
    return bill


class BillIn(TxInput):
    month: Month | None = Field(None, description="default: the latest bill")


async def _bill_check(ctx: TxContext, inputs: BillIn) -> None:
    if inputs.month is not None:
        await _bill_of(ctx, inputs.month)
    elif not await ctx.account_change.bills(1):
        raise Refused("there are no bills on this line yet", "该号码还没有账单")


@transaction("bill.query", BillIn, _bill_check)
async def bill_query(ctx: TxContext, inputs: BillIn) -> dict[str, Any]:
    """One month's bill (the latest by default)."""
    bill = await _bill_of(ctx, inputs.month) if inputs.month else (await ctx.account_change.bills(1))[0]
    return {
        "month": bill.month,
        "amount": yuan(bill.amount_cents),
        "paid": bill.paid,
        "items": list(bill.items),
        "paid_zh": "已缴清" if bill.paid else "尚未缴费",
        "paid_en": "paid" if bill.paid else "not paid yet",
    }


class PaymentsIn(TxInput):
    limit: int = Field(10, ge=1, le=50)


@transaction("payment.history", PaymentsIn)
async def payment_history(ctx: TxContext, inputs: PaymentsIn) -> dict[str, Any]:
    """The latest payments, newest first."""
    payments = await ctx.account_change.payments(inputs.limit)
    return {
        "count": len(payments),
        "total": yuan(sum(p.amount_cents for p in payments)),
        "payments": [{"paid_at": p.paid_at, "amount": yuan(p.amount_cents), "channel": p.channel} for p in payments],
    }


class InvoiceIn(TxInput):
    month: Month
    email: Email | None = None


async def _invoice_check(ctx: TxContext, inputs: InvoiceIn) -> None:
    if not (await _bill_of(ctx, inputs.month)).paid:
        raise Refused(
            f"the {inputs.month} bill is not paid yet: an invoice is issued once it is paid", "账单未缴清，暂不能开票"
        )
    if not (inputs.email or ctx.account.contact_email):
        raise Refused("no e-mail address: give one to send the invoice to", "请提供接收发票的电子邮箱")


@transaction("invoice.issue", InvoiceIn, _invoice_check)
async def invoice_issue(ctx: TxContext, inputs: InvoiceIn) -> dict[str, Any]:
    """The paid month's e-invoice: issued once, the same one returned after that."""
    change = ctx.account_change
    invoice = await change.invoice(inputs.month)
    if invoice is None:
        bill = await _bill_of(ctx, inputs.month)
        invoice = await change.issue_invoice(inputs.month, bill.amount_cents, inputs.email or ctx.account.contact_email)
    return {"invoice_id": invoice.id, "month": invoice.month, "amount": yuan(invoice.amount_cents)}


@transaction("credit.query", NoInput)
async def credit_query(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    """The account's credit limit."""
    return {"credit": yuan(ctx.account.credit_limit_cents)}


@transaction("points.query", NoInput)
async def points_query(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    """The loyalty points the account has."""
    return {"points": ctx.account.points}


class RedeemIn(TxInput):
    reward: Literal["credit-10", "data-1g", "gift-towel"]
    quantity: int = Field(1, ge=1, le=10)


async def _redeem_check(ctx: TxContext, inputs: RedeemIn) -> None:
    ensure_not_closed(ctx)
    cost = REWARDS[inputs.reward][2] * inputs.quantity
    if ctx.account.points < cost:
        raise Refused(f"this needs {cost} points; the account has {ctx.account.points}", f"积分不足：需要{cost}分")


@transaction("points.redeem", RedeemIn, _redeem_check)
async def points_redeem(ctx: TxContext, inputs: RedeemIn) -> dict[str, Any]:
    """Points debited for a reward (call credit is added to the balance); never below zero."""
    zh, en, each = REWARDS[inputs.reward]
    cost = each * inputs.quantity
    fields: dict[str, Any] = {"points": ctx.account.points - cost}
    if inputs.reward == "credit-10":
        fields["balance_cents"] = ctx.account.balance_cents + 1000 * inputs.quantity
    await ctx.account_change.update_line(**fields)
    return {
        "cost": cost,
        "points": ctx.account.points,
        "reward_zh": f"{zh}×{inputs.quantity}",
        "reward_en": f"{en} x{inputs.quantity}",
    }

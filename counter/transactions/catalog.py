"""The 31 transactions of the counter (``shared/spec/transactions.md``): one entry and one handler each."""

from __future__ import annotations

import re
import secrets
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from counter.accounts import ADDONS, PLANS, LineStatus
from counter.guidance import SCRIPTS, GuidanceError, GuidanceRuns
from counter.levels import Level, other_person_refusal
from counter.transactions.spec import Refused, TxContext, TxInput, transaction
from identity.idcard import check_digit
from storage.timeutil import iso, parse_iso

Msisdn = Annotated[str, Field(pattern=r"^1[3-9]\d{9}$", description="an 11-digit mainland mobile number")]
Month = Annotated[str, Field(pattern=r"^20\d\d-(0[1-9]|1[0-2])$", description="a bill month, YYYY-MM")]
_WEAK = {"123456", "654321", "000000", "111111", "888888", "123123", "112233"}


def id_number_valid(number: str) -> bool:
    """Whether an 18-character resident ID number has a valid GB 11643 check character."""
    return bool(re.fullmatch(r"\d{17}[\dX]", number)) and check_digit(number[:17]) == number[17]


def checked_id_number(value: str) -> str:
    """``value`` upper-cased, if it is a valid resident ID number; else a ValueError for the schema."""
    value = value.upper()
    if not id_number_valid(value):
        raise ValueError("not a valid 18-character ID number (check character wrong)")
    return value


def check_card(number: str, birth: date, expires: date, expired: str) -> None:
    """The card's birth date agrees with its number and the card is still valid (``expired``: the reason)."""
    if number[6:14] != birth.strftime("%Y%m%d"):
        raise ValueError("the birth date does not match the ID number")
    if expires <= date.today():
        raise ValueError(expired)


def yuan(cents: int) -> str:
    return f"{cents / 100:.2f}"


def tail(text: str, n: int = 4) -> str:
    return text[-n:]


class NoInput(TxInput):
    """No input."""


# --- preconditions shared by many ----------------------------------------------------------------


def _not_closed(ctx: TxContext) -> None:
    if ctx.account.status == LineStatus.CLOSED:
        raise Refused("the line is closed: nothing can be changed on it", "该号码已销户，无法办理")


def _in_service(ctx: TxContext) -> None:
    status = ctx.account.status
    if status not in (LineStatus.ACTIVE, LineStatus.EMERGENCY):
        raise Refused(
            f"the line is {status.value}, not in service: resume it first",
            f"号码当前状态为{status.value}，请先恢复使用",
        )


async def not_closed(ctx: TxContext, inputs: Any) -> None:
    _not_closed(ctx)


async def in_service(ctx: TxContext, inputs: Any) -> None:
    _in_service(ctx)


# --- 1 puk.query ---------------------------------------------------------------------------------


async def _puk_check(ctx: TxContext, inputs: Any) -> None:
    _not_closed(ctx)
    if ctx.account.sim is None:
        raise Refused("the line has no active SIM: replace the SIM instead (sim.replace)", "该号码没有有效的SIM卡")


@transaction(
    "puk.query",
    "查询PUK码",
    "Look up PUK unlock code",
    Level.A3,
    NoInput,
    result_zh="您的PUK码是 {puk}（SIM卡号尾号 {iccid_tail}）。请按手机提示输入。",
    result_en="Your PUK code is {puk} (SIM number ending {iccid_tail}). Type it in when the phone asks.",
    receipt_zh="您于视频柜台查询了SIM卡（尾号{iccid_tail}）的PUK码。如非本人操作请致电10000。",
    check=_puk_check,
    secret_results=frozenset({"puk"}),
    notes="the SIM is locked, so no SMS code can reach the line: face + ID is the only path",
)
async def puk_query(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    sim = ctx.account.sim
    assert sim is not None
    return {"puk": sim.puk, "iccid_tail": tail(sim.iccid)}


# --- 2 line.suspend, 3 line.resume ----------------------------------------------------------------


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


@transaction(
    "line.suspend",
    "主动停机（报停）",
    "Voluntary suspension",
    Level.A2,
    SuspendIn,
    effect_zh="您的号码将停机：停机期间不能打电话、上网，可随时办理复机。",
    effect_en="Your line will be suspended: no calls or data until you resume it, which you can do at any time.",
    effect="active -> suspended",
    reversal="line.resume",
    check=_suspend_check,
    personal_fields=frozenset({"reason"}),
    result_zh="您的号码 {msisdn} 已停机{until_zh}。需要恢复时，随时可以办理复机。",
    result_en="Your number {msisdn} is suspended{until_en}. You can resume it at any time.",
)
async def line_suspend(ctx: TxContext, inputs: SuspendIn) -> dict[str, Any]:
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


@transaction(
    "line.resume",
    "复机",
    "Resume service",
    Level.A2,
    NoInput,
    effect_zh="您的号码将恢复正常使用。",
    effect_en="Your line will work again.",
    effect="suspended -> active",
    reversal="line.suspend",
    check=_resume_check,
    result_zh="您的号码 {msisdn} 已恢复使用。",
    result_en="Your number {msisdn} works again.",
)
async def line_resume(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    await ctx.account_change.update_line(status=LineStatus.ACTIVE, suspended_until=None)
    return {"msisdn": ctx.account.msisdn}


# --- 4 sim.report_loss, 5 sim.cancel_loss ----------------------------------------------------------


class ReportLossIn(TxInput):
    note: str = Field("", max_length=200, description="where/when it was lost (optional)")


async def _loss_check(ctx: TxContext, inputs: Any) -> None:
    _not_closed(ctx)
    if ctx.account.status == LineStatus.LOST:
        raise Refused("the SIM is already reported lost", "该号码已经挂失")


@transaction(
    "sim.report_loss",
    "挂失",
    "Report SIM lost/stolen",
    Level.A2,
    ReportLossIn,
    effect_zh="您的SIM卡将挂失，这张卡立即不能再用。",
    effect_en="Your SIM will be reported lost and stop working at once.",
    effect="sets the lost flag; the line is barred",
    reversal="sim.cancel_loss",
    check=_loss_check,
    personal_fields=frozenset({"note"}),
    result_zh="已为您挂失，号码 {msisdn} 已暂停使用，别人无法再用这张卡。",
    result_en="Reported lost: number {msisdn} is barred; nobody can use that SIM now.",
    notes="must be fast: protective action",
)
async def sim_report_loss(ctx: TxContext, inputs: ReportLossIn) -> dict[str, Any]:
    await ctx.account_change.update_line(status=LineStatus.LOST, status_before_loss=ctx.account.status)
    return {"msisdn": ctx.account.msisdn}


async def _cancel_loss_check(ctx: TxContext, inputs: NoInput) -> None:
    if ctx.account.status != LineStatus.LOST:
        raise Refused("the SIM is not reported lost", "该号码没有挂失")


@transaction(
    "sim.cancel_loss",
    "解挂",
    "Cancel loss report",
    Level.A3,
    NoInput,
    effect_zh="将解除挂失，号码恢复挂失前的状态。",
    effect_en="The loss report will be cancelled; the line goes back to how it was before.",
    effect="clears the lost flag",
    reversal="sim.report_loss",
    check=_cancel_loss_check,
    result_zh="已为您解除挂失，号码 {msisdn} 恢复为“{status_zh}”。",
    result_en="Loss report cancelled: number {msisdn} is {status} again.",
)
async def sim_cancel_loss(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    before = ctx.account.status_before_loss or LineStatus.ACTIVE
    await ctx.account_change.update_line(status=before, status_before_loss=None)
    return {"msisdn": ctx.account.msisdn, "status": before.value, "status_zh": STATUS_ZH[before]}


STATUS_ZH = {
    LineStatus.ACTIVE: "正常",
    LineStatus.SUSPENDED: "停机",
    LineStatus.SUSPENDED_ARREARS: "欠费停机",
    LineStatus.LOST: "挂失",
    LineStatus.EMERGENCY: "紧急开机",
    LineStatus.CLOSED: "已销户",
}


# --- 6 line.emergency_resume ------------------------------------------------------------------------

EMERGENCY_EVERY = timedelta(days=30)


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


@transaction(
    "line.emergency_resume",
    "紧急开机",
    "Emergency temporary resume",
    Level.A2,
    EmergencyIn,
    effect_zh="欠费停机的号码将临时开通（最长72小时），请在此之前缴清欠费。",
    effect_en="Your line, suspended for arrears, will work again for up to 72 hours; please pay the arrears by then.",
    effect="suspended_arrears -> emergency (active) for up to 72 h",
    reversal="automatic at the end time",
    check=_emergency_check,
    result_zh="已为您紧急开机，号码可以使用到 {until_local}。请在此之前缴清欠费 {arrears} 元。",
    result_en="Emergency resume done: the line works until {until_local}. Please pay the {arrears} yuan due"
    " before then.",
    notes="credit policy: once per 30 days",
)
async def line_emergency_resume(ctx: TxContext, inputs: EmergencyIn) -> dict[str, Any]:
    until = iso(ctx.now + timedelta(hours=inputs.hours))
    await ctx.account_change.update_line(status=LineStatus.EMERGENCY, emergency_until=until)
    await ctx.account_change.record_emergency(iso(ctx.now), until)
    return {
        "until": until,
        "until_local": until[:16].replace("T", " ") + " UTC",
        "arrears": yuan(max(0, -ctx.account.balance_cents)),
    }


# --- 7 sim.replace ------------------------------------------------------------------------------------


class ReplaceSimIn(TxInput):
    esim: bool = False
    reason: Literal["lost", "damaged", "upgrade", "esim"] = "lost"


@transaction(
    "sim.replace",
    "补换卡",
    "Replace SIM / eSIM",
    Level.A4,
    ReplaceSimIn,
    effect_zh="将为您补换新卡，旧卡立即作废。",
    effect_en="You will get a new SIM; the old one stops working at once.",
    effect="new ICCID and PUK; the old SIM stops working",
    reversal="none (replace again)",
    check=not_closed,
    result_zh="新卡已办好，卡号 {iccid}，PUK码 {puk}，旧卡已作废。",
    result_en="Your new SIM is ready: SIM number {iccid}, PUK code {puk}; the old SIM no longer works.",
    receipt_zh="您的新SIM卡（卡号尾号 {iccid_tail}）已办好，旧卡已作废。如非本人操作请致电10000。",
    secret_results=frozenset({"iccid", "puk"}),
    notes="SIM-swap fraud target: dual control",
)
async def sim_replace(ctx: TxContext, inputs: ReplaceSimIn) -> dict[str, Any]:
    change = ctx.account_change
    sim = await change.replace_sim(inputs.esim)
    if ctx.account.status == LineStatus.LOST:
        await change.update_line(status=ctx.account.status_before_loss or LineStatus.ACTIVE, status_before_loss=None)
    return {"iccid": sim.iccid, "puk": sim.puk, "iccid_tail": tail(sim.iccid), "esim": sim.esim}


# --- 8 password.reset, 9 password.change -------------------------------------------------------------


@transaction(
    "password.reset",
    "服务密码重置",
    "Reset service password",
    Level.A3,
    NoInput,
    effect_zh="将生成新的服务密码，通过短信发到您的手机，原密码作废。",
    effect_en="A new service password will be sent by SMS to your phone; the old one stops working.",
    effect="a new service password, sent by SMS to the line",
    check=not_closed,
    result_zh="新的服务密码已通过短信发到 {msisdn_masked}，请查收后尽快修改。",
    result_en="A new service password was sent by SMS to {msisdn_masked}; please change it soon.",
    receipt_zh="您的新服务密码已重置，请查看本短信，并尽快修改。",
)
async def password_reset(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    while (password := "".join(secrets.choice("0123456789") for _ in range(6))) in _WEAK:
        pass
    await ctx.account_change.set_password(password)
    ctx.sms_extra = f"新服务密码：{password}"
    return {"msisdn_masked": ctx.account.msisdn[:3] + "****" + ctx.account.msisdn[-4:]}


class PasswordChangeIn(TxInput):
    old_password: str = Field(min_length=6, max_length=6)
    new_password: str = Field(pattern=r"^\d{6}$", description="six digits")

    @model_validator(mode="after")
    def _strong(self) -> PasswordChangeIn:
        if self.new_password in _WEAK or len(set(self.new_password)) == 1:
            raise ValueError("the new password is too easy to guess: avoid 123456, 888888 and the like")
        if self.new_password == self.old_password:
            raise ValueError("the new password must differ from the old one")
        return self


async def _password_change_check(ctx: TxContext, inputs: PasswordChangeIn) -> None:
    _not_closed(ctx)
    if not await ctx.account_change.verify_password(inputs.old_password):
        raise Refused("the old service password is wrong", "原服务密码不正确")


@transaction(
    "password.change",
    "服务密码修改",
    "Change service password",
    Level.A1,
    PasswordChangeIn,
    effect_zh="您的服务密码将改为新密码。",
    effect_en="Your service password will change to the new one.",
    effect="a new service password",
    check=_password_change_check,
    secret_fields=frozenset({"old_password", "new_password"}),
    result_zh="服务密码已修改成功。",
    result_en="Your service password has been changed.",
    notes="old password or code",
)
async def password_change(ctx: TxContext, inputs: PasswordChangeIn) -> dict[str, Any]:
    await ctx.account_change.set_password(inputs.new_password)
    return {}


# --- 10 realname.update, 11 contact.update -------------------------------------------------------------


class RealnameIn(TxInput):
    name: str = Field(min_length=1, max_length=50)
    id_number: str = Field(description="the 18-character ID number read from the captured card")
    birth_date: date
    id_expires: date

    _valid = field_validator("id_number")(checked_id_number)

    @model_validator(mode="after")
    def _consistent(self) -> RealnameIn:
        check_card(self.id_number, self.birth_date, self.id_expires, "the ID card has expired: a valid card is needed")
        return self


async def _realname_check(ctx: TxContext, inputs: RealnameIn) -> None:
    _not_closed(ctx)
    if inputs.id_number != ctx.account.holder.id_number:
        raise Refused(
            "the card's number is not the holder's: a different person means a transfer (owner.transfer)",
            "证件号码与机主不一致，如需更换机主请办理过户",
        )


@transaction(
    "realname.update",
    "实名信息更新",
    "Update real-name record",
    Level.A3,
    RealnameIn,
    effect_zh="您的实名登记信息将按本次拍摄的身份证更新。",
    effect_en="Your real-name record will be updated from the ID card captured in this call.",
    effect="ID details re-registered from the captured card",
    check=_realname_check,
    personal_fields=frozenset({"name", "id_number", "birth_date", "id_expires"}),
    result_zh="您的实名信息已更新，证件有效期至 {id_expires}。",
    result_en="Your real-name record is updated; the ID is valid until {id_expires}.",
)
async def realname_update(ctx: TxContext, inputs: RealnameIn) -> dict[str, Any]:
    await ctx.account_change.update_holder(
        name=inputs.name, birth_date=inputs.birth_date.isoformat(), id_expires=inputs.id_expires.isoformat()
    )
    return {"id_expires": inputs.id_expires.isoformat()}


class ContactIn(TxInput):
    address: str | None = Field(None, min_length=4, max_length=200)
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=200)

    @model_validator(mode="after")
    def _something(self) -> ContactIn:
        if self.address is None and self.email is None:
            raise ValueError("give a new address, a new e-mail, or both")
        return self


@transaction(
    "contact.update",
    "联系信息变更",
    "Change contact address/e-mail",
    Level.A2,
    ContactIn,
    effect_zh="您的联系地址或邮箱将更新。",
    effect_en="Your contact address or e-mail will be updated.",
    effect="contact address/e-mail",
    check=not_closed,
    personal_fields=frozenset({"address", "email"}),
    result_zh="您的联系信息已更新。",
    result_en="Your contact details are updated.",
)
async def contact_update(ctx: TxContext, inputs: ContactIn) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if inputs.address is not None:
        fields["contact_address"] = inputs.address
    if inputs.email is not None:
        fields["contact_email"] = inputs.email
    await ctx.account_change.update_line(**fields)
    return {}


# --- 12-17 queries and invoices --------------------------------------------------------------------------


@transaction(
    "balance.query",
    "余额查询",
    "Balance",
    Level.A1,
    NoInput,
    result_zh="您的账户余额是 {balance} 元。",
    result_en="Your balance is {balance} yuan.",
)
async def balance_query(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    return {"balance": yuan(ctx.account.balance_cents), "balance_cents": ctx.account.balance_cents}


class BillIn(TxInput):
    month: Month | None = Field(None, description="default: the latest bill")


async def _bill_check(ctx: TxContext, inputs: BillIn) -> None:
    if inputs.month is None:
        if not await ctx.account_change.bills(1):
            raise Refused("there are no bills on this line yet", "该号码还没有账单")
    elif await ctx.account_change.bill(inputs.month) is None:
        raise Refused(f"there is no bill for {inputs.month}", f"没有{inputs.month}的账单")


@transaction(
    "bill.query",
    "账单查询",
    "Monthly bill",
    Level.A1,
    BillIn,
    check=_bill_check,
    result_zh="{month} 月账单 {amount} 元，{paid_zh}。",
    result_en="Your {month} bill is {amount} yuan, {paid_en}.",
    notes="busiest at month-end",
)
async def bill_query(ctx: TxContext, inputs: BillIn) -> dict[str, Any]:
    change = ctx.account_change
    bill = await change.bill(inputs.month) if inputs.month else (await change.bills(1))[0]
    assert bill is not None
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


@transaction(
    "payment.history",
    "缴费记录",
    "Payment history",
    Level.A1,
    PaymentsIn,
    result_zh="最近 {count} 笔缴费，合计 {total} 元。",
    result_en="Last {count} payments, {total} yuan in all.",
)
async def payment_history(ctx: TxContext, inputs: PaymentsIn) -> dict[str, Any]:
    payments = await ctx.account_change.payments(inputs.limit)
    return {
        "count": len(payments),
        "total": yuan(sum(p.amount_cents for p in payments)),
        "payments": [{"paid_at": p.paid_at, "amount": yuan(p.amount_cents), "channel": p.channel} for p in payments],
    }


class InvoiceIn(TxInput):
    month: Month
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=200)


async def _invoice_check(ctx: TxContext, inputs: InvoiceIn) -> None:
    bill = await ctx.account_change.bill(inputs.month)
    if bill is None:
        raise Refused(f"there is no bill for {inputs.month}", f"没有{inputs.month}的账单")
    if not bill.paid:
        raise Refused(
            f"the {inputs.month} bill is not paid yet: an invoice is issued once it is paid", "账单未缴清，暂不能开票"
        )
    if not (inputs.email or ctx.account.contact_email):
        raise Refused("no e-mail address: give one to send the invoice to", "请提供接收发票的电子邮箱")


@transaction(
    "invoice.issue",
    "电子发票",
    "Issue e-invoice",
    Level.A1,
    InvoiceIn,
    effect_zh="将开具电子发票并发送到邮箱。",
    effect_en="An e-invoice will be issued and e-mailed.",
    effect="an invoice record (one per bill month)",
    check=_invoice_check,
    personal_fields=frozenset({"email"}),
    result_zh="{month} 月电子发票（{amount} 元）已发送到您的邮箱。",
    result_en="The e-invoice for {month} ({amount} yuan) was sent to your e-mail.",
    notes="idempotent per bill month",
)
async def invoice_issue(ctx: TxContext, inputs: InvoiceIn) -> dict[str, Any]:
    change = ctx.account_change
    invoice = await change.invoice(inputs.month)
    if invoice is None:
        bill = await change.bill(inputs.month)
        assert bill is not None
        invoice = await change.issue_invoice(inputs.month, bill.amount_cents, inputs.email or ctx.account.contact_email)
    return {"invoice_id": invoice.id, "month": invoice.month, "amount": yuan(invoice.amount_cents)}


@transaction(
    "credit.query",
    "信用额度查询",
    "Credit limit",
    Level.A1,
    NoInput,
    result_zh="您的信用额度是 {credit} 元。",
    result_en="Your credit limit is {credit} yuan.",
)
async def credit_query(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    return {"credit": yuan(ctx.account.credit_limit_cents)}


@transaction(
    "points.query",
    "积分查询",
    "Loyalty points",
    Level.A1,
    NoInput,
    result_zh="您现有积分 {points} 分。",
    result_en="You have {points} points.",
)
async def points_query(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    return {"points": ctx.account.points}


# --- 18 points.redeem -------------------------------------------------------------------------------------

#: Rewards: code -> (zh-CN, English, points).
REWARDS: dict[str, tuple[str, str, int]] = {
    "credit-10": ("10元话费", "10 yuan call credit", 1000),
    "data-1g": ("1GB流量", "1 GB data", 500),
    "gift-towel": ("毛巾礼品", "Towel gift", 800),
}


class RedeemIn(TxInput):
    reward: Literal["credit-10", "data-1g", "gift-towel"]
    quantity: int = Field(1, ge=1, le=10)


async def _redeem_check(ctx: TxContext, inputs: RedeemIn) -> None:
    _not_closed(ctx)
    cost = REWARDS[inputs.reward][2] * inputs.quantity
    if ctx.account.points < cost:
        raise Refused(f"this needs {cost} points; the account has {ctx.account.points}", f"积分不足：需要{cost}分")


@transaction(
    "points.redeem",
    "积分兑换",
    "Redeem points",
    Level.A2,
    RedeemIn,
    effect_zh="将扣除相应积分兑换礼品。",
    effect_en="The points will be taken off your points balance for the reward.",
    effect="points debited",
    check=_redeem_check,
    result_zh="已用 {cost} 积分兑换 {reward_zh}，剩余 {points} 分。",
    result_en="{cost} points redeemed for {reward_en}; {points} points left.",
    notes="must never go negative",
)
async def points_redeem(ctx: TxContext, inputs: RedeemIn) -> dict[str, Any]:
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


# --- 19 plan.change, 20/21 add-ons ---------------------------------------------------------------------


class PlanIn(TxInput):
    plan: Literal["basic-19", "silver-39", "5g-59", "5g-129"]


async def _plan_check(ctx: TxContext, inputs: PlanIn) -> None:
    _not_closed(ctx)
    account = ctx.account
    if inputs.plan == account.plan and account.pending_plan is None:
        raise Refused(f"the line is on {inputs.plan} already", "您已经在使用这个套餐")
    if inputs.plan == account.pending_plan:
        raise Refused(f"a change to {inputs.plan} is already booked", "已预约变更为该套餐")


def first_of_next_month(today: date) -> date:
    return (today.replace(day=1) + timedelta(days=32)).replace(day=1)


@transaction(
    "plan.change",
    "套餐变更",
    "Change plan",
    Level.A2,
    PlanIn,
    effect_zh="套餐将从下月1日起变更，生效前可以取消。",
    effect_en="Your plan will change on the 1st of next month; you can cancel before then.",
    effect="plan change booked for the 1st of next month",
    reversal="plan.change back to the current plan",
    check=_plan_check,
    result_zh="{done_zh}",
    result_en="{done_en}",
    notes="effective 1st of next month; cancellable until then",
)
async def plan_change(ctx: TxContext, inputs: PlanIn) -> dict[str, Any]:
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
    _in_service(ctx)
    if inputs.addon in ctx.account.addons:
        raise Refused(f"{inputs.addon} is already subscribed", "您已经订购了该业务")


@transaction(
    "addon.subscribe",
    "增值业务订购",
    "Subscribe add-on",
    Level.A2,
    AddonIn,
    effect_zh="将开通该业务，按月收费，可随时退订。",
    effect_en="The add-on will be switched on and charged monthly; you can cancel it any time.",
    effect="add-on subscribed",
    reversal="addon.unsubscribe",
    check=_subscribe_check,
    result_zh="已为您开通“{name_zh}”，每月 {fee} 元。",
    result_en="{name_en} is on, {fee} yuan a month.",
)
async def addon_subscribe(ctx: TxContext, inputs: AddonIn) -> dict[str, Any]:
    await ctx.account_change.add_addon(inputs.addon)
    zh, en, fee = ADDONS[inputs.addon]
    return {"name_zh": zh, "name_en": en, "fee": yuan(fee)}


async def _unsubscribe_check(ctx: TxContext, inputs: AddonIn) -> None:
    _not_closed(ctx)
    if inputs.addon not in ctx.account.addons:
        raise Refused(f"{inputs.addon} is not subscribed", "您没有订购该业务")


@transaction(
    "addon.unsubscribe",
    "增值业务退订",
    "Unsubscribe add-on",
    Level.A1,
    AddonIn,
    effect_zh="将退订该业务。",
    effect_en="The add-on will be cancelled.",
    effect="add-on removed",
    reversal="addon.subscribe",
    check=_unsubscribe_check,
    result_zh="已为您退订“{name_zh}”。",
    result_en="{name_en} is cancelled.",
)
async def addon_unsubscribe(ctx: TxContext, inputs: AddonIn) -> dict[str, Any]:
    await ctx.account_change.remove_addon(inputs.addon)
    zh, en, _ = ADDONS[inputs.addon]
    return {"name_zh": zh, "name_en": en}


# --- 22-25 switches -----------------------------------------------------------------------------------------


class SwitchIn(TxInput):
    enabled: bool


async def _roaming_check(ctx: TxContext, inputs: SwitchIn) -> None:
    _in_service(ctx)
    if inputs.enabled and ctx.account.in_arrears:
        raise Refused("international roaming needs the arrears paid first", "开通国际漫游前请先缴清欠费")


@transaction(
    "roaming.set",
    "国际漫游开关",
    "International roaming on/off",
    Level.A2,
    SwitchIn,
    effect_zh="国际漫游将按上面的选择开通或关闭。",
    effect_en="International roaming will be switched on or off as shown above.",
    effect="roaming on/off",
    reversal="roaming.set the other way",
    check=_roaming_check,
    result_zh="国际漫游已{on_zh}。",
    result_en="International roaming is {on_en}.",
)
async def roaming_set(ctx: TxContext, inputs: SwitchIn) -> dict[str, Any]:
    await ctx.account_change.update_line(roaming=inputs.enabled)
    return _on(inputs.enabled)


def _on(enabled: bool) -> dict[str, Any]:
    return {"on_zh": "开通" if enabled else "关闭", "on_en": "on" if enabled else "off"}


class ForwardingIn(TxInput):
    target: Msisdn | None = Field(None, description="the number to forward to; null clears forwarding")


async def _forwarding_check(ctx: TxContext, inputs: ForwardingIn) -> None:
    _in_service(ctx)
    if inputs.target == ctx.account.msisdn:
        raise Refused("a line cannot forward to itself", "不能转移到本机号码")


@transaction(
    "forwarding.set",
    "呼叫转移",
    "Call forwarding",
    Level.A2,
    ForwardingIn,
    effect_zh="打给您的电话将按上面的设置转移（或不再转移）。",
    effect_en="Calls to your number will be forwarded as shown above (or no longer forwarded).",
    effect="call forwarding set/cleared",
    reversal="forwarding.set with no target",
    check=_forwarding_check,
    personal_fields=frozenset({"target"}),
    result_zh="{done_zh}",
    result_en="{done_en}",
    notes="fraud risk: target number logged (purgeable part)",
)
async def forwarding_set(ctx: TxContext, inputs: ForwardingIn) -> dict[str, Any]:
    await ctx.account_change.update_line(forwarding=inputs.target)
    if inputs.target is None:
        return {"done_zh": "呼叫转移已取消。", "done_en": "Call forwarding is off."}
    return {
        "target": inputs.target,
        "done_zh": f"来电将转移到 {inputs.target}。",
        "done_en": f"Calls are now forwarded to {inputs.target}.",
    }


class DatacapIn(TxInput):
    cap_mb: int | None = Field(None, ge=100, le=1_000_000, description="monthly cap in MB; null clears it")


@transaction(
    "datacap.set",
    "流量封顶",
    "Data cap",
    Level.A1,
    DatacapIn,
    effect_zh="每月流量封顶将按上面设置（或取消）。",
    effect_en="Your monthly data cap will be set as shown above (or removed).",
    effect="data cap set/cleared",
    reversal="datacap.set with no cap",
    check=not_closed,
    result_zh="{done_zh}",
    result_en="{done_en}",
)
async def datacap_set(ctx: TxContext, inputs: DatacapIn) -> dict[str, Any]:
    await ctx.account_change.update_line(datacap_mb=inputs.cap_mb)
    if inputs.cap_mb is None:
        return {"done_zh": "流量封顶已取消。", "done_en": "The data cap is off."}
    return {
        "done_zh": f"每月流量用到 {inputs.cap_mb}MB 后将自动停止。",
        "done_en": f"Mobile data stops each month after {inputs.cap_mb} MB.",
    }


@transaction(
    "spamblock.set",
    "防骚扰拦截",
    "Spam-call blocking",
    Level.A1,
    SwitchIn,
    effect_zh="防骚扰拦截将按上面的选择开通或关闭。",
    effect_en="Spam-call blocking will be switched on or off as shown above.",
    effect="spam blocking on/off",
    reversal="spamblock.set the other way",
    check=not_closed,
    result_zh="防骚扰拦截已{on_zh}。",
    result_en="Spam-call blocking is {on_en}.",
)
async def spamblock_set(ctx: TxContext, inputs: SwitchIn) -> dict[str, Any]:
    await ctx.account_change.update_line(spamblock=inputs.enabled)
    return _on(inputs.enabled)


# --- 26 owner.transfer, 27 account.close ------------------------------------------------------------------


class TransferIn(TxInput):
    new_name: str = Field(min_length=1, max_length=50)
    new_id_number: str
    new_birth_date: date
    new_id_expires: date

    _valid = field_validator("new_id_number")(checked_id_number)

    @model_validator(mode="after")
    def _consistent(self) -> TransferIn:
        check_card(self.new_id_number, self.new_birth_date, self.new_id_expires, "the new holder's ID card has expired")
        return self


async def _transfer_check(ctx: TxContext, inputs: TransferIn) -> None:
    _not_closed(ctx)
    if inputs.new_id_number == ctx.account.holder.id_number:
        raise Refused("the new holder is the current holder", "新机主与原机主相同")
    if ctx.account.in_arrears:
        raise Refused("arrears must be paid before a transfer", "过户前请先缴清欠费")
    why = other_person_refusal(ctx.session, f"new_holder:{inputs.new_id_number}", "the new holder", "新机主")
    if why is not None:
        raise Refused(why.en, why.zh)


@transaction(
    "owner.transfer",
    "过户",
    "Transfer ownership",
    Level.A4,
    TransferIn,
    effect_zh="号码将过户给新机主，您将不再是这个号码的机主。",
    effect_en="The number will go to the new holder; you will no longer hold it.",
    effect="the holder changes",
    reversal="owner.transfer back",
    check=_transfer_check,
    personal_fields=frozenset({"new_name", "new_id_number", "new_birth_date", "new_id_expires"}),
    result_zh="号码 {msisdn} 已过户给新机主。",
    result_en="Number {msisdn} now belongs to the new holder.",
    notes="both holders verified in the session",
)
async def owner_transfer(ctx: TxContext, inputs: TransferIn) -> dict[str, Any]:
    await ctx.account_change.transfer_to(
        inputs.new_name, inputs.new_id_number, inputs.new_birth_date.isoformat(), inputs.new_id_expires.isoformat()
    )
    return {"msisdn": ctx.account.msisdn}


class CloseIn(TxInput):
    refund_to: Literal["original_payment", "bank_transfer"] = "original_payment"


async def _close_check(ctx: TxContext, inputs: CloseIn) -> None:
    _not_closed(ctx)
    if ctx.account.in_arrears:
        raise Refused(
            f"arrears of {yuan(-ctx.account.balance_cents)} yuan must be paid before closing", "销户前请先缴清欠费"
        )
    if ctx.account.status == LineStatus.LOST:
        raise Refused("the SIM is reported lost: cancel the loss report first", "号码挂失中，请先解挂")


@transaction(
    "account.close",
    "销户",
    "Close account",
    Level.A4,
    CloseIn,
    effect_zh="号码将销户，不能恢复；余额将退回。",
    effect_en="The number will be closed for good; the balance will be refunded.",
    effect="terminal: the line is closed, the balance refunded",
    reversal="none",
    check=_close_check,
    result_zh="号码 {msisdn} 已销户，余额 {refund} 元将退回。",
    result_en="Number {msisdn} is closed; {refund} yuan will be refunded.",
    notes="balance refund recorded",
)
async def account_close(ctx: TxContext, inputs: CloseIn) -> dict[str, Any]:
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


# --- 28 portability.check ----------------------------------------------------------------------------------


@transaction(
    "portability.check",
    "携号转网资格查询",
    "Number-portability eligibility",
    Level.A2,
    NoInput,
    check=not_closed,
    result_zh="{answer_zh}",
    result_en="{answer_en}",
)
async def portability_check(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    account = ctx.account
    blockers: list[tuple[str, str]] = []
    if account.in_arrears:
        blockers.append(("有欠费未缴清", "unpaid arrears"))
    if account.status in (LineStatus.LOST, LineStatus.SUSPENDED, LineStatus.SUSPENDED_ARREARS):
        blockers.append(("号码不在正常使用状态", "the line is not in normal service"))
    if account.pending_plan:
        blockers.append(("有未生效的套餐变更", "a plan change is pending"))
    if not blockers:
        return {"eligible": True, "answer_zh": "您的号码可以办理携号转网。", "answer_en": "Your number can be ported."}
    return {
        "eligible": False,
        "reasons": [en for _, en in blockers],
        "answer_zh": "暂不能携号转网：" + "；".join(zh for zh, _ in blockers) + "。",
        "answer_en": "Not portable yet: " + "; ".join(en for _, en in blockers) + ".",
    }


# --- 29-31 faults, guidance, complaints ---------------------------------------------------------------------


class FaultIn(TxInput):
    service: Literal["broadband", "tv"]
    description: str = Field(min_length=4, max_length=1000)


@transaction(
    "fault.report",
    "宽带/电视故障报修",
    "Report broadband/TV fault",
    Level.A1,
    FaultIn,
    effect_zh="将登记报修工单。",
    effect_en="A repair work order will be opened.",
    effect="opens a work order",
    check=not_closed,
    personal_fields=frozenset({"description"}),
    result_zh="已为您登记报修，单号 {order_id}，我们会在 {due} 前处理。",
    result_en="Fault registered as work order {order_id}; we will fix it by {due}.",
)
async def fault_report(ctx: TxContext, inputs: FaultIn) -> dict[str, Any]:
    order = await ctx.workorders.create(
        ctx.tx,
        kind="fault",
        category=inputs.service,
        summary=inputs.description,
        created_by=ctx.actor,
        session_id=ctx.session.id,
        account=ctx.account.msisdn,
        now=ctx.now,
    )
    return {"order_id": order.id, "due": order.due_at[:16].replace("T", " ") + " UTC"}


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


@transaction(
    "fault.guide",
    "远程故障视频辅导",
    "Remote fault video guidance",
    Level.A0,
    GuideIn,
    effect_zh="将记录本次故障辅导（如选择上门维修，同时登记工单）。",
    effect_en="This guidance session will be recorded (and a work order opened if a technician visit is booked).",
    needs_account=False,
    check=_guide_check,
    result_zh="{done_zh}",
    result_en="{done_en}",
    notes="steps come from a knowledge base (counter.guidance)",
)
async def fault_guide(ctx: TxContext, inputs: GuideIn) -> dict[str, Any]:
    order_id = None
    if inputs.open_work_order:
        script = SCRIPTS[inputs.script]
        order = await ctx.workorders.create(
            ctx.tx,
            kind="guidance",
            category=script.service,
            summary=f"{script.title_en}: not solved by video guidance; steps done: {', '.join(inputs.steps_done)}",
            created_by=ctx.actor,
            session_id=ctx.session.id,
            account=ctx.account.msisdn,
            now=ctx.now,
        )
        order_id = order.id
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


@transaction(
    "complaint.register",
    "投诉登记",
    "Register complaint",
    Level.A1,
    ComplaintIn,
    effect_zh="将登记投诉工单，我们会给您回电。",
    effect_en="A complaint work order will be opened; we will call you back.",
    effect="opens a work order with a call-back due date",
    check=_complaint_check,
    personal_fields=frozenset({"description"}),
    result_zh="您的投诉已登记，单号 {order_id}。我们会在 {callback} 前给您回电。",
    result_en="Your complaint is registered as {order_id}. We will call you back by {callback}.",
)
async def complaint_register(ctx: TxContext, inputs: ComplaintIn) -> dict[str, Any]:
    order = await ctx.workorders.create(
        ctx.tx,
        kind="complaint",
        category=inputs.category,
        summary=inputs.description,
        created_by=ctx.actor,
        session_id=ctx.session.id,
        account=ctx.account.msisdn,
        now=ctx.now,
    )
    assert order.callback_due_at is not None
    return {"order_id": order.id, "callback": order.callback_due_at[:16].replace("T", " ") + " UTC"}

"""Who holds the line and how they prove it: the service password, the real-name record, contact
details, and handing the line to a new holder."""

from __future__ import annotations

import re
import secrets
from datetime import date
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, Field, model_validator

from counter.levels import other_person_refusal
from counter.transactions.catalog.common import Email, NoInput, ensure_not_closed, not_closed
from counter.transactions.spec import Refused, TxContext, TxInput, transaction
from identity.idcard import check_digit

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


IdNumber = Annotated[str, AfterValidator(checked_id_number)]


class CardIn(TxInput):
    """Inputs read from a captured ID card, checked against each other (:func:`check_card`)."""

    #: The card's number, birth date and expiry fields, and the error for an expired card.
    card_fields: ClassVar[tuple[str, str, str]]
    expired: ClassVar[str]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        number, birth, expires = (getattr(self, name) for name in self.card_fields)
        check_card(number, birth, expires, self.expired)
        return self


@transaction("password.reset", NoInput, not_closed)
async def password_reset(ctx: TxContext, inputs: NoInput) -> dict[str, Any]:
    """A new random service password, sent by SMS to the line only."""
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
    ensure_not_closed(ctx)
    if not await ctx.account_change.verify_password(inputs.old_password):
        raise Refused("the old service password is wrong", "原服务密码不正确")


@transaction("password.change", PasswordChangeIn, _password_change_check)
async def password_change(ctx: TxContext, inputs: PasswordChangeIn) -> dict[str, Any]:
    """The customer's new service password replaces the old one."""
    await ctx.account_change.set_password(inputs.new_password)
    return {}


class RealnameIn(CardIn):
    card_fields = ("id_number", "birth_date", "id_expires")
    expired = "the ID card has expired: a valid card is needed"

    name: str = Field(min_length=1, max_length=50)
    id_number: IdNumber = Field(description="the 18-character ID number read from the captured card")
    birth_date: date
    id_expires: date


async def _realname_check(ctx: TxContext, inputs: RealnameIn) -> None:
    ensure_not_closed(ctx)
    if inputs.id_number != ctx.account.holder.id_number:
        raise Refused(
            "the card's number is not the holder's: a different person means a transfer (owner.transfer)",
            "证件号码与机主不一致，如需更换机主请办理过户",
        )


@transaction("realname.update", RealnameIn, _realname_check)
async def realname_update(ctx: TxContext, inputs: RealnameIn) -> dict[str, Any]:
    """The holder's record re-registered from the card captured in this call."""
    await ctx.account_change.update_holder(
        name=inputs.name, birth_date=inputs.birth_date.isoformat(), id_expires=inputs.id_expires.isoformat()
    )
    return {"id_expires": inputs.id_expires.isoformat()}


class ContactIn(TxInput):
    address: str | None = Field(None, min_length=4, max_length=200)
    email: Email | None = None

    @model_validator(mode="after")
    def _something(self) -> ContactIn:
        if self.address is None and self.email is None:
            raise ValueError("give a new address, a new e-mail, or both")
        return self


@transaction("contact.update", ContactIn, not_closed)
async def contact_update(ctx: TxContext, inputs: ContactIn) -> dict[str, Any]:
    """The contact address and/or e-mail given."""
    fields: dict[str, Any] = {}
    if inputs.address is not None:
        fields["contact_address"] = inputs.address
    if inputs.email is not None:
        fields["contact_email"] = inputs.email
    await ctx.account_change.update_line(**fields)
    return {}


class TransferIn(CardIn):
    card_fields = ("new_id_number", "new_birth_date", "new_id_expires")
    expired = "the new holder's ID card has expired"

    new_name: str = Field(min_length=1, max_length=50)
    new_id_number: IdNumber
    new_birth_date: date
    new_id_expires: date


async def _transfer_check(ctx: TxContext, inputs: TransferIn) -> None:
    ensure_not_closed(ctx)
    if inputs.new_id_number == ctx.account.holder.id_number:
        raise Refused("the new holder is the current holder", "新机主与原机主相同")
    if ctx.account.in_arrears:
        raise Refused("arrears must be paid before a transfer", "过户前请先缴清欠费")
    why = other_person_refusal(ctx.session, f"new_holder:{inputs.new_id_number}", "the new holder", "新机主")
    if why is not None:
        raise Refused(why.en, why.zh)


@transaction("owner.transfer", TransferIn, _transfer_check)
async def owner_transfer(ctx: TxContext, inputs: TransferIn) -> dict[str, Any]:
    """The line goes to the new holder, verified in this session."""
    await ctx.account_change.transfer_to(
        inputs.new_name, inputs.new_id_number, inputs.new_birth_date.isoformat(), inputs.new_id_expires.isoformat()
    )
    return {"msisdn": ctx.account.msisdn}

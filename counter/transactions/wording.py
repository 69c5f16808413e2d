"""What the customer's confirmation screen says about a request, worded by the server from the catalog.

The customer confirms what the server will run, never words an agent's browser sent: the title and
effect come from the :class:`~counter.transactions.spec.TxSpec`, each validated input is named and
its value worded here (zh-CN and English), masked where the catalog marks it personal or secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from counter.accounts import ADDONS, PLANS
from counter.guidance import SCRIPTS
from counter.transactions.catalog.billing import REWARDS
from counter.transactions.spec import TxSpec

Words = tuple[str, str]  # (zh-CN, English)

#: Inputs the customer is not asked about (bookkeeping of the console).
HIDDEN_INPUTS = frozenset({"run_id"})

def _priced(zh: str, en: str, cents: int) -> Words:
    return f"{zh}（每月{cents / 100:.2f}元）", f"{en} ({cents / 100:.2f} yuan a month)"


_ON_OFF: dict[Any, Words] = {True: ("开通", "on"), False: ("关闭", "off")}
_YES_NO: dict[Any, Words] = {True: ("是", "yes"), False: ("否", "no")}

#: Words for the values of enumerated inputs, by field.
VALUES: dict[str, dict[Any, Words]] = {
    "enabled": _ON_OFF,
    "esim": {True: ("eSIM", "eSIM"), False: ("实体SIM卡", "physical SIM card")},
    "open_work_order": _YES_NO,
    "reason_sim": {
        "lost": ("丢失", "lost"),
        "damaged": ("损坏", "damaged"),
        "upgrade": ("升级换卡", "upgrade"),
        "esim": ("改用eSIM", "switch to eSIM"),
    },
    "refund_to": {
        "original_payment": ("原路退回", "to the original payment"),
        "bank_transfer": ("银行转账", "bank transfer"),
    },
    "service": {"broadband": ("宽带", "broadband"), "tv": ("电视", "TV")},
    "outcome": {
        "solved": ("已解决", "solved"),
        "not_solved": ("未解决", "not solved"),
        "abandoned": ("中止", "stopped"),
    },
    "category": {
        "billing": ("计费", "billing"),
        "network": ("网络", "network"),
        "service": ("服务", "service"),
        "marketing": ("营销", "marketing"),
        "other": ("其他", "other"),
    },
    "plan": {code: _priced(zh, en, fee) for code, (zh, en, fee) in PLANS.items()},
    "addon": {code: _priced(zh, en, fee) for code, (zh, en, fee) in ADDONS.items()},
    "script": {code: (s.title_zh, s.title_en) for code, s in SCRIPTS.items()},
    "reward": {code: (f"{zh}（{n}积分）", f"{en} ({n} points)") for code, (zh, en, n) in REWARDS.items()},
}

#: What an empty (``None``) value means, by field.
NONE: dict[str, Words] = {
    "until": ("不设截止日期", "no end date"),
    "target": ("取消呼叫转移", "forwarding off"),
    "cap_mb": ("不封顶", "no cap"),
    "month": ("最近一期", "the latest"),
    "address": ("不变", "unchanged"),
    "email": ("不变", "unchanged"),
}


def _mask_name(value: str) -> str:
    return value[:1] + "*" * max(1, len(value) - 1)


def _mask_id(value: str) -> str:
    return value[:3] + "*" * max(1, len(value) - 7) + value[-4:]


def _mask_email(value: str) -> str:
    user, _, domain = value.partition("@")
    return f"{user[:1]}***@{domain}"


def _mask_text(value: str) -> str:
    return value[:4] + "…"


def _mask_date(value: str) -> str:
    return value[:4] + "-**-**"


@dataclass(frozen=True)
class Label:
    """How one input is named, and how its value is masked where the catalog marks it personal."""

    zh: str
    en: str
    mask: Callable[[str], str] = _mask_text
    unit: Words = ("", "")
    #: Shown unmasked on the customer's own confirmation screen although personal: what the customer
    #: must check digit by digit before agreeing (where their calls will go).
    in_full: bool = False


#: The name of every input of the catalog (``tests`` check that none is missing).
LABELS: dict[str, Label] = {
    "until": Label("停机截止日期", "until"),
    "reason": Label("原因", "reason"),
    "note": Label("说明", "note"),
    "hours": Label("时长", "for", unit=("小时", " hours")),
    "esim": Label("新卡类型", "new SIM"),
    "old_password": Label("原服务密码", "old service password"),
    "new_password": Label("新服务密码", "new service password"),
    "name": Label("姓名", "name", _mask_name),
    "id_number": Label("证件号码", "ID number", _mask_id),
    "birth_date": Label("出生日期", "date of birth", _mask_date),
    "id_expires": Label("证件有效期至", "ID valid until"),
    "address": Label("联系地址", "address"),
    "email": Label("电子邮箱", "e-mail", _mask_email),
    "month": Label("账单月份", "bill month"),
    "limit": Label("查询笔数", "how many", unit=("笔", "")),
    "plan": Label("新套餐", "new plan"),
    "addon": Label("业务", "add-on"),
    "enabled": Label("开关", "switch"),
    "target": Label("来电转移到", "forward calls to", in_full=True),
    "cap_mb": Label("每月流量上限", "monthly data cap", unit=("MB", " MB")),
    "new_name": Label("新机主姓名", "new holder's name", _mask_name),
    "new_id_number": Label("新机主证件号码", "new holder's ID number", _mask_id),
    "new_birth_date": Label("新机主出生日期", "new holder's date of birth", _mask_date),
    "new_id_expires": Label("新机主证件有效期至", "new holder's ID valid until"),
    "refund_to": Label("余额退款方式", "balance refunded"),
    "service": Label("报修业务", "service"),
    "description": Label("问题描述", "description"),
    "script": Label("辅导内容", "guidance"),
    "steps_done": Label("已完成步骤", "steps done", unit=("步", " steps")),
    "outcome": Label("结果", "outcome"),
    "open_work_order": Label("登记上门维修", "book a technician"),
    "category": Label("投诉类别", "category"),
    "reward": Label("兑换", "reward"),
    "quantity": Label("数量", "quantity", unit=("份", "")),
}

#: What a look-up does, when the catalog says nothing more.
READ_ONLY: Words = ("只是查询，不做任何更改。", "A look-up only: nothing is changed.")

#: The secrets of a result, named for the customer's screen.
SECRET_LABELS: dict[str, Words] = {
    "puk": ("PUK码", "PUK code"),
    "iccid": ("新SIM卡号（ICCID）", "new SIM number (ICCID)"),
}


def secret_json(name: str, value: str) -> dict[str, str]:
    """A secret of a result as the customer's own screen gets it: named in both languages."""
    zh, en = SECRET_LABELS[name]
    return {"name": name, "label_zh": zh, "label_en": en, "value": value}


def mask_msisdn(msisdn: str) -> str:
    return msisdn[:3] + "****" + msisdn[-4:]


def _value(spec: TxSpec, name: str, value: Any) -> Words:
    label = LABELS[name]
    if name in spec.secret_fields:
        return "******", "******"
    if value is None:
        return NONE.get(name, ("无", "none"))
    key = "reason_sim" if name == "reason" and spec.code == "sim.replace" else name
    if key in VALUES and value in VALUES[key]:
        return VALUES[key][value]
    if isinstance(value, list):
        value = len(value)
    text = str(value)
    if name in spec.personal_fields and not label.in_full:
        text = label.mask(text)
    elif len(text) > 80:
        text = text[:80] + "…"
    return text + label.unit[0], text + label.unit[1]


@dataclass(frozen=True)
class InputLine:
    """One input, named and worded for the customer."""

    field: str
    label_zh: str
    label_en: str
    value_zh: str
    value_en: str


@dataclass(frozen=True)
class ConfirmWords:
    """What the customer's confirmation screen shows about one request."""

    title_zh: str
    title_en: str
    what_zh: str
    what_en: str
    effect_zh: str
    effect_en: str
    inputs: tuple[InputLine, ...]

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)  # the input lines as dicts too
        return {**body, "inputs": list(body["inputs"])}


def input_lines(spec: TxSpec, inputs: Mapping[str, Any]) -> tuple[InputLine, ...]:
    """The request's inputs, in the schema's order, named and worded (masked where personal or secret)."""
    lines = []
    for name in spec.inputs.model_fields:
        if name in HIDDEN_INPUTS or name not in inputs:
            continue
        zh, en = _value(spec, name, inputs[name])
        label = LABELS[name]
        lines.append(InputLine(name, label.zh, label.en, zh, en))
    return tuple(lines)


def effect_words(spec: TxSpec) -> Words:
    """What running ``spec`` does, in the customer's words; where its secrets will be shown."""
    zh, en = (spec.effect_zh, spec.effect_en) if spec.effect_zh else READ_ONLY
    if spec.secret_results:
        names = [SECRET_LABELS[s] for s in sorted(spec.secret_results)]
        zh += "、".join(n[0] for n in names) + "只显示在您的屏幕上，工作人员看不到。"
        en += " The " + " and ".join(n[1] for n in names) + " will be shown on your screen only; staff cannot see it."
    return zh, en


def confirm_words(spec: TxSpec, inputs: Mapping[str, Any], msisdn: str | None) -> ConfirmWords:
    """The confirmation screen's words for a request of ``spec`` with validated ``inputs``."""
    lines = input_lines(spec, inputs)
    line_zh = "；".join(f"{i.label_zh}：{i.value_zh}" for i in lines)
    line_en = "; ".join(f"{i.label_en}: {i.value_en}" for i in lines)
    what_zh = f"为 {mask_msisdn(msisdn)} 办理：{spec.title_zh}" if msisdn else f"办理：{spec.title_zh}"
    what_en = f"{spec.title_en} for {mask_msisdn(msisdn)}" if msisdn else spec.title_en
    if lines:
        what_zh += f"（{line_zh}）"
        what_en += f" ({line_en})"
    effect_zh, effect_en = effect_words(spec)
    return ConfirmWords(spec.title_zh, spec.title_en, what_zh, what_en, effect_zh, effect_en, lines)

"""The confirmation screen's words come from the catalog: every input named, every choice worded,
personal and secret inputs masked; every secret of a result named and kept out of SMS receipts."""

from __future__ import annotations

import string
import typing

from counter.transactions import CATALOG
from counter.transactions.wording import HIDDEN_INPUTS, LABELS, SECRET_LABELS, VALUES, confirm_words


def _choices(annotation: object) -> list[object]:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return [c for arg in typing.get_args(annotation) for c in _choices(arg)]


def test_every_input_of_the_catalog_is_named_and_its_choices_worded() -> None:
    for spec in CATALOG.values():
        for name, info in spec.inputs.model_fields.items():
            if name in HIDDEN_INPUTS:
                continue
            assert name in LABELS, f"{spec.code}.{name} has no words for the confirmation screen"
            key = "reason_sim" if (spec.code, name) == ("sim.replace", "reason") else name
            for choice in _choices(info.annotation):
                assert choice in VALUES.get(key, {}), f"{spec.code}.{name}={choice!r} has no words"


def test_personal_and_secret_inputs_are_masked_and_the_line_too() -> None:
    words = confirm_words(
        CATALOG["password.change"], {"old_password": "246810", "new_password": "975318"}, "13800138000"
    )
    text = str(words.to_json())
    assert "246810" not in text and "975318" not in text and "******" in text
    assert "13800138000" not in text and "138****8000" in words.what_zh
    contact = confirm_words(CATALOG["contact.update"], {"email": "zhang@example.cn", "address": None}, None)
    assert "z***@example.cn" in contact.what_en and "zhang@" not in contact.what_en
    forwarding = confirm_words(CATALOG["forwarding.set"], {"target": "13912345678"}, "13800138000")
    # The customer must see where their calls would go: the target is not masked.
    assert "13912345678" in forwarding.what_zh and "13912345678" in forwarding.what_en
    assert "转移" in forwarding.effect_zh


def test_secret_results_are_named_and_never_in_an_sms_receipt() -> None:
    assert CATALOG["puk.query"].secret_results == {"puk"}
    assert CATALOG["sim.replace"].secret_results == {"puk", "iccid"}
    for spec in CATALOG.values():
        assert spec.secret_results <= set(SECRET_LABELS), spec.code
        receipt = spec.receipt_zh or spec.result_zh
        used = {f for _, f, _, _ in string.Formatter().parse(receipt) if f}
        assert not used & spec.secret_results, f"{spec.code}: the SMS receipt would carry a secret"
        if spec.secret_results:
            assert "只显示在您的屏幕上" in confirm_words(spec, {}, None).effect_zh, spec.code

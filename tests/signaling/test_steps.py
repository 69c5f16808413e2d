"""Step kinds: each has its params model, the consoles' pushes fit them, anything else is ``invalid``;
the customer's JSON answers read into their models."""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest

from signaling import protocol as p
from signaling.steps import (
    STEP_PARAMS,
    CaptureValue,
    ConfirmParams,
    ConfirmValue,
    InfoParams,
    LivenessValue,
    Words,
    step_value,
)

#: What the agent's console (web/static/agent/main.js) and the tests push, by kind.
PUSHED: list[tuple[str, dict[str, Any]]] = [
    ("face_capture", {"timeout_s": 90}),
    ("face_capture", {}),
    ("liveness", {"sequence": ["turn_left", "blink"], "text_zh": "请转头", "text_en": "Turn", "text": "请转头",
                  "deadline": 1_900_000_000.5}),
    ("show_id", {"timeout_s": 120}),
    ("show_id", {"side": "front"}),
    ("switch_camera", {"facing": "user"}),
    ("confirm", {"transaction_id": 7}),
    ("info", {"text_zh": "请看路由器", "text_en": "Look at the router", "text": "请看路由器"}),
    ("info", {"text": "请把手机放稳", "press": "不用按任何键"}),
    ("info", {"title": "done", "result": {"ok": True, "title_zh": "已办理", "text_en": "Done"}}),
    ("sign", {}),
]


def _push(step: str, params: dict[str, Any]) -> str:
    return json.dumps({"type": "push_step", "call_id": "c1", "step_id": "s1", "step": step, "params": params})


def test_every_step_kind_has_its_params_model() -> None:
    assert set(typing.get_args(p.PushStep.model_fields["step"].annotation)) == set(STEP_PARAMS)


@pytest.mark.parametrize(("step", "params"), PUSHED)
def test_what_the_consoles_push_fits_its_kind(step: str, params: dict[str, Any]) -> None:
    message = p.parse(_push(step, params))
    assert isinstance(message, p.PushStep) and message.params == params  # sent on as it came


@pytest.mark.parametrize(
    ("step", "params"),
    [
        ("confirm", {"transaction_id": 7, "title_zh": "余额查询"}),
        ("confirm", {"transaction_id": True}),
        ("confirm", {"transaction_id": "7"}),
        ("confirm", {}),
        ("face_capture", {"timeout_s": "soon"}),
        ("switch_camera", {"facing": "sideways"}),
        ("liveness", {"sequence": ["<script>"]}),
        ("info", {"text": "x", "html": "<b>x</b>"}),
    ],
)
def test_params_that_do_not_fit_their_kind_are_invalid(step: str, params: dict[str, Any]) -> None:
    with pytest.raises(p.ProtocolError) as err:
        p.parse(_push(step, params))
    assert err.value.code == "invalid"
    if step == "confirm":
        assert "only params.transaction_id" in err.value.reason


def test_params_are_typed_by_kind() -> None:
    assert STEP_PARAMS["confirm"].model_validate({"transaction_id": 7}) == ConfirmParams(transaction_id=7)


def test_json_answers_read_into_their_models() -> None:
    face = step_value("face_capture", json.dumps({"kind": "face", "sha256": "ab", "uploaded": True, "mean": 120}))
    assert isinstance(face, CaptureValue) and face.kind == "face" and face.uploaded is True
    assert step_value("liveness", '{"actions": 2}') == LivenessValue(actions=2)
    confirm = step_value("confirm", json.dumps({"transaction_id": 7, "accept": True, "why": None, "status": "done"}))
    assert isinstance(confirm, ConfirmValue) and confirm.status == "done"


def test_plain_answers_stay_words() -> None:
    assert step_value("face_capture", "face_declined") == "face_declined"
    assert step_value("switch_camera", "user") == "user"
    assert step_value("info", "help") == "help"
    assert step_value("confirm", None) is None


def test_texts_are_words_in_both_languages() -> None:
    params = STEP_PARAMS["info"].model_validate({"text_zh": "请看路由器", "text_en": "Look", "text": "请看路由器"})
    assert isinstance(params, InfoParams) and params.text == Words(plain="请看路由器", zh="请看路由器", en="Look")
    assert params.title is None

"""The steps an agent pushes to the customer's screen (``push_step``), each kind with its params model,
and the typed answers the customer's screen gives (``step_result``'s ``value``).

On the wire ``params`` stays a JSON object and ``value`` a string (the pages read those keys); here
each kind's params are checked against its model when a ``push_step`` is parsed
(:class:`signaling.protocol.PushStep`), and a ``value`` that carries JSON is read into its model by
:func:`step_value`.  A new kind is a model here plus its entry in :data:`STEP_PARAMS`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

StepKind = Literal["show_id", "switch_camera", "face_capture", "liveness", "confirm", "sign", "info"]

_Text = Annotated[str, Field(max_length=2000)]


class StepParams(BaseModel):
    """Base of every kind's params: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Words(BaseModel):
    """A text for the customer's page, which shows ``zh`` or ``en`` by its language, else ``plain``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plain: _Text | None = None
    zh: _Text | None = None
    en: _Text | None = None


class WordedParams(StepParams):
    """Params with texts: on the wire each is three keys, ``name`` (plain), ``name_zh`` and ``name_en``;
    here the :class:`Words` field ``name``."""

    #: The names of the texts.
    worded: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _fold_words(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        folded = dict(data)
        for name in cls.worded:
            keys = {"plain": name, "zh": f"{name}_zh", "en": f"{name}_en"}
            words = {part: folded.pop(key) for part, key in keys.items() if key in folded}
            if words:
                folded[name] = words
        return folded


class ResultCard(WordedParams):
    """A result the customer's screen keeps in its list (``info`` after a transaction)."""

    worded = ("title", "text")

    ok: bool = True
    title: Words | None = None
    text: Words | None = None


class InfoParams(WordedParams):
    """``info`` and ``sign``: words to read, a title, what to press when done, and a result to keep."""

    worded = ("text", "title", "press")

    text: Words | None = None
    title: Words | None = None
    press: Words | None = None
    result: ResultCard | None = None


class CaptureParams(StepParams):
    """``face_capture`` and ``show_id``: how long the customer has, and how many tries are behind."""

    timeout_s: int | None = Field(default=None, ge=5, le=600)
    tries: int = Field(default=0, ge=0, le=10)
    side: Literal["front", "back"] | None = None


class SwitchCameraParams(StepParams):
    """``switch_camera``: which camera (``user``: the front one; else the rear one)."""

    facing: Literal["user", "environment"] = "environment"


class LivenessParams(InfoParams):
    """``liveness``: the challenge's movements, said one at a time, paced to its deadline (epoch seconds)."""

    sequence: list[Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")]] = Field(default_factory=list, max_length=20)
    deadline: float | None = None


class ConfirmParams(StepParams):
    """``confirm``: only the request's id; the customer's page reads what to confirm from the server."""

    transaction_id: StrictInt


#: Each step kind's params model.
STEP_PARAMS: dict[StepKind, type[StepParams]] = {
    "show_id": CaptureParams,
    "switch_camera": SwitchCameraParams,
    "face_capture": CaptureParams,
    "liveness": LivenessParams,
    "confirm": ConfirmParams,
    "sign": InfoParams,
    "info": InfoParams,
}


def check_params(step: StepKind, params: dict[str, object]) -> StepParams:
    """``params`` of a ``step`` push, typed; a ValueError naming the first problem (for the protocol's
    ``invalid`` answer) when they do not fit the kind's model."""
    try:
        return STEP_PARAMS[step].model_validate(params)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "params"
        if step == "confirm":
            raise ValueError(
                "a confirm step carries only params.transaction_id (an integer): the customer's page "
                f"shows the server's words for that request ({where}: {err['msg']})"
            ) from None
        raise ValueError(f"{step} params: {where}: {err['msg']}") from None


class CaptureValue(BaseModel):
    """What a ``face_capture`` or ``show_id`` answer carries: the still's hash, the upload's answer
    (its other keys kept as they came) and the picture's measures."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal["face", "id"]
    sha256: str | None = None
    uploaded: bool | None = None
    code: str | None = None


class LivenessValue(BaseModel):
    """What a finished ``liveness`` answer carries: how many movements were shown."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actions: int


class ConfirmValue(BaseModel):
    """What a ``confirm`` answer carries: the request, the customer's answer and why, where it stands."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transaction_id: int | None
    accept: bool | None = None
    why: str | None = None
    status: str | None = None
    error: str | None = None


StepValue = CaptureValue | LivenessValue | ConfirmValue

#: The JSON answers, by the kind of step they answer.
STEP_VALUES: dict[StepKind, type[CaptureValue] | type[LivenessValue] | type[ConfirmValue]] = {
    "face_capture": CaptureValue,
    "show_id": CaptureValue,
    "liveness": LivenessValue,
    "confirm": ConfirmValue,
}


def step_value(step: StepKind, value: str | None) -> StepValue | str | None:
    """A ``step_result`` ``value`` answering a ``step`` push, read: the kind's model where the value is
    JSON, else the plain word it is (``help``, ``timeout``, ``face_declined``, a camera's facing mode)."""
    model = STEP_VALUES.get(step)
    if value is None or model is None or not value.startswith("{"):
        return value
    return model.model_validate_json(value)

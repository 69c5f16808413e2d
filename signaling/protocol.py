"""The signaling protocol, version 1: JSON objects over a WebSocket, one message per text frame.

Every message has a ``type``; a client may add ``ref`` (any short string) which the server echoes in
an ``error`` about that message.  :func:`parse` validates what clients send and raises
:class:`ProtocolError` (``code``, ``reason``, ``ref``); the connection stays open after an error.
Server messages are built with the models of :mod:`signaling.server_messages` and sent with :func:`dump`.
See ``docs/protocol.md`` for who may send what.

The vocabulary (version, limits, :class:`MessageType`, :class:`AgentState`) is in :mod:`signaling.wire`
and the server's messages in :mod:`signaling.server_messages`; both are re-exported here.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator

from signaling.server_messages import (
    AgentStatus,
    CallEnded,
    CallOffer,
    CallStarted,
    ErrorMsg,
    IceServer,
    IceServers,
    Monitoring,
    MonitorJoined,
    Notice,
    NoticeCode,
    OfferTimeout,
    OfferWithdrawn,
    PeerState,
    Pong,
    PresenceAck,
    QueueStatus,
    Welcome,
)
from signaling.steps import StepKind, check_params
from signaling.wire import (
    MAX_MESSAGE_BYTES,
    VERSION,
    AgentState,
    Lane,
    Message,
    MessageType,
    NoVideo,
    PresenceState,
    Ref,
    Role,
)

__all__ = [
    "CLIENT_TYPES",
    "MAX_MESSAGE_BYTES",
    "SERVER_TYPES",
    "VERSION",
    "Accept",
    "AgentState",
    "AgentStatus",
    "CallEnded",
    "CallOffer",
    "CallStarted",
    "Chat",
    "ClientMessage",
    "Decline",
    "ErrorMsg",
    "Hangup",
    "Hello",
    "Ice",
    "IceServer",
    "IceServers",
    "Join",
    "Lane",
    "Message",
    "MessageType",
    "MonitorJoined",
    "Monitoring",
    "NoVideo",
    "Notice",
    "NoticeCode",
    "OfferTimeout",
    "OfferWithdrawn",
    "PeerState",
    "Ping",
    "Pong",
    "Presence",
    "PresenceAck",
    "PresenceState",
    "ProtocolError",
    "PushStep",
    "QueueStatus",
    "Ref",
    "Role",
    "Sdp",
    "ServerMessage",
    "SilentJoin",
    "StepResult",
    "TokenBucket",
    "Transfer",
    "Welcome",
    "dump",
    "parse",
    "parse_server",
]

_Id = Annotated[str, Field(min_length=1, max_length=64)]


class ProtocolError(Exception):
    """A message was refused: ``code`` is stable, ``reason`` tells the sender what to fix."""

    def __init__(self, code: str, reason: str, ref: str | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.ref = ref

    def to_message(self) -> ErrorMsg:
        return ErrorMsg(code=self.code, reason=self.reason, ref=self.ref)


# Client -> server -----------------------------------------------------------------------------


class Hello(Message):
    """First message on every connection.  Customers send their join ``token``; staff rely on the cookie."""

    type: Literal["hello"] = "hello"
    token: str | None = Field(default=None, max_length=256)
    client: str | None = Field(default=None, max_length=100)


class Join(Message):
    """A customer asks for an agent.  ``care``: senior mode / "I need help" (长者模式).

    ``face_consent``: the customer's own answer, on their screen, to the separate face-processing
    question (``None``: not asked).  It reaches the call's counter session when an agent accepts.
    """

    type: Literal["join"] = "join"
    care: bool = False
    age: int | None = Field(default=None, ge=0, le=150)
    claimed_phone: str | None = Field(default=None, max_length=32, pattern=r"^\+?[0-9 -]{3,32}$")
    claimed_account: str | None = Field(default=None, max_length=64)
    locale: str | None = Field(default=None, max_length=16)
    face_consent: bool | None = None
    no_video: NoVideo | None = None  # voice only: why the camera could not be used


class Presence(Message):
    """A staff member's availability; ``skills`` may narrow (never widen) the skills on record."""

    type: Literal["presence"] = "presence"
    state: PresenceState
    skills: list[Annotated[str, Field(max_length=32)]] | None = Field(default=None, max_length=16)


class Accept(Message):
    type: Literal["accept"] = "accept"
    call_id: _Id


class Decline(Message):
    type: Literal["decline"] = "decline"
    call_id: _Id
    reason: str | None = Field(default=None, max_length=200)


class Sdp(Message):
    """An SDP offer or answer for the call; ``to`` addresses one party (a monitoring supervisor)."""

    type: Literal["sdp"] = "sdp"
    call_id: _Id
    kind: Literal["offer", "answer"]
    sdp: str = Field(max_length=MAX_MESSAGE_BYTES)
    to: str | None = Field(default=None, max_length=100)
    sender: str | None = Field(default=None, max_length=100)


class Ice(Message):
    """A trickled ICE candidate; ``candidate`` empty means end of candidates."""

    type: Literal["ice"] = "ice"
    call_id: _Id
    candidate: str = Field(max_length=2048)
    sdp_mid: str | None = Field(default=None, max_length=64)
    sdp_mline_index: int | None = Field(default=None, ge=0, le=64)
    to: str | None = Field(default=None, max_length=100)
    sender: str | None = Field(default=None, max_length=100)


class Chat(Message):
    """A chat line (the customer may type a number instead of saying it)."""

    type: Literal["chat"] = "chat"
    call_id: _Id
    text: str = Field(min_length=1, max_length=2000)
    sender: str | None = Field(default=None, max_length=100)
    at: float | None = None


class PushStep(Message):
    """The agent asks the customer's screen to do something: ``show_id``, ``switch_camera``...

    A ``confirm`` step carries nothing but ``transaction_id``: the customer's page reads what it
    asks them to confirm from the server (their own counter API), never from the agent.
    """

    type: Literal["push_step"] = "push_step"
    call_id: _Id
    step_id: str = Field(min_length=1, max_length=64)
    step: StepKind
    #: Checked against the kind's model (:data:`signaling.steps.STEP_PARAMS`); sent on as they came.
    params: dict[str, Any] = Field(default_factory=dict)
    sender: str | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _params_of_kind(self) -> PushStep:
        check_params(self.step, self.params)
        return self


class StepResult(Message):
    """The customer's screen answers a pushed step (``ok``, ``cancelled``, or a value)."""

    type: Literal["step_result"] = "step_result"
    call_id: _Id
    step_id: str = Field(min_length=1, max_length=64)
    status: Literal["ok", "cancelled", "failed"]
    value: str | None = Field(default=None, max_length=2000)
    sender: str | None = Field(default=None, max_length=100)


class Hangup(Message):
    type: Literal["hangup"] = "hangup"
    call_id: _Id | None = None
    reason: str | None = Field(default=None, max_length=200)


class Transfer(Message):
    """The agent hands the customer to another agent (by user name) or to any supervisor."""

    type: Literal["transfer"] = "transfer"
    call_id: _Id
    to: Literal["agent", "supervisor"]
    agent: str | None = Field(default=None, max_length=100)


class SilentJoin(Message):
    """A supervisor joins a call to listen; the customer is not told."""

    type: Literal["silent_join"] = "silent_join"
    call_id: _Id


class Ping(Message):
    type: Literal["ping"] = "ping"


#: The messages relayed between the parties of a call (sent by clients, forwarded by the server).
Relayed = Sdp | Ice | Chat | PushStep | StepResult
ClientMessage = Annotated[
    Hello | Join | Presence | Accept | Decline | Relayed | Hangup | Transfer | SilentJoin | Ping,
    Field(discriminator="type"),
]
_CLIENT = TypeAdapter[ClientMessage](ClientMessage)


def _types(union: Any) -> frozenset[MessageType]:
    """The ``type`` names of a tagged union's models (a name missing from :class:`MessageType` fails here)."""
    models: tuple[type[BaseModel], ...] = get_args(get_args(union)[0])
    return frozenset(MessageType(m.model_fields["type"].default) for m in models)


#: What clients may send (core protocol; extensions add theirs through ``add_messages``).
CLIENT_TYPES = _types(ClientMessage)


ServerMessage = Annotated[
    Welcome
    | QueueStatus
    | CallOffer
    | OfferTimeout
    | OfferWithdrawn
    | CallStarted
    | PeerState
    | MonitorJoined
    | Monitoring
    | Notice
    | CallEnded
    | PresenceAck
    | AgentStatus
    | IceServers
    | Pong
    | ErrorMsg
    | Relayed,
    Field(discriminator="type"),
]
_SERVER = TypeAdapter[ServerMessage](ServerMessage)
#: What the server sends (core protocol, the relayed messages included).
SERVER_TYPES = _types(ServerMessage)


def _ref_of(data: Any) -> str | None:
    if isinstance(data, dict):
        ref = data.get("ref")
        if isinstance(ref, str) and len(ref) <= 64:
            return ref
    return None


def parse(data: bytes | str, max_bytes: int = MAX_MESSAGE_BYTES) -> ClientMessage:
    """Validate one client message; raise :class:`ProtocolError` with a code and a reason."""
    size = len(data)
    if not isinstance(data, bytes) and size * 4 > max_bytes:  # a character is at most 4 bytes of UTF-8
        size = len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ProtocolError("too_large", f"message is {size} bytes; the limit is {max_bytes}")
    try:
        return _CLIENT.validate_json(data)  # fast path; on failure, parse again to explain why
    except (ValidationError, ValueError, RecursionError):
        pass
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("bad_json", f"message is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("bad_json", f"message is not valid JSON: {exc}") from exc
    ref = _ref_of(obj)
    if not isinstance(obj, dict):
        raise ProtocolError("bad_message", "a message is a JSON object with a \"type\"", ref)
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        shown = repr(kind)[:40]
        raise ProtocolError("unknown_type", f"unknown message type {shown}; see docs/protocol.md", ref)
    version = obj.get("v", VERSION)
    if version != VERSION:
        raise ProtocolError("bad_version", f"protocol version {str(version)[:10]} not supported; use v={VERSION}", ref)
    try:
        return _CLIENT.validate_python(obj)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"][1:]) or kind
        raise ProtocolError("invalid", f"{kind}: {where}: {err['msg']}", ref) from None
    except RecursionError:
        raise ProtocolError("invalid", f"{kind}: nested too deeply", ref) from None


def parse_server(data: bytes | str) -> ServerMessage:
    """Validate a server message (used by :mod:`signaling.client`)."""
    return _SERVER.validate_json(data)


def dump(message: BaseModel) -> str:
    """A message as the JSON text sent on the wire."""
    return message.model_dump_json(exclude_none=True)


class TokenBucket:
    """A per-connection rate limit: ``rate`` messages a second, bursts of up to ``burst``."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = time.monotonic()

    def take(self, now: float | None = None) -> bool:
        """Spend one token; ``False`` when the sender is over the limit."""
        now = time.monotonic() if now is None else now
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

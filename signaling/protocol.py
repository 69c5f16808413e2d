"""The signaling protocol, version 1: JSON objects over a WebSocket, one message per text frame.

Every message has a ``type``; a client may add ``ref`` (any short string) which the server echoes in
an ``error`` about that message.  :func:`parse` validates what clients send and raises
:class:`ProtocolError` (``code``, ``reason``, ``ref``); the connection stays open after an error.
Server messages are built with the ``Server*`` models and sent with :func:`dump`.
See ``docs/protocol.md`` for who may send what.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from signaling.steps import StepKind, check_params

VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024

Lane = Literal["care", "general"]
#: What a staff member may ask for: ``wrap_up`` while in after-call work extends it by the limit.
PresenceState = Literal["available", "wrap_up", "away"]
#: Why a customer joined without video (their camera refused or missing): served by voice only.
NoVideo = Literal["denied", "no_camera", "busy", "other"]
Role = Literal["customer", "agent", "supervisor", "helper"]



class AgentState(StrEnum):
    """A staff member's state as routing has it (an ACD's states); only the server changes it.

    ``available`` (may be offered a call) -> ``offered`` (a call waits for their accept) -> ``in_call``
    -> ``wrap_up`` (after-call work, ``wrap_up_s`` by default, then ``available`` by itself) ; ``away``
    (not offered anything) until they choose otherwise; a missed offer sets ``away``.
    """

    AVAILABLE = "available"
    OFFERED = "offered"
    IN_CALL = "in_call"
    WRAP_UP = "wrap_up"
    AWAY = "away"


_Id = Annotated[str, Field(min_length=1, max_length=64)]
_Ref = Annotated[str | None, Field(default=None, max_length=64)]


class ProtocolError(Exception):
    """A message was refused: ``code`` is stable, ``reason`` tells the sender what to fix."""

    def __init__(self, code: str, reason: str, ref: str | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.ref = ref

    def to_message(self) -> ErrorMsg:
        return ErrorMsg(code=self.code, reason=self.reason, ref=self.ref)


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    ref: _Ref = None


# Client -> server -----------------------------------------------------------------------------


class Hello(_Msg):
    """First message on every connection.  Customers send their join ``token``; staff rely on the cookie."""

    type: Literal["hello"] = "hello"
    token: str | None = Field(default=None, max_length=256)
    client: str | None = Field(default=None, max_length=100)


class Join(_Msg):
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


class Presence(_Msg):
    """A staff member's availability; ``skills`` may narrow (never widen) the skills on record."""

    type: Literal["presence"] = "presence"
    state: PresenceState
    skills: list[Annotated[str, Field(max_length=32)]] | None = Field(default=None, max_length=16)


class Accept(_Msg):
    type: Literal["accept"] = "accept"
    call_id: _Id


class Decline(_Msg):
    type: Literal["decline"] = "decline"
    call_id: _Id
    reason: str | None = Field(default=None, max_length=200)


class Sdp(_Msg):
    """An SDP offer or answer for the call; ``to`` addresses one party (a monitoring supervisor)."""

    type: Literal["sdp"] = "sdp"
    call_id: _Id
    kind: Literal["offer", "answer"]
    sdp: str = Field(max_length=MAX_MESSAGE_BYTES)
    to: str | None = Field(default=None, max_length=100)
    sender: str | None = Field(default=None, max_length=100)


class Ice(_Msg):
    """A trickled ICE candidate; ``candidate`` empty means end of candidates."""

    type: Literal["ice"] = "ice"
    call_id: _Id
    candidate: str = Field(max_length=2048)
    sdp_mid: str | None = Field(default=None, max_length=64)
    sdp_mline_index: int | None = Field(default=None, ge=0, le=64)
    to: str | None = Field(default=None, max_length=100)
    sender: str | None = Field(default=None, max_length=100)


class Chat(_Msg):
    """A chat line (the customer may type a number instead of saying it)."""

    type: Literal["chat"] = "chat"
    call_id: _Id
    text: str = Field(min_length=1, max_length=2000)
    sender: str | None = Field(default=None, max_length=100)
    at: float | None = None


class PushStep(_Msg):
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


class StepResult(_Msg):
    """The customer's screen answers a pushed step (``ok``, ``cancelled``, or a value)."""

    type: Literal["step_result"] = "step_result"
    call_id: _Id
    step_id: str = Field(min_length=1, max_length=64)
    status: Literal["ok", "cancelled", "failed"]
    value: str | None = Field(default=None, max_length=2000)
    sender: str | None = Field(default=None, max_length=100)


class Hangup(_Msg):
    type: Literal["hangup"] = "hangup"
    call_id: _Id | None = None
    reason: str | None = Field(default=None, max_length=200)


class Transfer(_Msg):
    """The agent hands the customer to another agent (by user name) or to any supervisor."""

    type: Literal["transfer"] = "transfer"
    call_id: _Id
    to: Literal["agent", "supervisor"]
    agent: str | None = Field(default=None, max_length=100)


class SilentJoin(_Msg):
    """A supervisor joins a call to listen; the customer is not told."""

    type: Literal["silent_join"] = "silent_join"
    call_id: _Id


class Ping(_Msg):
    type: Literal["ping"] = "ping"


ClientMessage = Annotated[
    Hello
    | Join
    | Presence
    | Accept
    | Decline
    | Sdp
    | Ice
    | Chat
    | PushStep
    | StepResult
    | Hangup
    | Transfer
    | SilentJoin
    | Ping,
    Field(discriminator="type"),
]
_CLIENT = TypeAdapter[ClientMessage](ClientMessage)
CLIENT_TYPES = frozenset(
    m.model_fields["type"].default
    for m in (Hello, Join, Presence, Accept, Decline, Sdp, Ice, Chat, PushStep, StepResult, Hangup, Transfer,
              SilentJoin, Ping)
)


# Server -> client -----------------------------------------------------------------------------


class IceServer(BaseModel):
    """One entry of ``RTCConfiguration.iceServers``."""

    model_config = ConfigDict(frozen=True)

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class Welcome(_Msg):
    type: Literal["welcome"] = "welcome"
    role: Role
    id: str
    node: str
    resumed: bool = False
    call_id: str | None = None
    ice_servers: list[IceServer] = Field(default_factory=list)
    ice_ttl_s: int = 0


class QueueStatus(_Msg):
    type: Literal["queue_status"] = "queue_status"
    call_id: str
    lane: Lane
    position: int
    est_wait_s: float


class CallOffer(_Msg):
    """Offered to an agent: accept within ``expires_s`` or it goes to the next agent."""

    type: Literal["call_offer"] = "call_offer"
    call_id: str
    lane: Lane
    waited_s: float
    expires_s: float
    claimed_phone: str | None = None
    claimed_account: str | None = None
    transfer_from: str | None = None
    no_video: NoVideo | None = None


class OfferTimeout(_Msg):
    type: Literal["offer_timeout"] = "offer_timeout"
    call_id: str


class OfferWithdrawn(_Msg):
    type: Literal["offer_withdrawn"] = "offer_withdrawn"
    call_id: str
    reason: str


class CallStarted(_Msg):
    """Both parties are put through.  The agent side makes the SDP offer (``offerer``)."""

    type: Literal["call_started"] = "call_started"
    call_id: str
    lane: Lane
    peer: str
    peer_name: str
    offerer: Role = "agent"
    resumed: bool = False
    claimed_phone: str | None = None
    claimed_account: str | None = None
    no_video: NoVideo | None = None  # to the agent: the customer is on voice only, and why


class PeerState(_Msg):
    """The other party dropped (``lost``) or came back (``back``): on ``back`` the offerer re-offers."""

    type: Literal["peer_state"] = "peer_state"
    call_id: str
    peer: str
    state: Literal["lost", "back"]


class MonitorJoined(_Msg):
    """To the agent: a supervisor listens in; send them an SDP offer addressed ``to`` them."""

    type: Literal["monitor_joined"] = "monitor_joined"
    call_id: str
    supervisor: str


class Monitoring(_Msg):
    """To the supervisor: you listen to this call; the agent will send you an offer."""

    type: Literal["monitoring"] = "monitoring"
    call_id: str
    agent: str
    customer: str
    lane: Lane


class NoticeCode(StrEnum):
    """What a ``notice`` tells; pages word each code in their own language (web/static/shared/i18n.js)."""

    SERVER_RESTART = "server_restart"  # the service restarts: stay, the page reconnects and resumes by itself
    RESTART_REQUEUED = "restart_requeued"  # after a restart the agent did not come back: first in line
    AGENT_LOST = "agent_lost"  # the agent's connection dropped: first in line for the next agent
    TRANSFERRED = "transferred"  # being put through to a colleague
    REQUEUED = "requeued"  # back in the queue, first in line (any other reason)
    REPLACED = "replaced"  # the same person connected again elsewhere: this connection stops
    LOGGED_OUT = "logged_out"  # staff logged out: log in again
    LIVENESS_FAILED = "liveness_failed"  # the movements check did not pass: the agent tries again or checks otherwise


class Notice(_Msg):
    """Something the person should be told.  ``code`` says what; pages show their own words for it
    (zh-CN or English).  ``text`` is the same in English, for logs and tools, never shown by pages."""

    type: Literal["notice"] = "notice"
    code: NoticeCode
    text: str
    call_id: str | None = None


class CallEnded(_Msg):
    type: Literal["call_ended"] = "call_ended"
    call_id: str
    reason: str
    by: str | None = None


class _AgentStateMsg(_Msg):
    """The server's state of a staff member and how long they have been in it (``in_state_s`` when sent).

    ``wrap_up_left_s``: in ``wrap_up``, the seconds until they become ``available`` by themselves
    (``None``: no limit).  ``call_id``: the call offered to them or that they are in.
    """

    state: AgentState
    skills: list[str]
    in_state_s: float = 0.0
    wrap_up_left_s: float | None = None
    call_id: str | None = None


class PresenceAck(_AgentStateMsg):
    """The answer to ``presence`` (and to a missed offer, which sets ``away``): the state routing keeps."""

    type: Literal["presence_ack"] = "presence_ack"


class AgentStatus(_AgentStateMsg):
    """Pushed to a staff member whenever the server changes their state (offer, call, wrap-up and its end)."""

    type: Literal["agent_state"] = "agent_state"


class IceServers(_Msg):
    """Fresh ICE servers (STUN, TURN with short-lived credentials); sent again before they expire."""

    type: Literal["ice_servers"] = "ice_servers"
    ice_servers: list[IceServer]
    ttl_s: int


class Pong(_Msg):
    type: Literal["pong"] = "pong"
    at: float = Field(default_factory=time.time)


class ErrorMsg(_Msg):
    type: Literal["error"] = "error"
    code: str
    reason: str


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
    | Sdp
    | Ice
    | Chat
    | PushStep
    | StepResult,
    Field(discriminator="type"),
]
_SERVER = TypeAdapter[ServerMessage](ServerMessage)


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

"""The protocol's server -> client messages (built by the service, sent with :func:`signaling.protocol.dump`).

Re-exported by :mod:`signaling.protocol`, where the rest of the code finds them (``p.Welcome``...).
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from signaling.wire import AgentState, Lane, Message, NoVideo, Role


class IceServer(BaseModel):
    """One entry of ``RTCConfiguration.iceServers``."""

    model_config = ConfigDict(frozen=True)

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class Welcome(Message):
    type: Literal["welcome"] = "welcome"
    role: Role
    id: str
    node: str
    resumed: bool = False
    call_id: str | None = None
    ice_servers: list[IceServer] = Field(default_factory=list)
    ice_ttl_s: int = 0


class QueueStatus(Message):
    type: Literal["queue_status"] = "queue_status"
    call_id: str
    lane: Lane
    position: int
    est_wait_s: float


class CallOffer(Message):
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


class OfferTimeout(Message):
    type: Literal["offer_timeout"] = "offer_timeout"
    call_id: str


class OfferWithdrawn(Message):
    type: Literal["offer_withdrawn"] = "offer_withdrawn"
    call_id: str
    reason: str


class CallStarted(Message):
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


class PeerState(Message):
    """The other party dropped (``lost``) or came back (``back``): on ``back`` the offerer re-offers."""

    type: Literal["peer_state"] = "peer_state"
    call_id: str
    peer: str
    state: Literal["lost", "back"]


class MonitorJoined(Message):
    """To the agent: a supervisor listens in; send them an SDP offer addressed ``to`` them."""

    type: Literal["monitor_joined"] = "monitor_joined"
    call_id: str
    supervisor: str


class Monitoring(Message):
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


class Notice(Message):
    """Something the person should be told.  ``code`` says what; pages show their own words for it
    (zh-CN or English).  ``text`` is the same in English, for logs and tools, never shown by pages."""

    type: Literal["notice"] = "notice"
    code: NoticeCode
    text: str
    call_id: str | None = None


class CallEnded(Message):
    type: Literal["call_ended"] = "call_ended"
    call_id: str
    reason: str
    by: str | None = None


class _AgentStateMsg(Message):
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


class IceServers(Message):
    """Fresh ICE servers (STUN, TURN with short-lived credentials); sent again before they expire."""

    type: Literal["ice_servers"] = "ice_servers"
    ice_servers: list[IceServer]
    ttl_s: int


class Pong(Message):
    type: Literal["pong"] = "pong"
    at: float = Field(default_factory=time.time)


class ErrorMsg(Message):
    type: Literal["error"] = "error"
    code: str
    reason: str


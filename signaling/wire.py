"""The protocol's vocabulary: its version and limits, the fields every message has, and the names.

:class:`MessageType` names every message on the socket, both directions: the core protocol's
(the models of :mod:`signaling.protocol` and :mod:`signaling.server_messages`) and the extensions'
(helpers, the witness, keep my place: handled through
:meth:`signaling.service.SignalingService.add_messages`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class MessageType(StrEnum):
    """The ``type`` of every message: the names pages send and handle (tests/signaling/test_protocol_names.py)."""

    # client -> server
    HELLO = "hello"
    JOIN = "join"
    PRESENCE = "presence"
    ACCEPT = "accept"
    DECLINE = "decline"
    HANGUP = "hangup"
    TRANSFER = "transfer"
    SILENT_JOIN = "silent_join"
    PING = "ping"
    # relayed between the parties (client -> server -> client)
    SDP = "sdp"
    ICE = "ice"
    CHAT = "chat"
    PUSH_STEP = "push_step"
    STEP_RESULT = "step_result"
    # server -> client
    WELCOME = "welcome"
    QUEUE_STATUS = "queue_status"
    CALL_OFFER = "call_offer"
    OFFER_TIMEOUT = "offer_timeout"
    OFFER_WITHDRAWN = "offer_withdrawn"
    CALL_STARTED = "call_started"
    PEER_STATE = "peer_state"
    MONITOR_JOINED = "monitor_joined"
    MONITORING = "monitoring"
    NOTICE = "notice"
    CALL_ENDED = "call_ended"
    PRESENCE_ACK = "presence_ack"
    AGENT_STATE = "agent_state"
    ICE_SERVERS = "ice_servers"
    PONG = "pong"
    ERROR = "error"
    # extensions: helpers (signaling.helpers)
    HELPER_INTRO = "helper_intro"
    HELPER_CONSENT = "helper_consent"
    HELPER_SUGGEST = "helper_suggest"
    HELPER_STATE = "helper_state"
    # extensions: the witness (signaling.witness.relay)
    RECORDING_CONSENT = "recording_consent"
    WITNESS_SDP = "witness_sdp"
    WITNESS_ICE = "witness_ice"
    WITNESS_STATE = "witness_state"
    # extensions: keep my place (signaling.hold)
    KEEP_PLACE = "keep_place"
    PLACE_KEPT = "place_kept"
    PLACE_NOTICE = "place_notice"


#: A message's ``ref``: any short string the client chose, echoed in an ``error`` about that message.
Ref = Annotated[str | None, Field(default=None, max_length=64)]


class Message(BaseModel):
    """The fields every message has (its version and ``ref``); subclasses add ``type`` and their own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    ref: Ref = None

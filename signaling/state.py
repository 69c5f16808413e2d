"""What the queue and routing keep about principals, calls and agents (shared through the bus)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field

from signaling.protocol import AgentState, Lane, NoVideo, Role


@dataclass(frozen=True)
class Principal:
    """Who is on a connection: resolved by the web layer (staff cookie) or a customer join token."""

    role: Role
    id: str
    name: str = ""
    skills: frozenset[str] = field(default_factory=frozenset)

    @cached_property
    def key(self) -> str:
        """The routing address of this principal on the bus."""
        return f"{self.role}:{self.id}"

    @cached_property
    def sender_prefix(self) -> str:
        """The start of a relayed message from this principal: ``{"sender":"<key>",``."""
        return '{"sender":' + json.dumps(self.key) + ","

    @property
    def audit_id(self) -> str:
        if self.role == "helper":
            return f"helper:session:{self.id}"
        return f"session:{self.id}" if self.role == "customer" else self.id


def customer_key(call_id: str) -> str:
    """The routing address of the customer of ``call_id`` (a customer's id is their call id)."""
    return f"customer:{call_id}"


class CallStatus(StrEnum):
    """Where a call stands: waiting in its lane, offered to one agent, or connected to its agent.

    A ``StrEnum``: stored and JSON values are the plain strings (``"queued"``...).
    """

    QUEUED = "queued"
    OFFERED = "offered"
    IN_CALL = "in_call"


class CallRecord(BaseModel):
    """One customer's call from join to end; the customer's id is the call id."""

    model_config = ConfigDict(extra="ignore")

    call_id: str
    lane: Lane
    status: CallStatus = CallStatus.QUEUED
    score: float = 0.0  # position key in its lane: smaller is served first
    joined_at: float = 0.0  # unix seconds, first join
    queued_at: float = 0.0  # unix seconds, this wait
    care: bool = False
    age: int | None = None
    claimed_phone: str | None = None
    claimed_account: str | None = None
    face_consent: bool | None = None  # the customer's on-screen answer (None: not asked)
    face_consent_at: float | None = None  # unix seconds: when that answer reached the server (the join)
    no_video: NoVideo | None = None  # voice only: why the customer's camera could not be used
    offered_to: str | None = None
    offer_deadline: float = 0.0
    tried: list[str] = Field(default_factory=list)
    target_agent: str | None = None
    target_role: Role | None = None
    transfer_from: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    agent_role: Role | None = None
    answered_at: float | None = None
    monitors: list[str] = Field(default_factory=list)
    disconnected_at: float | None = None
    leg: int | None = None
    #: The witness receives the customer's media now (told by the witness's node).
    recording: bool = False
    #: Unix seconds since when the connected call has gone unrecorded (``None``: recording, or not connected).
    unrecorded_since: float | None = None
    #: The parties (routing keys) that opened a witness leg: they are told each change of ``recording``.
    witness_keys: list[str] = Field(default_factory=list)
    #: Keep my place (virtual hold): unix seconds until which a customer who left keeps the place
    #: (instead of the reconnect grace); while away at the head, an eligible free agent waits for them.
    kept_until: float | None = None
    #: A helper (家属) of the call: connected now / ever; what they said; the holder's answer.
    helper_present: bool = False
    helper_seen: bool = False
    helper_name: str | None = None  # personal data: live state only, never audited in clear
    helper_relation: str | None = None
    helper_consent: str | None = None  # pending | agreed | refused (None: not introduced)


    def unrecorded_for(self, now: float) -> float:
        """Seconds this connected call has gone without the witness receiving the customer's media."""
        if self.recording or self.status != CallStatus.IN_CALL:
            return 0.0
        since = self.unrecorded_since if self.unrecorded_since is not None else self.answered_at
        return max(0.0, now - since) if since is not None else 0.0


class AgentRecord(BaseModel):
    """A staff member's presence as seen by routing."""

    model_config = ConfigDict(extra="ignore")

    id: str
    role: Role
    name: str = ""
    skills: list[str] = Field(default_factory=list)
    state: AgentState = AgentState.AWAY
    state_since: float = 0.0  # unix seconds: when ``state`` began
    wrap_up_until: float | None = None  # unix seconds: the end of after-call work (None: no limit)
    idle_since: float = 0.0
    offer_call: str | None = None
    call_id: str | None = None
    node: str = ""
    #: Put back by a restart (unix seconds): the agent has until then to reconnect to their call.
    restored_until: float | None = None

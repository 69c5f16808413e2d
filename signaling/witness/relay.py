"""Witness messages on the signaling WebSocket (protocol v1 additions, see docs/protocol.md "Witness").

Client -> server: ``recording_consent`` (customer), ``witness_sdp`` (offer), ``witness_ice``.
Server -> client: ``witness_sdp`` (answer), ``witness_state``; refusals are ordinary ``error``
messages.  ``witness_state`` says ``recording: true`` only once the witness receives the customer's
media, and is sent again to the customer and the agent (who opened a leg) each time that changes
(``status``: ``waiting_media``, ``recording``, ``stopped``).  :func:`attach` registers these with
:meth:`SignalingService.add_messages`; core frames never reach this module.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from signaling import protocol as p
from signaling.service import Connection, SignalingService
from signaling.state import Principal, customer_key
from signaling.witness.peer import MediaState, Witness, WitnessError

ConsentHook = Callable[[str, bool], Awaitable[None]]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    ref: str | None = Field(default=None, max_length=64)


class RecordingConsent(_Msg):
    """The customer agreed (or not) to the recording, on screen and by voice, before the agent joins."""

    type: Literal["recording_consent"] = "recording_consent"
    accepted: bool


class WitnessSdp(_Msg):
    """An SDP offer to the witness (client) or its answer (server), one per party and call."""

    type: Literal["witness_sdp"] = "witness_sdp"
    call_id: str = Field(min_length=1, max_length=64)
    kind: Literal["offer", "answer"]
    sdp: str = Field(max_length=p.MAX_MESSAGE_BYTES)


class WitnessIce(_Msg):
    """A trickled ICE candidate for the witness connection (``candidate`` empty: end of candidates)."""

    type: Literal["witness_ice"] = "witness_ice"
    call_id: str = Field(min_length=1, max_length=64)
    candidate: str = Field(max_length=2048)
    sdp_mid: str | None = Field(default=None, max_length=64)
    sdp_mline_index: int | None = Field(default=None, ge=0, le=64)


class WitnessState(_Msg):
    """To the parties: consent recorded; whether the witness receives the customer's media.

    ``recording`` is true only while media arrives (``status`` ``recording``); ``waiting_media``: a
    leg was answered but nothing arrived yet; ``stopped``: media arrived, then stopped.  Screens show
    the recording badge only on ``recording: true`` and warn on ``stopped``.
    """

    type: Literal["witness_state"] = "witness_state"
    call_id: str
    consent: bool
    recording: bool = False
    status: MediaState | None = None
    recording_id: str | None = None


WitnessMessage = Annotated[RecordingConsent | WitnessSdp | WitnessIce, Field(discriminator="type")]
_ADAPTER = TypeAdapter[WitnessMessage](WitnessMessage)
TYPES = ("recording_consent", "witness_sdp", "witness_ice")


def _send(conn: Connection, message: BaseModel) -> Awaitable[None]:
    return conn.send(message.model_dump_json(exclude_none=True))


async def _party(service: SignalingService, who: Principal, call_id: str, ref: str | None) -> str:
    call = await service.bus.read_call(call_id)
    if call is None or call.status != "in_call":
        raise p.ProtocolError("not_in_call", f"call {call_id} is not connected", ref)
    if who.role == "customer" and who.id == call.call_id:
        return "customer"
    if call.agent_id is not None and who.id == call.agent_id and who.role == (call.agent_role or "agent"):
        return "agent"
    if who.role == "helper" and who.id == call.call_id and call.helper_consent != "refused":
        return "helper"  # a third leg: the helper is recorded like the others
    raise p.ProtocolError("forbidden", "only the customer and the agent of a call send media to the witness", ref)


async def dispatch(
    service: SignalingService, witness: Witness, conn: Connection, m: WitnessMessage,
    on_consent: ConsentHook | None = None,
) -> None:
    """Handle one witness message from ``conn`` (said hello already)."""
    who = conn.principal
    if who is None:
        raise p.ProtocolError("hello_first", "send hello first", m.ref)
    try:
        if isinstance(m, RecordingConsent):
            if who.role != "customer":
                raise p.ProtocolError("forbidden", "recording_consent is the customer's answer", m.ref)
            witness.consent(who.id, m.accepted)
            if on_consent is not None:
                await on_consent(who.id, m.accepted)
            await _send(conn, WitnessState(ref=m.ref, call_id=who.id, consent=m.accepted))
        elif isinstance(m, WitnessSdp):
            if m.kind != "offer":
                raise p.ProtocolError("invalid", "witness_sdp: clients send offers; the witness answers", m.ref)
            party = await _party(service, who, m.call_id, m.ref)
            answer = await witness.offer(m.call_id, party, m.sdp)
            await _speaks_witness(service, m.call_id, who.key)
            await _send(conn, WitnessSdp(ref=m.ref, call_id=m.call_id, kind="answer", sdp=answer))
            wcall = witness.calls[m.call_id]
            recorder = wcall.recorder
            recording_id = recorder.recording_id if recorder else None
            if party == "customer":  # the agent's console hears it too: recording, or waiting for media
                await tell_state(service, m.call_id, wcall.state, recording_id)
            else:
                await _send(conn, WitnessState(call_id=m.call_id, consent=True, recording=wcall.recording,
                                               status=wcall.state, recording_id=recording_id))
        else:
            party = await _party(service, who, m.call_id, m.ref)
            await witness.add_ice(m.call_id, party, m.candidate, m.sdp_mid, m.sdp_mline_index)
    except WitnessError as exc:
        raise p.ProtocolError(exc.code, exc.reason, m.ref) from exc


async def _speaks_witness(service: SignalingService, call_id: str, key: str) -> None:
    """``key`` opened a witness leg for the call: from now on it is told the recording state."""
    async with service.bus.lock():
        call = await service.bus.get_call(call_id)
        if call is not None and key not in call.witness_keys:
            call.witness_keys.append(key)
            await service.bus.put_call(call)


async def tell_state(service: SignalingService, call_id: str, state: MediaState, recording_id: str | None) -> None:
    """A call's recording state changed: keep it on the call (for the recording rule, on every node)
    and tell the customer and the agent (those of them who opened a witness leg: they speak these
    messages; a console always opens one)."""
    recording = state is MediaState.RECORDING
    async with service.bus.lock():
        call = await service.bus.get_call(call_id)
        if call is None:
            return
        call.recording = recording
        if recording:
            call.unrecorded_since = None
        elif call.unrecorded_since is None:
            call.unrecorded_since = time.time()
        await service.bus.put_call(call)
    message = WitnessState(call_id=call_id, consent=True, recording=recording, status=state,
                           recording_id=recording_id)
    keys = [customer_key(call_id)]
    if call.status == "in_call" and call.agent_id:
        keys.append(f"{call.agent_role or 'agent'}:{call.agent_id}")
    for key in (k for k in keys if k in call.witness_keys):
        await service.bus.send(key, message.model_dump_json(exclude_none=True))


def attach(service: SignalingService, witness: Witness, on_consent: ConsentHook | None = None) -> None:
    """Route witness messages arriving on the service's connections to ``witness``, and tell the
    parties each change of a call's recording state."""

    async def handle(conn: Connection, message: WitnessMessage) -> None:
        await dispatch(service, witness, conn, message, on_consent)

    async def on_state(call_id: str, state: MediaState, recording_id: str | None) -> None:
        await tell_state(service, call_id, state, recording_id)

    service.add_messages(TYPES, _ADAPTER, handle)
    witness.on_state = on_state

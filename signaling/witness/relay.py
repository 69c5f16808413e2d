"""Witness messages on the signaling WebSocket (protocol v1 additions, see docs/protocol.md "Witness").

Client -> server: ``recording_consent`` (customer), ``witness_sdp`` (offer), ``witness_ice``.
Server -> client: ``witness_sdp`` (answer), ``witness_state``; refusals are ordinary ``error``
messages.  ``witness_state`` says ``recording: true`` only once the witness receives the customer's
media, and is sent again to the customer and the agent (who opened a leg) each time that changes
(``status``: ``waiting_media``, ``recording``, ``stopped``).  :func:`attach` registers these with
:meth:`SignalingService.add_messages`; core frames never reach this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from signaling import protocol as p
from signaling.owners import Owners, forward, inbox_key
from signaling.service import Connection, SignalingService
from signaling.state import CallStatus, Principal, customer_key
from signaling.witness.peer import MediaState, Witness, WitnessError

log = logging.getLogger("signaling.witness")

ConsentHook = Callable[[str, bool], Awaitable[None]]


class RecordingConsent(p.Message):
    """The customer agreed (or not) to the recording, on screen and by voice, before the agent joins."""

    type: Literal["recording_consent"] = "recording_consent"
    accepted: bool


class WitnessSdp(p.Message):
    """An SDP offer to the witness (client) or its answer (server), one per party and call."""

    type: Literal["witness_sdp"] = "witness_sdp"
    call_id: str = Field(min_length=1, max_length=64)
    kind: Literal["offer", "answer"]
    sdp: str = Field(max_length=p.MAX_MESSAGE_BYTES)


class WitnessIce(p.Message):
    """A trickled ICE candidate for the witness connection (``candidate`` empty: end of candidates)."""

    type: Literal["witness_ice"] = "witness_ice"
    call_id: str = Field(min_length=1, max_length=64)
    candidate: str = Field(max_length=2048)
    sdp_mid: str | None = Field(default=None, max_length=64)
    sdp_mline_index: int | None = Field(default=None, ge=0, le=64)


class WitnessState(p.Message):
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
    if call is None or call.status != CallStatus.IN_CALL:
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
    on_consent: ConsentHook | None = None, owners: Owners | None = None,
) -> None:
    """Handle one witness message from ``conn`` (said hello already): legs and candidates go to the
    call's owner node (claimed here when it has none, or when it died), answered through the bus."""
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
            return
        if isinstance(m, WitnessSdp) and m.kind != "offer":
            raise p.ProtocolError("invalid", "witness_sdp: clients send offers; the witness answers", m.ref)
        party = await _party(service, who, m.call_id, m.ref)
        if owners is not None:
            claim = await owners.claim(m.call_id)
            if claim.node != owners.node_id:
                message = Forwarded(op="witness", call_id=m.call_id, key=who.key, party=party,
                                    message=m.model_dump(mode="json"))
                if await forward(owners, claim.node, message.model_dump_json()):
                    return
                claim = await owners.claim(m.call_id, dead=claim.node)  # gone without a word
            if claim.taken_from is not None:
                log.warning("witness: call %s taken over from node %s", m.call_id, claim.taken_from)
        await serve(service, witness, who.key, party, m)
    except WitnessError as exc:
        raise p.ProtocolError(exc.code, exc.reason, m.ref) from exc


async def serve(service: SignalingService, witness: Witness, key: str, party: str,
                m: WitnessSdp | WitnessIce) -> None:
    """This node owns the call: give ``key``'s leg or candidate to the witness; answers go through the
    bus to wherever ``key`` is connected."""
    if isinstance(m, WitnessSdp):
        answer = await witness.offer(m.call_id, party, m.sdp)
        await _speaks_witness(service, m.call_id, key)
        await service.bus.send(key, WitnessSdp(ref=m.ref, call_id=m.call_id, kind="answer",
                                               sdp=answer).model_dump_json(exclude_none=True))
        wcall = witness.calls[m.call_id]
        recorder = wcall.recorder
        recording_id = recorder.recording_id if recorder else None
        if party == "customer":  # the agent's console hears it too: recording, or waiting for media
            await tell_state(service, m.call_id, wcall.state, recording_id)
        else:
            await service.bus.send(key, WitnessState(call_id=m.call_id, consent=True, recording=wcall.recording,
                                                     status=wcall.state, recording_id=recording_id
                                                     ).model_dump_json(exclude_none=True))
    else:
        await witness.add_ice(m.call_id, party, m.candidate, m.sdp_mid, m.sdp_mline_index)


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
    if call.status == CallStatus.IN_CALL and call.agent_id:
        keys.append(f"{call.agent_role or 'agent'}:{call.agent_id}")
    for key in (k for k in keys if k in call.witness_keys):
        await service.bus.send(key, message.model_dump_json(exclude_none=True))


class Forwarded(BaseModel):
    """What a node puts in the owner's inbox: a party's witness message (``witness``), or the call's
    end (``end``: close the legs and the recording) or a party's leaving (``leave``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["witness", "end", "leave"]
    call_id: str = Field(min_length=1, max_length=64)
    key: str | None = Field(default=None, max_length=200)
    party: str | None = Field(default=None, max_length=16)
    message: dict[str, Any] | None = None


class Inbox:
    """The owner's side: forwarded messages handled in order per call, each call apart from the others."""

    def __init__(self, service: SignalingService, witness: Witness, owners: Owners) -> None:
        self.service = service
        self.witness = witness
        self.owners = owners
        self._locks: dict[str, asyncio.Lock] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Receive this node's inbox through the bus (a connection without principal: never said hello)."""
        key = inbox_key(self.service.node_id)

        async def close() -> None:
            return None

        self.service.conns[key] = Connection(self.receive, close, None, self.service.options)
        await self.service.bus.register(key)
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="witness-takeover")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for task in list(self.tasks):
            with contextlib.suppress(Exception):
                await task

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.service.options.presence_ttl_s / 3)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an outage: the service degrades and recovers by itself
                log.debug("witness: takeover sweep skipped (%s)", exc)

    async def sweep(self) -> list[str]:
        """Take over the connected calls whose owner died, and tell their parties the recording
        stopped: their pages open new legs, to this node (also when neither was on the dead node)."""
        taken = []
        calls = [c.call_id for c in await self.service.bus.read_calls()
                 if c.status == CallStatus.IN_CALL and c.call_id not in self.witness.calls]
        alive: dict[str, bool] = {}
        for call_id, owner in zip(calls, await self.owners.owners_of(calls), strict=True):
            if owner is None or owner == self.owners.node_id:
                continue
            if owner not in alive:
                alive[owner] = await self.owners.alive(owner)
            if alive[owner]:
                continue
            claim = await self.owners.claim(call_id)
            if claim.node == self.owners.node_id and claim.taken_from is not None:
                log.warning("witness: call %s taken over from node %s", call_id, claim.taken_from)
                taken.append(call_id)
                await tell_state(self.service, call_id, MediaState.STOPPED, None)
        return taken

    async def receive(self, text: str) -> None:
        try:
            message = Forwarded.model_validate_json(text)
        except ValidationError:
            return  # notices every connection gets (the node stops): not for the inbox
        lock = self._locks.setdefault(message.call_id, asyncio.Lock())
        task = asyncio.ensure_future(self._run(lock, message))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, lock: asyncio.Lock, f: Forwarded) -> None:
        async with lock:
            try:
                await self._handle(f)
            except Exception:
                log.exception("witness: forwarded %s for call %s failed", f.op, f.call_id)
        if f.op == "end":
            self._locks.pop(f.call_id, None)

    async def _handle(self, f: Forwarded) -> None:
        if f.op == "end":
            await end_here(self.witness, self.owners, f.call_id)
            return
        if f.op == "leave":
            await self.witness.leave(f.call_id, f.party or "agent")
            return
        if f.key is None or f.party is None or f.message is None:
            return
        m = _ADAPTER.validate_python(f.message)
        if isinstance(m, RecordingConsent):
            return
        try:
            try:
                await serve(self.service, self.witness, f.key, f.party, m)
            except WitnessError as exc:
                raise p.ProtocolError(exc.code, exc.reason, m.ref) from exc
        except p.ProtocolError as exc:
            await self.service.bus.send(f.key, p.dump(exc.to_message()))


async def end_here(witness: Witness, owners: Owners | None, call_id: str) -> None:
    """The call ended and this node owns it: close the legs and the recording; forget the owner."""
    await witness.end(call_id)
    if owners is not None:
        await owners.release(call_id)


async def at_owner(witness: Witness, owners: Owners | None, call_id: str, op: Literal["end", "leave"],
                   party: str = "agent") -> None:
    """The call ended (``end``) or ``party`` left it (``leave``), told on any node: done at its owner."""
    node = await owners.owner(call_id) if owners is not None else None
    if owners is not None and node is not None and node != owners.node_id and call_id not in witness.calls:
        text = Forwarded(op=op, call_id=call_id, party=party).model_dump_json()
        if await forward(owners, node, text):
            return
    if op == "end":
        await end_here(witness, owners, call_id)
    else:
        await witness.leave(call_id, party)


def attach(service: SignalingService, witness: Witness, on_consent: ConsentHook | None = None,
           owners: Owners | None = None) -> None:
    """Route witness messages arriving on the service's connections to ``witness`` (at the call's
    owner node when ``owners`` is given), and tell the parties each change of a call's recording state."""

    async def handle(conn: Connection, message: WitnessMessage) -> None:
        await dispatch(service, witness, conn, message, on_consent, owners)

    async def on_state(call_id: str, state: MediaState, recording_id: str | None) -> None:
        await tell_state(service, call_id, state, recording_id)

    service.add_messages(TYPES, _ADAPTER, handle)
    witness.on_state = on_state

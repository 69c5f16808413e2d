"""Recording truth: the badge only once the witness receives media, both screens told when it stops,
and ``require_recording`` refusing state changes in a call that goes unrecorded past its grace."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
from collections.abc import AsyncIterator
from typing import Any

import av
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiortc import VideoStreamTrack

from counter.appkeys import SESSIONS, WITNESS
from counter.audit import AUDIT
from counter.config import Settings
from counter.levels import Method
from counter.proofs import ProofKind
from counter.sessions import Level
from signaling.witness import MediaState
from signaling.witness.client import WitnessClient, WitnessSender
from signaling.witness.relay import RecordingConsent, WitnessSdp, WitnessState
from tests.calls import LiveCall, live_call
from tests.counter.txkit import raise_on_proofs


class Bars(VideoStreamTrack):
    """A moving test picture, 15 frames a second."""

    def __init__(self) -> None:
        super().__init__()
        self._n = 0

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(1 / 15)
        image = np.full((240, 320, 3), (self._n * 7) % 255, np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self._n * 6000
        frame.time_base = fractions.Fraction(1, 90000)
        self._n += 1
        return frame


@pytest.fixture
async def strict_client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    """The app with the recording rule on and no grace: an unrecorded call changes nothing."""
    from counter.app import build_app

    app = await build_app(settings.model_copy(update={"require_recording": True, "recording_grace_s": 0.0}))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    app[WITNESS].stall_s = 1.0
    yield client
    await client.close()


async def _state(client: WitnessClient, **fields: Any) -> WitnessState:
    return await client.expect(WitnessState, **fields)  # type: ignore[type-var]


@contextlib.asynccontextmanager
async def _consented(
    client: TestClient[Any, Any],
) -> AsyncIterator[tuple[LiveCall, WitnessClient, WitnessClient]]:
    """A call on witness sockets whose customer consented to the recording (the page told so): the
    call, the customer and the agent."""
    async with live_call(str(client.make_url("")), claimed_phone="13800138000", face_consent=True,
                         client=WitnessClient) as call:
        customer, agent = call.customer, call.agent
        assert isinstance(customer, WitnessClient) and isinstance(agent, WitnessClient)
        await customer.send(RecordingConsent(accepted=True))
        await _state(customer, consent=True)
        yield call, customer, agent


async def _ready_for_a_change(call: LiveCall, client: TestClient[Any, Any]) -> dict[str, Any]:
    """Raise the session to A2 (as the identity checks would) and return a roaming change request."""
    status, _ = await call.staff("POST", f"/api/counter/sessions/{call.call_id}/verify-password",
                                 json={"password": "246810"})
    assert status == 200
    await raise_on_proofs(client.app[SESSIONS], call.call_id, Level.A2, Method.FACE, ProofKind.FACE_MATCH,
                          ProofKind.LIVENESS)
    return {"code": "roaming.set", "inputs": {"enabled": True}, "idempotency_key": "r1"}


async def test_unreachable_witness_no_badge_agent_warned_change_refused(strict_client: TestClient[Any, Any]) -> None:
    async with _consented(strict_client) as (call, customer, agent):
        # Both pages offer their legs and the witness answers, but no media ever gets through.
        senders = [WitnessSender(Bars()), WitnessSender(Bars())]
        try:
            for sender, client in zip(senders, (agent, customer), strict=True):
                await sender.pc.setLocalDescription(await sender.pc.createOffer())
                await client.send(WitnessSdp(call_id=call.call_id, kind="offer", sdp=sender.pc.localDescription.sdp))
                await client.expect(WitnessSdp)  # type: ignore[type-var]
            shown = await _state(customer, call_id=call.call_id)
            assert not shown.recording and shown.status is MediaState.WAITING  # no badge
            warned = await _state(agent, call_id=call.call_id)
            assert not warned.recording and warned.status is MediaState.WAITING  # the console warns
            # A look-up goes through; a change is refused, with the reason, and audited.
            change = await _ready_for_a_change(call, strict_client)
            status, asked = await call.staff("POST", f"/api/counter/sessions/{call.call_id}/transactions",
                                             json={"code": "balance.query", "inputs": {}, "idempotency_key": "b1"})
            assert status == 202, asked
            status, refused = await call.staff("POST", f"/api/counter/sessions/{call.call_id}/transactions",
                                               json=change)
            assert status == 409 and refused["error"]["code"] == "recording_required", refused
            assert "not been recorded" in refused["error"]["reason"] and "录像" in refused["error"]["reason_zh"]
            entries = await strict_client.app[AUDIT].search(action="session.refused", session_id=call.call_id)
            assert [e["entry"]["details"]["code"] for e in entries] == ["recording_required"]
        finally:
            for sender in senders:
                await sender.close()


async def test_recording_badge_follows_media_and_stops(strict_client: TestClient[Any, Any]) -> None:
    async with _consented(strict_client) as (call, customer, agent):
        sender, agent_leg = WitnessSender(Bars()), WitnessSender(Bars())
        try:
            state = await sender.connect(customer, call.call_id)  # returns once the witness says it records
            assert state.recording and state.status is MediaState.RECORDING and state.recording_id
            await agent_leg.connect(agent, call.call_id)  # the console's own leg; told from now on
            change = await _ready_for_a_change(call, strict_client)
            status, pending = await call.staff("POST", f"/api/counter/sessions/{call.call_id}/transactions",
                                               json=change)
            assert status == 202, pending
            # The customer's media stops: both screens are told, the customer's confirmation is refused.
            await sender.close()
            stopped = await _state(customer, call_id=call.call_id, recording=False)
            assert stopped.status is MediaState.STOPPED
            assert (await _state(agent, call_id=call.call_id, recording=False)).status is MediaState.STOPPED
            status, refused = await call.phone("POST", f"/api/customer/counter/transactions/{pending['id']}/confirm",
                                               json={"accept": True})
            assert status == 409 and refused["error"]["code"] == "recording_required", refused
        finally:
            await sender.close()
            await agent_leg.close()

"""Client side of the witness, for tests, benchmarks and probes: the signaling client that also
understands witness messages, and a send-only peer connection to the witness."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar, cast

import aiohttp
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from pydantic import TypeAdapter, ValidationError

from signaling import protocol as p
from signaling.client import ClientError, SignalingClient
from signaling.witness.relay import RecordingConsent, WitnessSdp, WitnessState

_SERVER = TypeAdapter[WitnessSdp | WitnessState](WitnessSdp | WitnessState)


class WitnessClient(SignalingClient):
    """A :class:`SignalingClient` that also parses ``witness_sdp`` and ``witness_state``."""

    #: The messages parsed beyond the signaling protocol's own; a subclass widens it.
    extra: ClassVar[TypeAdapter[Any]] = _SERVER

    async def _read(self) -> None:
        inbox = cast("asyncio.Queue[Any]", self.inbox)
        try:
            async for msg in self.ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        await inbox.put(p.parse_server(msg.data))
                    except ValueError:
                        try:
                            await inbox.put(self.extra.validate_json(msg.data))
                        except ValidationError:
                            await inbox.put(p.ErrorMsg(code="client_parse", reason=str(msg.data)[:200]))
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                    break
        finally:
            await inbox.put(None)

    async def consent_to_recording(self) -> WitnessState:
        await self.send(RecordingConsent(accepted=True))
        return await self.expect(WitnessState)  # type: ignore[type-var]


class WitnessSender:
    """A party's send-only peer connection to the witness (video track given, audio: silence)."""

    def __init__(self, video: MediaStreamTrack, audio: MediaStreamTrack | None = None) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver(video, direction="sendonly")
        self.pc.addTransceiver(audio or AudioStreamTrack(), direction="sendonly")
        self.connected = asyncio.Event()

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            if self.pc.connectionState == "connected":
                self.connected.set()

    async def connect(self, client: WitnessClient, call_id: str, within: float = 20.0) -> WitnessState:
        """Offer through the signaling socket, apply the witness's answer, wait until connected and
        the witness says it records (its ``witness_state`` with ``recording: true``: the customer's
        media arrives; connect the customer's leg first)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await client.send(WitnessSdp(call_id=call_id, kind="offer", sdp=self.pc.localDescription.sdp))
        answer = await client.expect(WitnessSdp, within=within)  # type: ignore[type-var]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
        state = await client.expect(WitnessState, within=within)  # type: ignore[type-var]
        await asyncio.wait_for(self.connected.wait(), within)
        if not state.recording:
            state = await client.expect(WitnessState, within=within, recording=True)  # type: ignore[type-var]
        return state

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.pc.close()


async def recording_report(http: aiohttp.ClientSession, base_url: str, auditor: str, password: str, call_id: str,
                           within: float = 30.0) -> dict[str, Any]:
    """The recording of ``call_id`` as an auditor sees it, once the server closed it (or after ``within``):
    id, segments, bytes, audited segments (each file matching its hash in the audit log), closed."""
    base = base_url.rstrip("/")
    async with http.post(base + "/api/auth/login", json={"username": auditor, "password": password}) as resp:
        if resp.status != 200:
            raise ClientError(f"login as {auditor} failed: HTTP {resp.status} {await resp.text()}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    row: dict[str, Any] | None = None
    while True:
        async with http.get(base + "/api/recordings", params={"call": call_id}) as resp:
            if resp.status != 200:
                raise ClientError(f"recordings of {call_id}: HTTP {resp.status} {await resp.text()}")
            rows = (await resp.json())["recordings"]
        row = rows[0] if rows else None
        if (row is not None and row["ended_at"] is not None) or loop.time() > deadline:
            break
        await asyncio.sleep(0.2)
    if row is None:
        raise ClientError(f"no recording of call {call_id} on the server")
    async with http.get(f"{base}/api/recordings/{row['id']}") as resp:
        if resp.status != 200:
            raise ClientError(f"recording {row['id']}: HTTP {resp.status} {await resp.text()}")
        detail = await resp.json()
    return {
        "id": row["id"],
        "segments": row["segments"],
        "bytes": row["bytes"],
        "duration_ms": row["duration_ms"],
        "audited_segments": sum(1 for c in detail["verification"] if c["status"] == "ok"),
        "intact": detail["intact"],
        "closed": row["ended_at"] is not None,
    }

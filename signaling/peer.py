"""aiortc peers with synthetic video, for tests, the probe and the benchmark.

Media stays on loopback: :func:`loopback_only` restricts aioice to 127.0.0.1 and every peer is
built with an explicit ``iceServers`` list (empty by default), so aiortc never falls back to its
built-in public STUN server.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time

import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack
from av import VideoFrame


def loopback_only() -> None:
    """Make aioice gather host candidates on 127.0.0.1 only (it skips loopback by default)."""
    import aioice.ice

    def _loopback(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return ["127.0.0.1"]

    aioice.ice.get_host_addresses = _loopback


class SyntheticVideo(VideoStreamTrack):
    """A moving bar on grey, ``width`` x ``height`` at the track's default 30 fps."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width = width
        self.height = height
        self._n = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        img = np.full((self.height, self.width, 3), 96, dtype=np.uint8)
        x = (self._n * 4) % self.width
        img[:, x : x + 8] = 255
        self._n += 1
        frame = VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts = pts
        frame.time_base = fractions.Fraction(time_base.numerator, time_base.denominator)
        return frame


class VideoPeer:
    """One side of a call: sends synthetic video, counts the frames it receives."""

    def __init__(self, ice_servers: list[RTCIceServer] | None = None, send_video: bool = True) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers or [])))
        self.frames = 0
        self.connected = asyncio.Event()
        self.got_frame = asyncio.Event()
        self._enough = asyncio.Event()
        self._want = 1
        self.started = time.perf_counter()
        self.connected_at: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        if send_video:
            self.pc.addTrack(SyntheticVideo())
        else:
            self.pc.addTransceiver("video", direction="recvonly")

        @self.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.ensure_future(self._count(track)))

        @self.pc.on("connectionstatechange")
        def _on_state() -> None:
            if self.pc.connectionState == "connected" and not self.connected.is_set():
                self.connected_at = time.perf_counter()
                self.connected.set()

    async def _count(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                await track.recv()
                self.frames += 1
                self.got_frame.set()
                if self.frames >= self._want:
                    self._enough.set()

    async def offer(self) -> str:
        """Create the offer (ICE candidates gathered into it); the set-up clock starts here."""
        self.started = time.perf_counter()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    @property
    def setup_ms(self) -> float | None:
        """Milliseconds from :meth:`offer` to connected."""
        return None if self.connected_at is None else (self.connected_at - self.started) * 1000.0

    async def wait_frames(self, n: int, within: float = 20.0) -> int:
        """Wait until ``n`` frames arrived; return how many did."""
        self._want = n
        if self.frames < n:
            self._enough.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._enough.wait(), within)
        return self.frames

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
                await task


async def direct_call(frames: int = 10, within: float = 20.0) -> tuple[float, int]:
    """Two peers connected in-process with no signaling server: ``(setup_ms, frames received)``."""
    agent, customer = VideoPeer(), VideoPeer()
    try:
        offer = await agent.offer()
        answer = await customer.answer(offer)
        await agent.accept(answer)
        await asyncio.wait_for(agent.connected.wait(), within)
        got = await customer.wait_frames(frames, within)
        return agent.setup_ms or 0.0, got
    finally:
        await agent.close()
        await customer.close()

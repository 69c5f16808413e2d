"""One party's send-only connection to the witness: answered receive-only, its frames tapped for the
recorder, its sockets drained in batches once connected (see :mod:`signaling.witness.compat`)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

from signaling.witness import compat

if TYPE_CHECKING:
    from signaling.witness.peer import WitnessCall

#: The receiver limit the witness tells senders (RTCP REMB, once a second): above any video cap of the
#: witness legs, so the senders' own caps decide; lets a browser start at its cap (compat.send_remb).
REMB_BPS = 2_500_000


class Leg:
    """One party's send-only connection to the witness."""

    def __init__(self, call: WitnessCall, party: str, ice_servers: list[RTCIceServer]) -> None:
        self.call = call
        self.party = party
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers)))
        self.tasks: list[asyncio.Task[None]] = []
        self.video: RTCRtpReceiver | None = None
        self.video_tap: compat.FrameTap | None = None
        self.pending: set[asyncio.Future[None]] = set()
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self.tasks.append(asyncio.ensure_future(self._consume(track)))

    async def _on_state(self) -> None:
        if self.pc.connectionState == "connected":  # set up at full speed, then read media in batches
            self.call.witness.drain.add(self.pc)
        if self.pc.connectionState in ("failed", "closed"):
            await self.call.drop_leg(self.party, self)

    async def _consume(self, track: MediaStreamTrack) -> None:
        keep = self.party == "customer" and track.kind == "video"
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                if keep and isinstance(frame, VideoFrame):
                    self.call.customer_frame(frame)

    def tee(self, receiver: RTCRtpReceiver, kind: str) -> compat.FrameTap:
        """Hand every encoded frame the receiver reassembles to the call's recorder; aiortc decodes
        only what the tap lets through (see :mod:`signaling.witness.compat`)."""
        call, party = self.call, self.party

        def record(mime: str, clock: int, data: bytes, timestamp: int) -> None:
            if call.recorder is not None:
                call.recorder.packet(party, kind, data, timestamp, clock)
            call.media(party)

        return compat.tap(receiver, record, self.call.witness.decode)

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        for transceiver in self.pc.getTransceivers():
            kind = transceiver.kind
            wanted = "video/VP8" if kind == "video" else "audio/opus"
            capabilities = RTCRtpReceiver.getCapabilities(kind)
            codecs = [c for c in (capabilities.codecs if capabilities else [])
                      if c.mimeType.lower() in (wanted.lower(), f"{kind}/rtx")]
            transceiver.setCodecPreferences(codecs)
            transceiver.direction = "recvonly"
            compat.receive_only(transceiver)
            frame_tap = self.tee(transceiver.receiver, kind)
            if kind == "video":
                self.video = transceiver.receiver
                self.video_tap = frame_tap
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        compat.receive_buffer(self.pc)
        if self.video is not None:
            self.tasks.append(asyncio.ensure_future(self._remb(self.video)))
        return str(self.pc.localDescription.sdp)

    async def _remb(self, receiver: RTCRtpReceiver) -> None:
        """Tell the sender :data:`REMB_BPS` every second (from its first packets): the witness runs no
        bandwidth estimator (:func:`compat.receive_only`)."""
        while True:
            await asyncio.sleep(1.0 if receiver.getSynchronizationSources() else 0.2)
            sent = compat.send_remb(receiver, REMB_BPS)
            if sent is not None:
                self.pending.add(sent)
                sent.add_done_callback(self.pending.discard)

    def request_keyframe(self) -> None:
        if self.video is None:
            return
        for task in compat.request_keyframe(self.video):
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    def decode_for(self, seconds: float) -> None:
        """Decode this party's video from a key frame (asked for now) for ``seconds``."""
        tap = self.video_tap
        if tap is None or tap.mode is compat.Decode.ALWAYS:
            return
        fresh = not tap.decoding
        tap.decode_for(seconds)
        if fresh:
            self.request_keyframe()

    def stop_decoding(self) -> None:
        if self.video_tap is not None:
            self.video_tap.stop_decoding()

    async def close(self) -> None:
        if self.call.witness.drain.flush(self.pc):
            await asyncio.sleep(0.01)  # aiortc's receive tasks take what the last read queued
        for task in self.tasks:
            task.cancel()
        await self.pc.close()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
                await task

"""The witness: a server-side aiortc peer on every call, recording both parties and grabbing frames.

Each party's browser opens a second, send-only peer connection to the witness (negotiated with
``witness_sdp`` on the same WebSocket, see :mod:`signaling.witness.relay`).  The witness never sends
media and never re-encodes: the encoded frames its receivers reassemble are handed to the
:class:`~signaling.witness.recording.Recorder` as they are, and nothing is decoded (through
:mod:`signaling.witness.compat`).  Only when an identity check asks for frames (:meth:`WitnessCall.grab`,
:meth:`WitnessCall.start_collecting`) is the customer's video decoded, from a key frame asked for then
(RTCP PLI), for the window asked; the latest decoded frame is kept and sampled for the check.
``Witness(decode=Decode.ALWAYS)`` (``witness_decode = "always"``) decodes every track as the witness
did before, for comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from aiortc import (
    RTCIceServer,
)
from aiortc.sdp import candidate_from_sdp
from av import VideoFrame

from signaling.errors import CodedError
from signaling.witness import compat
from signaling.witness.leg import Leg
from signaling.witness.recording import Recorder, RecordingStore, SegmentHook, SegmentInfo

log = logging.getLogger("signaling.witness")

PARTIES = ("customer", "agent", "helper")
BGR = npt.NDArray[np.uint8]
RecordingHook = Callable[[str, str, list[SegmentInfo]], Awaitable[None]]
#: How long without a packet of the customer's media before the recording counts as stopped.
STALL_S = 3.0


class MediaState(StrEnum):
    """Whether the witness of a call receives the customer's media (what "recording" means)."""

    WAITING = "waiting_media"  # a leg was offered and answered; no media has arrived yet
    RECORDING = "recording"  # media arrives: the call is being recorded
    STOPPED = "stopped"  # media arrived, then stopped (leg closed or no packet for STALL_S)


StateHook = Callable[[str, MediaState, str | None], Awaitable[None]]
#: When the customer of a call consented to the recording (unix seconds), from shared state; ``None``: not.
ConsentLookup = Callable[[str], Awaitable[float | None]]
#: Told (recording id, call id) when a recording starts, before any of its segments is told.
StartHook = Callable[[str, str], Awaitable[None]]


def _bgr(frame: VideoFrame) -> BGR:
    return np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)


class WitnessError(CodedError):
    """The witness refused a request: ``code`` is stable, the message says what to do."""


@dataclass
class _Collector:
    interval: float
    until: float
    frames: list[tuple[float, BGR]] = field(default_factory=list)
    last: float = 0.0


class WitnessCall:
    """What the witness holds for one call: the legs, the recorder, the customer's latest frame."""

    def __init__(self, witness: Witness, call_id: str) -> None:
        self.witness = witness
        self.call_id = call_id
        self.legs: dict[str, Leg] = {}
        self.recorder: Recorder | None = None
        self.latest: tuple[float, VideoFrame] | None = None
        self.frames = 0
        #: What the parties' screens are told: the witness receives the customer's media, or not.
        self.state = MediaState.WAITING
        #: ``time.monotonic()`` of the customer's latest media packet (``None``: none yet).
        self.media_at: float | None = None
        self._fresh = asyncio.Event()
        self._collectors: dict[str, _Collector] = {}
        self._grabs = 0

    @property
    def recording(self) -> bool:
        """The witness receives the customer's media now (the recording is not empty)."""
        return self.state is MediaState.RECORDING

    def media(self, party: str) -> None:
        """A media packet from ``party`` reached the witness (called for every packet: cheap)."""
        if party != "customer":
            return
        self.media_at = time.monotonic()
        if self.state is not MediaState.RECORDING:
            self._set_state(MediaState.RECORDING)

    def check_stall(self, now: float, stall_s: float) -> None:
        """Mark the recording stopped when the customer's media has not arrived for ``stall_s``."""
        if self.state is MediaState.RECORDING and (self.media_at is None or now - self.media_at > stall_s):
            self._set_state(MediaState.STOPPED)

    def _set_state(self, state: MediaState) -> None:
        self.state = state
        self.witness.changed(self)

    def no_media_error(self) -> WitnessError:
        """The refusal for identity checks when the customer's media does not reach the server."""
        return WitnessError(
            "no_media",
            "the server receives no video from this call (the network path to the recording server is down, "
            "not the camera): keep the customer on the line while their page reconnects, or have them change "
            "network",
        )

    def customer_frame(self, frame: VideoFrame) -> None:
        now = time.time()
        self.latest = (now, frame)
        self.frames += 1
        for collector in self._collectors.values():
            if now <= collector.until and now - collector.last >= collector.interval:
                collector.last = now
                collector.frames.append((now, _bgr(frame)))
        self._fresh.set()
        self._fresh = asyncio.Event()

    def _decode(self, seconds: float) -> None:
        """Have the customer's video decoded (from a key frame asked for now) for ``seconds``."""
        leg = self.legs.get("customer")
        if leg is not None:
            leg.decode_for(seconds)

    def _done_decoding(self) -> None:
        """Stop decoding the customer's video unless a check still wants frames."""
        leg = self.legs.get("customer")
        now = time.time()
        if leg is not None and not self._grabs and all(c.until <= now for c in self._collectors.values()):
            leg.stop_decoding()

    async def grab(self, within: float = 5.0, after: float | None = None) -> tuple[float, BGR]:
        """The customer's next video frame (taken after ``after``, default now) as BGR."""
        after = time.time() if after is None else after

        deadline = time.monotonic() + within
        self._grabs += 1
        self._decode(within)
        try:
            while self.latest is None or self.latest[0] < after:
                try:
                    await asyncio.wait_for(self._fresh.wait(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    if not self.recording:
                        raise self.no_media_error() from None
                    raise WitnessError("no_video",
                                       "no video from the customer's camera: ask them to turn it on") from None
        finally:
            self._grabs -= 1
            self._done_decoding()
        t, frame = self.latest
        return t, await asyncio.to_thread(_bgr, frame)  # a colour conversion of a whole frame

    def start_collecting(self, key: str, seconds: float, fps: float = 5.0) -> None:
        """Keep customer frames (``fps`` a second, at most ``seconds``) until :meth:`collected`; the
        customer's video is decoded for that long only."""
        self._collectors[key] = _Collector(1.0 / fps, time.time() + seconds)
        self._decode(seconds)

    def collected(self, key: str) -> list[tuple[float, BGR]]:
        """The frames kept since :meth:`start_collecting` (collecting stops).

        Raises ``no_media`` when the customer's media does not reach the witness now: few frames are
        then the path's fault, not the camera's or the customer's.
        """
        collector = self._collectors.pop(key, None)
        self._done_decoding()
        if collector is None:
            raise WitnessError("not_collecting", "no frames are being collected for this check: start it again")
        if not self.recording:
            raise self.no_media_error()
        return collector.frames

    def _request_keyframe(self, party: str) -> None:
        leg = self.legs.get(party)
        if leg is not None:
            leg.request_keyframe()

    async def add_leg(self, party: str, offer_sdp: str) -> str:
        if self.recorder is None:
            self.recorder = self.witness.new_recorder(self)
        old = self.legs.pop(party, None)
        if old is not None:
            await old.close()
        leg = self.legs[party] = Leg(self, party, self.witness.ice_servers)
        try:
            answer = await leg.answer(offer_sdp)
        except Exception as exc:
            self.legs.pop(party, None)
            await leg.close()
            raise WitnessError("bad_offer", f"witness_sdp: the offer was refused ({exc}); send a new one") from exc
        if party == "customer":  # a check that wants frames goes on over the new leg
            now = time.time()
            left = max([c.until - now for c in self._collectors.values()] + [5.0 if self._grabs else 0.0])
            if left > 0:
                leg.decode_for(left)
        return answer

    async def drop_leg(self, party: str, leg: Leg | None = None) -> None:
        current = self.legs.get(party)
        if current is not None and (leg is None or current is leg):
            del self.legs[party]
            if party == "customer" and self.state is MediaState.RECORDING:
                self._set_state(MediaState.STOPPED)
            await current.close()

    async def close(self) -> list[SegmentInfo]:
        for party in list(self.legs):
            await self.drop_leg(party)
        return await self.recorder.close() if self.recorder is not None else []


def _after(first: asyncio.Future[None], hook: SegmentHook | None) -> SegmentHook:
    """``hook``, each call waiting for ``first`` (a segment is told only after its recording's start)."""

    async def run(info: SegmentInfo) -> None:
        await first
        if hook is not None:
            await hook(info)

    return run


class Witness:
    """All calls' witness peers on this node."""

    def __init__(
        self,
        store: RecordingStore,
        *,
        segment_s: float = 10.0,
        on_segment: SegmentHook | None = None,
        on_recording_end: RecordingHook | None = None,
        on_recording_start: StartHook | None = None,
        ice_servers: list[RTCIceServer] | None = None,
        require_consent: bool = True,
        stall_s: float = STALL_S,
        decode: compat.Decode = compat.Decode.ON_DEMAND,
        drain_s: float = compat.DRAIN_INTERVAL_S,
    ) -> None:
        compat.check_aiortc()
        #: Reads every leg's sockets in batches (``drain_s`` 0: datagram by datagram).
        self.drain = compat.Drain(drain_s)
        self.store = store
        #: Which received frames are decoded: on demand (identity checks) or all (the former witness).
        self.decode = decode
        self.segment_s = segment_s
        self.on_segment = on_segment
        self.on_recording_end = on_recording_end
        self.on_recording_start = on_recording_start
        self.ice_servers = list(ice_servers or [])
        self.require_consent = require_consent
        self.stall_s = stall_s
        #: Told each change of a call's :class:`MediaState` (with its recording id), in order.
        self.on_state: StateHook | None = None
        self.calls: dict[str, WitnessCall] = {}
        self.consents: dict[str, float] = {}
        #: Where consents given on other nodes (or before a restart) are found.
        self.consent_lookup: ConsentLookup | None = None
        self._told: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None

    def changed(self, call: WitnessCall) -> None:
        """``call``'s media state changed: tell :attr:`on_state` (after the previous change, in order)."""
        hook = self.on_state
        if hook is None:
            return
        state = call.state
        recording_id = call.recorder.recording_id if call.recorder is not None else None
        previous = self._told

        async def tell() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            try:
                await hook(call.call_id, state, recording_id)
            except Exception:
                log.exception("witness: recording state of %s not told", call.call_id)

        self._told = asyncio.ensure_future(tell())

    async def _watch_stalls(self) -> None:
        while self.calls:
            await asyncio.sleep(min(1.0, self.stall_s / 2))
            now = time.monotonic()
            for call in list(self.calls.values()):
                call.check_stall(now, self.stall_s)
        self._watch = None

    def new_recorder(self, call: WitnessCall) -> Recorder:
        files = self.store.create(call.call_id)
        recorder = Recorder(files, call.call_id, self.on_segment, self.segment_s, call._request_keyframe)
        if self.on_recording_start is not None:
            started = asyncio.ensure_future(self.on_recording_start(recorder.recording_id, call.call_id))
            recorder.on_segment = _after(started, self.on_segment)
        return recorder

    def consent(self, call_id: str, accepted: bool) -> None:
        """The customer's answer to "this call is recorded" (asked before the agent joins)."""
        if accepted:
            self.consents[call_id] = time.time()
        else:
            self.consents.pop(call_id, None)

    async def offer(self, call_id: str, party: str, offer_sdp: str) -> str:
        """Answer a party's send-only offer; the recording starts with the first media."""
        if party not in PARTIES:
            raise WitnessError("forbidden", "only the customer and the agent of a call send media to the witness")
        if self.require_consent and call_id not in self.consents and self.consent_lookup is not None:
            accepted_at = await self.consent_lookup(call_id)
            if accepted_at is not None:
                self.consents[call_id] = accepted_at
        if self.require_consent and call_id not in self.consents:
            raise WitnessError(
                "no_recording_consent",
                "the customer has not consented to the recording: the page sends recording_consent first",
            )
        call = self.calls.get(call_id)
        if call is None:
            call = self.calls[call_id] = WitnessCall(self, call_id)
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_stalls(), name="witness-stalls")
        return await call.add_leg(party, offer_sdp)

    async def add_ice(self, call_id: str, party: str, candidate: str, sdp_mid: str | None,
                      sdp_mline_index: int | None) -> None:
        call = self.calls.get(call_id)
        leg = call.legs.get(party) if call is not None else None
        if leg is None:
            raise WitnessError("no_leg", "witness_ice: send witness_sdp with an offer first")
        if not candidate:
            return
        parsed = candidate_from_sdp(candidate.removeprefix("candidate:"))
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index
        await leg.pc.addIceCandidate(parsed)

    def call(self, call_id: str) -> WitnessCall:
        """The witness of a call with media, or :class:`WitnessError` ``no_witness``."""
        call = self.calls.get(call_id)
        if call is None or "customer" not in call.legs:
            raise WitnessError("no_witness", "the customer's video is not reaching the server yet: wait a moment")
        return call

    async def leave(self, call_id: str, party: str) -> None:
        """A party left (transfer, agent lost): close their leg; the recording goes on."""
        call = self.calls.get(call_id)
        if call is not None:
            await call.drop_leg(party)

    async def end(self, call_id: str) -> list[SegmentInfo]:
        """The call ended: close both legs and the recording (its last segments reported)."""
        self.consents.pop(call_id, None)
        call = self.calls.pop(call_id, None)
        if call is None:
            return []
        segments = await call.close()
        if self.on_recording_end is not None and call.recorder is not None:
            try:
                await self.on_recording_end(call_id, call.recorder.recording_id, segments)
            except Exception:
                log.exception("witness: recording end of %s not reported", call_id)
        return segments

    async def close(self) -> None:
        for call_id in list(self.calls):
            await self.end(call_id)
        self.drain.close()
        for task in (self._watch, self._told):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

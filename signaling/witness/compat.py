"""The one place the witness reaches into aiortc's private parts (pinned in pyproject.toml).

aiortc's :class:`~aiortc.RTCRtpReceiver` receives, decrypts, depacketizes and reassembles each track's
encoded frames, then hands every frame to a decoder thread through a private queue
(``RTCRtpReceiver.__decoder_queue``): there is no public way to get the encoded frames, nor to not
decode them.  The witness needs the encoded frames (the recording stores them as received) and decoded
video only for a few seconds during an identity check, so :func:`tap` swaps that queue for a
:class:`FrameTap` before the receiver starts:

* every encoded frame goes to the recorder's callback, on the event loop;
* a frame reaches aiortc's decoder (and so the track's ``recv()``) only while the tap decodes
  (:attr:`Decode.ALWAYS`, today's decoding witness, or a window opened with :meth:`FrameTap.decode_for`
  that starts at the next key frame and ends by itself).  Outside a window the decoder thread sleeps
  on an empty queue: it costs nothing.

:func:`request_keyframe` sends a Picture Loss Indication (RFC 4585 6.3.1) through the receiver's private
``_send_rtcp_pli``.  :func:`receive_only` answers without the RTP header extensions only a bandwidth
estimator reads (abs-send-time, transport-cc), through the transceiver's private ``_headerExtensions``:
the witness adapts nothing to what it receives, so the senders need not stamp every packet and aiortc's
receiver skips its remote bitrate estimator, which otherwise runs on every video packet.
:func:`send_remb` tells a sender a fixed receiver-side limit instead (RTCP REMB through the receiver's
private ``_send_rtcp``): a browser takes it as its estimate in its first seconds, so it starts at its
own cap as fast as with the estimator, instead of climbing from 300 kbit/s by 8 % a second.
:func:`receive_buffer` enlarges the kernel's receive buffer of the peer's ICE sockets (aioice's private
``Connection._protocols``), so a few hundred milliseconds without the event loop lose no datagram.
:class:`Drain` reads those sockets in batches on a timer instead of one datagram per wake-up of the
event loop (asyncio's selector loop: it pauses each socket's transport and reads the socket itself,
``_SelectorDatagramTransport._sock``): a recorder does not need each packet the moment it lands, and
a lone call otherwise pays a full turn of the event loop for each of its ~280 datagrams a second.
:func:`check_aiortc` is called at start-up: it refuses an aiortc outside the tested
range, or one whose private parts moved, with a message that says what to install.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import socket
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpTransceiver
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

#: aiortc versions this module was tested with: ``>= MIN`` and ``< BELOW`` (keep pyproject.toml in step).
TESTED_MIN = (1, 16)
TESTED_BELOW = (1, 17)
_QUEUE = "_RTCRtpReceiver__decoder_queue"
_PLI = "_send_rtcp_pli"
_EXTENSIONS = "_headerExtensions"
_RTCP = "_send_rtcp"
_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
#: RTP header extensions only a receiver-side bandwidth estimator reads (the witness answers without them).
ESTIMATOR_EXTENSIONS = frozenset({
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
})
#: Kernel receive buffer asked for each witness ICE socket (capped by ``net.core.rmem_max``).
RECEIVE_BUFFER = 4 * 1024 * 1024

#: How often :class:`Drain` reads the sockets by default, in seconds (the kernel buffers meanwhile).
DRAIN_INTERVAL_S = 0.1
#: At most this many datagrams read from one socket in one turn (the rest wait for the next).
DRAIN_BATCH = 512

#: ``(mime type, clock rate, encoded bytes, RTP timestamp from 0 at the track's first frame)``.
FrameSink = Callable[[str, int, bytes, int], None]


class AiortcIncompatible(RuntimeError):
    """The installed aiortc is not one the witness was tested with."""


class Decode(StrEnum):
    """Which received frames aiortc decodes (``Settings.witness_decode``)."""

    ON_DEMAND = "on_demand"  # only within windows asked for (identity checks); the recording stores packets
    ALWAYS = "always"  # every frame of every track (the witness before on-demand decoding, for comparison)


def _version_tuple(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_aiortc(installed: str | None = None) -> str:
    """Return the installed aiortc version, or raise :class:`AiortcIncompatible` saying what to install."""
    if installed is None:
        try:
            installed = version("aiortc")
        except PackageNotFoundError:
            raise AiortcIncompatible("aiortc is not installed: pip install -e . (it pins a tested aiortc)") from None
    wanted = f"aiortc>={'.'.join(map(str, TESTED_MIN))},<{'.'.join(map(str, TESTED_BELOW))}"
    if not TESTED_MIN <= _version_tuple(installed) < TESTED_BELOW:
        raise AiortcIncompatible(
            f"aiortc {installed} is not a version the witness was tested with: pip install '{wanted}' "
            "(signaling/witness/compat.py reaches into aiortc's receiver; test it before widening the range)"
        )
    if (not callable(getattr(RTCRtpReceiver, _PLI, None)) or not callable(getattr(RTCRtpReceiver, _RTCP, None))
            or "self.__decoder_queue" not in _receiver_source() or "self.__rtcp_ssrc" not in _receiver_source()
            or f"self.{_EXTENSIONS}" not in _source(RTCRtpTransceiver.__init__, f"self.{_EXTENSIONS}")):
        raise AiortcIncompatible(
            f"aiortc {installed}: RTCRtpReceiver has no {_QUEUE} / {_PLI} (or RTCRtpTransceiver no "
            f"{_EXTENSIONS}) any more: pip install '{wanted}'"
        )
    return installed


def _receiver_source() -> str:
    return _source(RTCRtpReceiver.__init__, "self.__decoder_queue self.__rtcp_ssrc")


def _source(function: Callable[..., Any], fallback: str) -> str:
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):  # no source shipped: trust the version range
        return fallback


class FrameTap:
    """Stands in for a receiver's decoder queue: records every frame, decodes only when asked.

    ``put`` runs on the event loop (aiortc's RTP handler); ``get`` on aiortc's decoder thread.
    """

    def __init__(self, sink: FrameSink, decode: Decode = Decode.ON_DEMAND) -> None:
        self.sink = sink
        self.mode = decode
        self.decoded = 0
        self._to_decoder: queue.Queue[Any] = queue.Queue()
        self._until = 0.0  # time.monotonic() the current window ends
        self._started = False  # the window reached its first key frame

    @property
    def decoding(self) -> bool:
        """aiortc decodes this track now (always, or a window is open)."""
        return self.mode is Decode.ALWAYS or time.monotonic() < self._until

    def decode_for(self, seconds: float) -> None:
        """Decode from the next key frame for ``seconds`` from now (a longer window already open stays)."""
        until = time.monotonic() + seconds
        if until > self._until:
            if time.monotonic() >= self._until:
                self._started = False
            self._until = until

    def stop_decoding(self) -> None:
        """Close the window now."""
        self._until = 0.0
        self._started = False

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # the receiver stops: let aiortc's decoder thread end
            self._to_decoder.put(None)
            return
        codec, encoded = item
        data = bytes(encoded.data)
        self.sink(codec.mimeType, codec.clockRate, data, encoded.timestamp)
        if self.mode is Decode.ALWAYS:
            self._to_decoder.put(item)
        elif time.monotonic() < self._until:
            if not self._started and not _keyframe(codec.mimeType, data):
                return
            self._started = True
            self.decoded += 1
            self._to_decoder.put(item)
        else:
            self._started = False

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self._to_decoder.get(block, timeout)


def _keyframe(mime: str, data: bytes) -> bool:
    if mime.lower() == "video/vp8":  # RFC 6386 9.1: bit 0 of the frame tag clear on key frames
        return len(data) >= 10 and not data[0] & 1 and data[3:6] == b"\x9d\x01\x2a"
    return True


def tap(receiver: RTCRtpReceiver, sink: FrameSink, decode: Decode = Decode.ON_DEMAND) -> FrameTap:
    """Put a :class:`FrameTap` in ``receiver``'s decoder queue; call before the receiver starts
    (between ``setRemoteDescription`` and ``setLocalDescription`` of the answer)."""
    frame_tap = FrameTap(sink, decode)
    setattr(receiver, _QUEUE, frame_tap)
    return frame_tap


def request_keyframe(receiver: RTCRtpReceiver) -> list[asyncio.Future[None]]:
    """Ask the sender of ``receiver``'s track for a key frame (RTCP PLI to each source heard in 10 s)."""
    send = getattr(receiver, _PLI)
    return [asyncio.ensure_future(send(source.source)) for source in receiver.getSynchronizationSources()]


def receive_only(transceiver: RTCRtpTransceiver) -> list[str]:
    """Answer ``transceiver``'s offer without :data:`ESTIMATOR_EXTENSIONS`; call between
    ``setRemoteDescription`` and ``createAnswer``.  Returns the URIs dropped."""
    extensions = getattr(transceiver, _EXTENSIONS)
    kept = [e for e in extensions if e.uri not in ESTIMATOR_EXTENSIONS]
    setattr(transceiver, _EXTENSIONS, kept)
    return [e.uri for e in extensions if e.uri in ESTIMATOR_EXTENSIONS]


def receive_buffer(pc: RTCPeerConnection, size: int = RECEIVE_BUFFER) -> int:
    """Ask for a ``size``-byte kernel receive buffer on each of ``pc``'s ICE sockets (after
    ``setLocalDescription``, which gathers them); returns how many sockets were set."""
    done = 0
    for transport in _datagram_transports(pc):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            done += 1
    return done


def send_remb(receiver: RTCRtpReceiver, bitrate: int) -> asyncio.Future[None] | None:
    """Tell the senders heard by ``receiver`` a receiver limit of ``bitrate`` bit/s (RTCP REMB,
    draft-alvestrand-rmcat-remb); ``None`` before the receiver has an RTCP SSRC or has heard a source."""
    ssrc = getattr(receiver, _RTCP_SSRC, None)
    sources = [source.source for source in receiver.getSynchronizationSources()]
    if ssrc is None or not sources:
        return None
    packet = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, sources))
    send: Callable[[RtcpPsfbPacket], Awaitable[None]] = getattr(receiver, _RTCP)
    return asyncio.ensure_future(send(packet))


def _datagram_transports(pc: RTCPeerConnection) -> list[Any]:
    """The asyncio transports of ``pc``'s ICE sockets (aioice's private ``Connection._protocols``)."""
    found: list[Any] = []
    seen: set[int] = set()
    for transceiver in pc.getTransceivers():
        connection = getattr(transceiver.receiver.transport.transport, "_connection", None)
        if connection is None or id(connection) in seen:
            continue
        seen.add(id(connection))
        for protocol in getattr(connection, "_protocols", []):
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                found.append(transport)
    return found


class Drain:
    """Reads the witness's ICE sockets every ``interval`` seconds, each until it is empty, instead of one
    datagram per turn of the event loop.  One drain serves every call of a witness: one timer in all.

    Only transports of asyncio's selector event loop are drained (they are paused and read here);
    others (uvloop) keep being read datagram by datagram.  ``interval`` 0 drains nothing.
    """

    def __init__(self, interval: float = DRAIN_INTERVAL_S) -> None:
        self.interval = interval
        #: Datagrams read, and turns taken (for the benchmark's figures).
        self.datagrams = 0
        self.turns = 0
        self._transports: list[Any] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, pc: RTCPeerConnection) -> int:
        """Drain ``pc``'s ICE sockets from now on (after ``setLocalDescription``); returns how many."""
        if self.interval <= 0:
            return 0
        added = 0
        for transport in _datagram_transports(pc):
            sock = getattr(transport, "_sock", None)
            if not isinstance(sock, socket.socket) or not callable(getattr(transport, "pause_reading", None)):
                continue  # not asyncio's selector transport
            if transport.is_closing() or transport in self._transports:
                continue
            transport.pause_reading()
            self._transports.append(transport)
            added += 1
        if added and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.interval, self._turn)
        return added

    def _turn(self) -> None:
        self.turns += 1
        kept = []
        for transport in self._transports:
            if transport.is_closing():
                continue
            kept.append(transport)
            self._read(transport)
        self._transports = kept
        if kept:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._turn)
        else:
            self._timer = None

    def _read(self, transport: Any) -> None:
        sock: socket.socket = transport._sock
        protocol = transport.get_protocol()
        size = transport.max_size
        for _ in range(DRAIN_BATCH):
            try:
                data, addr = sock.recvfrom(size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                protocol.error_received(exc)
                return
            self.datagrams += 1
            protocol.datagram_received(data, addr)
            if transport.is_closing():  # the protocol closed it (the peer connection ended)
                return

    def flush(self, pc: RTCPeerConnection) -> int:
        """Read what waits on ``pc``'s drained sockets now and drain them no more (before ``pc`` closes,
        so the last packets a sender sent are recorded); returns how many datagrams were read."""
        before = self.datagrams
        for transport in _datagram_transports(pc):
            if transport in self._transports:
                self._transports.remove(transport)
                if not transport.is_closing():
                    self._read(transport)
        return self.datagrams - before

    def close(self) -> None:
        """Stop the timer (the transports close with their peer connections)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transports = []

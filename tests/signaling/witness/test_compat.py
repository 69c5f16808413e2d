"""The witness's one compat point on aiortc: version check, encoded frames tapped, decoding on demand."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from av import VideoFrame

from signaling.peer import SyntheticVideo
from signaling.witness import compat
from signaling.witness.recording import vp8_keyframe_size


def test_check_aiortc_refuses_untested_versions() -> None:
    assert compat.check_aiortc()  # the installed one is in the tested range
    for version in ("1.9.0", "1.17.0", "2.0"):
        with pytest.raises(compat.AiortcIncompatible) as refused:
            compat.check_aiortc(version)
        assert "pip install 'aiortc>=1.16,<1.17'" in str(refused.value)
    assert compat.check_aiortc("1.16.2") == "1.16.2"


@dataclass
class Link:
    """A real aiortc sender (VP8 at 30 fps) to a receiver whose video is tapped."""

    sender: RTCPeerConnection
    receiver: RTCPeerConnection
    tap: compat.FrameTap
    track: MediaStreamTrack
    frames: list[tuple[str, int, bytes, int]] = field(default_factory=list)


@pytest.fixture
async def link() -> AsyncIterator[Link]:
    frames: list[tuple[str, int, bytes, int]] = []
    sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sender.addTransceiver(SyntheticVideo(), direction="sendonly")
    tracks: list[MediaStreamTrack] = []
    receiver.on("track", tracks.append)
    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    (transceiver,) = receiver.getTransceivers()
    transceiver.direction = "recvonly"
    tap = compat.tap(transceiver.receiver, lambda *frame: frames.append(frame))
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(RTCSessionDescription(sdp=receiver.localDescription.sdp, type="answer"))
    yield Link(sender, receiver, tap, tracks[0], frames)
    await sender.close()
    await receiver.close()


async def _until(check: Callable[[], bool], within: float = 10.0) -> None:
    for _ in range(int(within / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError


async def test_frames_are_tapped_encoded_and_decoded_only_on_demand(link: Link) -> None:
    await _until(lambda: len(link.frames) >= 30)
    mime, clock, data, _ = link.frames[0]
    assert (mime.lower(), clock) == ("video/vp8", 90000) and vp8_keyframe_size(data) == (320, 240)
    assert [t for *_, t in link.frames[:5]] == sorted(t for *_, t in link.frames[:5])
    # Nothing reached aiortc's decoder: the track has no frame to give.
    assert link.tap.decoded == 0 and not link.tap.decoding
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(link.track.recv(), 0.5)

    # A window: decoding starts at a key frame (asked for with a PLI) and frames come out of the track.
    (receiver,) = [t.receiver for t in link.receiver.getTransceivers()]
    link.tap.decode_for(30.0)
    assert compat.request_keyframe(receiver)
    frame = await asyncio.wait_for(link.track.recv(), 10.0)
    assert isinstance(frame, VideoFrame) and (frame.width, frame.height) == (320, 240)
    await _until(lambda: link.tap.decoded >= 3)

    # Closed: the decoder gets nothing more, the recording side still every frame.
    link.tap.stop_decoding()
    decoded, tapped = link.tap.decoded, len(link.frames)
    await _until(lambda: len(link.frames) >= tapped + 15)
    assert link.tap.decoded == decoded


async def test_always_decodes_every_frame(link: Link) -> None:
    link.tap.mode = compat.Decode.ALWAYS
    frame = await asyncio.wait_for(link.track.recv(), 10.0)
    assert isinstance(frame, VideoFrame)


def _rmem_max() -> int:
    with open("/proc/sys/net/core/rmem_max") as fh:
        return int(fh.read())


async def test_receive_only_answer_skips_the_bandwidth_estimator_and_buffers_more() -> None:
    """The answer leaves out abs-send-time (the sender then stamps nothing and aiortc's remote bitrate
    estimator never runs); frames still arrive; the ICE sockets get a larger kernel receive buffer; a
    fixed REMB tells the sender its limit."""
    frames: list[tuple[str, int, bytes, int]] = []
    sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        sender.addTransceiver(SyntheticVideo(), direction="sendonly")
        await sender.setLocalDescription(await sender.createOffer())
        assert "abs-send-time" in sender.localDescription.sdp
        await receiver.setRemoteDescription(sender.localDescription)
        (transceiver,) = receiver.getTransceivers()
        transceiver.direction = "recvonly"
        assert compat.receive_only(transceiver) == ["http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"]
        compat.tap(transceiver.receiver, lambda *frame: frames.append(frame))
        await receiver.setLocalDescription(await receiver.createAnswer())
        answer = receiver.localDescription.sdp
        assert "abs-send-time" not in answer and "urn:ietf:params:rtp-hdrext:sdes:mid" in answer

        assert compat.receive_buffer(receiver) >= 1
        granted = 2 * min(compat.RECEIVE_BUFFER, _rmem_max())  # the kernel grants at most rmem_max, doubled
        connection = transceiver.receiver.transport.transport._connection
        sizes = [p.transport.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                 for p in connection._protocols]
        assert sizes and all(size >= granted for size in sizes)

        await sender.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await _until(lambda: len(frames) >= 10)
        assert vp8_keyframe_size(frames[0][2]) == (320, 240)

        # No estimator, but a fixed receiver limit (REMB) reaches the sender: aiortc's sender sets its
        # encoder's target bitrate from it.
        (video_sender,) = [t.sender for t in sender.getTransceivers()]
        sent = compat.send_remb(transceiver.receiver, 1_234_000)
        assert sent is not None
        await sent
        encoder = vars(video_sender)  # aiortc keeps the encoder private: read it to see the REMB land
        await _until(lambda: encoder["_RTCRtpSender__encoder"].target_bitrate == 1_234_000)
    finally:
        await sender.close()
        await receiver.close()


async def test_drain_reads_the_sockets_in_batches_and_flushes_before_close(link: Link) -> None:
    """Once connected, the receiver's ICE sockets are read on a timer, several datagrams a turn, not one
    per wake-up of the event loop; frames keep arriving; a flush reads what waits before the close."""
    await _until(lambda: len(link.frames) >= 5)
    assert compat.Drain(0).add(link.receiver) == 0  # interval 0: read as before
    drain = compat.Drain(0.1)
    assert drain.add(link.receiver) >= 1
    assert drain.add(link.receiver) == 0  # once
    before = len(link.frames)
    await _until(lambda: len(link.frames) >= before + 30)
    assert drain.turns >= 1 and drain.datagrams >= 2 * drain.turns  # batches, not one at a time
    (transport,) = {p.transport for t in link.receiver.getTransceivers()
                    for p in t.receiver.transport.transport._connection._protocols}
    assert not transport.is_reading()  # asyncio's loop no longer wakes for each datagram

    drain.interval = 60.0  # the turn already due runs, the next one not within this test
    await asyncio.sleep(0.3)  # meanwhile packets wait in the kernel: the flush takes them
    assert drain.flush(link.receiver) >= 1
    assert drain.flush(link.receiver) == 0  # drained no more
    drain.close()

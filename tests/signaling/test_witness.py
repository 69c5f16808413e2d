"""The witness on a real call: recording of both parties, segment hashes in the audit log, tampering."""

from __future__ import annotations

import asyncio
import datetime as dt
import fractions
import json
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from counter.appkeys import RECORDINGS, SETTINGS, WITNESS
from counter.audit import AUDIT
from counter.config import Settings
from signaling import protocol as p
from signaling.peer import SyntheticVideo
from signaling.probe import connect_pair
from signaling.witness import MediaState, RecordingError, SegmentTampered, WitnessCall, WitnessError
from signaling.witness.client import WitnessClient, WitnessSender
from signaling.witness.recording import Recorder, RecordingFiles, vp8_keyframe_size
from tests.conftest import login
from tests.signaling.witnessing import PhotoVideo, closed_recording, consented_call, decoded_packets
from web.recordings_api import purge_recordings, verify_recording

FACES = Path(__file__).resolve().parents[2].parent / "shared" / "faces"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """One-second recording segments, so a short call has several."""
    return settings.model_copy(update={"witness_segment_s": 1.0})


class Call:
    def __init__(self, agent: WitnessClient, customer: WitnessClient, call_id: str) -> None:
        self.agent, self.customer, self.call_id = agent, customer, call_id


@pytest.fixture
async def call(app_client: TestClient[Any, Any]) -> AsyncIterator[Call]:
    """A customer (recording consented) put through to agent1 on the test server."""
    base = str(app_client.server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff_http, \
            aiohttp.ClientSession() as customer_http:
        agent, customer, call_id = await consented_call(staff_http, customer_http, base, WitnessClient)
        yield Call(agent, customer, call_id)
        await agent.close()
        await customer.close()


async def test_recording_has_both_parties_and_audited_segments(app_client: TestClient[Any, Any], call: Call) -> None:
    peers = await connect_pair(call.agent, call.customer, call.call_id)  # the call itself
    senders = [WitnessSender(PhotoVideo(FACES / "faceonnx/nicole_kidman/nicole_0.jpg")),
               WitnessSender(SyntheticVideo())]
    try:
        await senders[0].connect(call.customer, call.call_id)
        state = await senders[1].connect(call.agent, call.call_id)
        assert state.recording and state.recording_id
        connected = time.monotonic()
        await asyncio.sleep(3.0)
        await call.agent.send(p.Hangup(call_id=call.call_id))
        await call.customer.expect(p.CallEnded)
        call_s = time.monotonic() - connected
    finally:
        for sender in senders:
            await sender.close()
        for peer in peers:
            await peer.close()

    row = await closed_recording(app_client, call.call_id)
    assert row["id"] == state.recording_id
    log = app_client.app[AUDIT]
    entries = [e["entry"] for e in await log.search(action="recording.segment", session_id=call.call_id)]
    hashes = {e["details"]["index"]: e["evidence"][0] for e in entries}
    assert len(hashes) >= 2 and row["segments"] == len(hashes)
    files = app_client.app[RECORDINGS].open(row["id"])
    assert {i: files.file_sha256(i) for i in files.segments()} == hashes
    assert all(c["status"] == "ok" for c in await verify_recording(app_client.app, row["id"], call.call_id))
    assert [e["entry"]["action"] for e in await log.search(action="recording.consent", session_id=call.call_id)]

    packets, last_ms = await asyncio.to_thread(decoded_packets, files, hashes)
    assert set(packets) == {"customer.video", "customer.audio", "agent.video", "agent.audio"}
    assert abs(last_ms / 1000 - call_s) < 1.0, (last_ms, call_s)

    # A segment altered at rest is caught, by its hash and by its authentication tag.
    victim = files.segment_path(1)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    checks = await verify_recording(app_client.app, row["id"], call.call_id)
    assert [c["index"] for c in checks if c["status"] == "altered"] == [1]
    with pytest.raises(SegmentTampered):
        files.read_segment(1)
    with pytest.raises(SegmentTampered):
        files.read_segment(0, hashes[1])  # a swapped-in segment fails the audit hash


def _ffprobe(data: bytes, path: Path) -> list[tuple[str, str]]:
    """(codec type, codec name) of each stream ffprobe finds in ``data``; ffprobe must read it cleanly."""
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-count_packets", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=30, check=True)
    assert not out.stderr.strip(), out.stderr
    streams = json.loads(out.stdout)["streams"]
    assert all(int(s["nb_read_packets"]) > 0 for s in streams if s["codec_type"] == "video")
    return [(s["codec_type"], s["codec_name"]) for s in streams]


async def test_recorded_without_decoding_and_decoded_on_demand(
    app_client: TestClient[Any, Any], call: Call, tmp_path: Path
) -> None:
    """The witness stores the received VP8/Opus as they are and decodes nothing until an identity check
    asks for frames; then it decodes the customer's video from a key frame for that window only."""
    witness = app_client.app[WITNESS]
    senders = [WitnessSender(PhotoVideo(FACES / "faceonnx/nicole_kidman/nicole_0.jpg")),
               WitnessSender(SyntheticVideo())]
    try:
        await senders[0].connect(call.customer, call.call_id)
        await senders[1].connect(call.agent, call.call_id)
        wcall = witness.call(call.call_id)
        assert wcall.recorder is not None
        # Receive-only: the witness answers without abs-send-time, so no bandwidth estimate runs per packet.
        assert all("abs-send-time" not in s.pc.remoteDescription.sdp for s in senders)
        for _ in range(200):  # 10 s at most
            if wcall.recorder.stats.packets >= 60:
                break
            await asyncio.sleep(0.05)
        taps = [leg.video_tap for leg in wcall.legs.values()]
        assert wcall.frames == 0 and all(t is not None and t.decoded == 0 for t in taps)

        _, frame = await wcall.grab(within=10.0)  # a live frame for a face check
        assert frame.shape == (480, 640, 3) and frame.mean() > 5
        customer_tap = wcall.legs["customer"].video_tap
        assert customer_tap is not None and not customer_tap.decoding
        assert wcall.legs["agent"].video_tap.decoded == 0  # type: ignore[union-attr]

        wcall.start_collecting("lv", seconds=30.0, fps=5.0)  # a liveness window
        await asyncio.sleep(1.5)
        frames = wcall.collected("lv")
        assert len(frames) >= 3 and not customer_tap.decoding
        decoded = customer_tap.decoded
        await asyncio.sleep(0.5)
        assert customer_tap.decoded == decoded  # the window closed: nothing more is decoded
        await call.agent.send(p.Hangup(call_id=call.call_id))
        await call.customer.expect(p.CallEnded)
    finally:
        for sender in senders:
            await sender.close()
    row = await closed_recording(app_client, call.call_id)
    files = app_client.app[RECORDINGS].open(row["id"])
    assert files.segments()
    for index in files.segments():  # valid WebM files with the original codecs, all four tracks
        streams = await asyncio.to_thread(_ffprobe, files.read_segment(index), tmp_path / f"seg-{index}.webm")
        assert streams == [("video", "vp8"), ("audio", "opus"), ("video", "vp8"), ("audio", "opus")]


async def test_no_recording_without_consent_and_strangers_refused(
    app_client: TestClient[Any, Any], call: Call
) -> None:
    witness = app_client.app[WITNESS]
    from signaling.witness.relay import RecordingConsent, WitnessSdp, WitnessState

    await call.customer.send(RecordingConsent(accepted=False))  # withdrawn: kept in the database too
    assert not (await call.customer.expect(WitnessState)).consent  # type: ignore[type-var]
    sender = WitnessSender(SyntheticVideo())
    try:
        await sender.pc.setLocalDescription(await sender.pc.createOffer())

        await call.customer.send(WitnessSdp(call_id=call.call_id, kind="offer", sdp=sender.pc.localDescription.sdp))
        error = await call.customer.expect(p.ErrorMsg)
        assert error.code == "no_recording_consent"
        await call.customer.send(WitnessSdp(call_id="someone-else", kind="offer", sdp="v=0"))
        assert (await call.customer.expect(p.ErrorMsg)).code == "not_in_call"
    finally:
        await sender.close()
    assert call.call_id not in witness.calls


def _vp8_packets(count: int) -> list[bytes]:
    """``count`` small VP8 frames (30 fps, a key frame every 15)."""
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = 64, 48, "yuv420p"
    enc.time_base = fractions.Fraction(1, 90000)
    enc.options = {"g": "15"}
    packets = []
    for i in range(count):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 2, np.uint8), format="bgr24")
        frame.pts = i * 3000
        packets += [bytes(pk) for pk in enc.encode(frame.reformat(format="yuv420p"))]
    return packets


def test_recorder_segments_start_on_key_frames(tmp_path: Path) -> None:
    """Cutting waits for each party's next key frame, so every segment decodes on its own."""
    packets = _vp8_packets(90)
    files = RecordingFiles.create(tmp_path / "r", bytes(32), "r1", "c1")
    asked: list[str] = []
    recorder = Recorder(files, "c1", segment_s=1.0, request_keyframe=asked.append)

    async def run() -> None:
        for i, data in enumerate(packets):
            recorder.packet("customer", "video", data, i * 3000, 90000, now=i / 30)
        await recorder.close()

    asyncio.run(run())
    assert asked and set(asked) == {"customer"}
    assert len(recorder.segments) >= 2
    for info in recorder.segments:
        first = files.read_segment(info.index, info.sha256)
        with av.open(__import__("io").BytesIO(first)) as container:
            first_packet = next(pk for pk in container.demux(container.streams.video[0]) if pk.size)
            assert vp8_keyframe_size(bytes(first_packet)) is not None
    with pytest.raises(RecordingError):
        RecordingFiles(files.directory, bytes([1]) * 32).read_segment(0)


async def test_recording_purged_after_retention(app_client: TestClient[Any, Any]) -> None:
    """A recording is kept for ``recording_retention_days`` and purged after (files, playback, audited)."""
    app = app_client.app
    witness = app[WITNESS]
    call = witness.calls["c-retention"] = WitnessCall(witness, "c-retention")
    call.recorder = witness.new_recorder(call)
    for i, data in enumerate(_vp8_packets(45)):
        call.recorder.packet("customer", "video", data, i * 3000, 90000, now=i / 30)
    await witness.end(call.call_id)
    row = await closed_recording(app_client, call.call_id)
    files = app[RECORDINGS].open(row["id"])
    assert files.segments() and row["segments"] == len(files.segments())

    days = app[SETTINGS].recording_retention_days
    started = dt.datetime.fromisoformat(row["started_at"])

    async def purge(now: dt.datetime) -> list[str]:
        return await purge_recordings(app, older_than=now - dt.timedelta(days=days))

    await login(app_client, "audit1", "audit1-demo")
    assert await purge(started + dt.timedelta(days=days, minutes=-1)) == []
    assert files.segments()
    assert (await app_client.get(f"/api/recordings/{row['id']}")).status == 200

    assert await purge(started + dt.timedelta(days=days, minutes=1)) == [row["id"]]
    assert not files.directory.exists()
    resp = await app_client.get(f"/api/recordings/{row['id']}")
    assert resp.status == 410 and (await resp.json())["error"]["code"] == "purged"
    purged = [e["entry"] for e in await app[AUDIT].search(action="recording.purged", session_id=call.call_id)]
    assert [(e["details"]["recording"], e["details"]["retention_days"]) for e in purged] == [(row["id"], days)]
    assert await purge(started + dt.timedelta(days=days + 30)) == []


async def test_no_media_is_the_video_paths_fault(app_client: TestClient[Any, Any]) -> None:
    """With no media reaching the witness, identity checks say so (``no_media``), not "check the camera";
    media arriving then stopping moves the call's state recording -> stopped, in that order."""
    witness = app_client.app[WITNESS]
    told: list[tuple[str, MediaState]] = []

    async def tell(call_id: str, state: MediaState, recording_id: str | None) -> None:
        told.append((call_id, state))

    witness.on_state = tell
    call = witness.calls["c-silent"] = WitnessCall(witness, "c-silent")
    assert call.state is MediaState.WAITING and not call.recording
    with pytest.raises(WitnessError) as grabbed:
        await call.grab(within=0.1)
    assert grabbed.value.code == "no_media" and "not the camera" in grabbed.value.reason
    call.start_collecting("lv", seconds=1.0)
    with pytest.raises(WitnessError) as collected:
        call.collected("lv")
    assert collected.value.code == "no_media"
    call.media("agent")  # the agent's media alone records no customer
    assert not call.recording
    call.media("customer")
    assert call.recording
    call.check_stall(time.monotonic() + witness.stall_s + 1, witness.stall_s)
    assert call.state is MediaState.STOPPED
    await asyncio.sleep(0.05)
    assert told == [("c-silent", MediaState.RECORDING), ("c-silent", MediaState.STOPPED)]
    await witness.end("c-silent")

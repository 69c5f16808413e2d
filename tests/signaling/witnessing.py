"""The witness in tests: a camera filming a still photo, a call whose customer consented to the
recording, and what the recording holds once closed."""

from __future__ import annotations

import asyncio
import fractions
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
import cv2
import numpy as np
from aiohttp.test_utils import TestClient
from aiortc.mediastreams import VideoStreamTrack

from counter.appkeys import DB
from signaling import protocol as p
from signaling.witness.client import WitnessClient
from signaling.witness.recording import RecordingFiles
from tests.signaling.conftest import STAFF


class PhotoVideo(VideoStreamTrack):
    """A camera that films a still photo (letterboxed to 640x480) at 15 fps."""

    def __init__(self, photo: Path) -> None:
        super().__init__()
        image = cv2.imread(str(photo))
        assert image is not None, photo
        scale = min(640 / image.shape[1], 480 / image.shape[0])
        small = cv2.resize(image, (int(image.shape[1] * scale) // 2 * 2, int(image.shape[0] * scale) // 2 * 2))
        canvas = np.zeros((480, 640, 3), np.uint8)
        y, x = (480 - small.shape[0]) // 2, (640 - small.shape[1]) // 2
        canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
        self._frame = av.VideoFrame.from_ndarray(canvas, format="bgr24").reformat(format="yuv420p")
        self._n = 0

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(1 / 15)
        frame = av.VideoFrame.from_ndarray(self._frame.to_ndarray(format="bgr24"), format="bgr24")
        frame.pts = self._n * 6000
        frame.time_base = fractions.Fraction(1, 90000)
        self._n += 1
        return frame


async def consented_call(
    staff_http: aiohttp.ClientSession, customer_http: aiohttp.ClientSession, base: str,
    client: type[WitnessClient] = WitnessClient,
) -> tuple[Any, Any, str]:
    """A customer who consented to the recording put through to agent1 at ``base``, both on sockets
    of class ``client``: the agent, the customer and the call id, once both were told it started."""
    agent = await client.staff(staff_http, base, "agent1", STAFF["agent1"])
    customer = await client.customer(customer_http, base)
    assert isinstance(agent, client) and isinstance(customer, client)
    state = await customer.consent_to_recording()
    assert state.consent
    await agent.send(p.Presence(state="available"))
    await customer.send(p.Join())
    offer = await agent.expect(p.CallOffer)
    await agent.send(p.Accept(call_id=offer.call_id))
    await customer.expect(p.CallStarted)
    await agent.expect(p.CallStarted)
    return agent, customer, offer.call_id


async def closed_recording(app_client: TestClient[Any, Any], call_id: str, within: float = 15.0) -> dict[str, Any]:
    """The call's recording row once it is closed (fails after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        row = await app_client.app[DB].fetchrow("SELECT * FROM recordings WHERE call_id = $1", call_id)
        if row is not None and row["ended_at"] is not None:
            return dict(row)
        await asyncio.sleep(0.1)
    raise AssertionError("the recording was not closed after the hang-up")


def decoded_packets(files: RecordingFiles, hashes: dict[int, str]) -> tuple[dict[str, int], int]:
    """Packets per track over all segments (decoding every video frame), and the last timestamp (ms)."""
    packets: dict[str, int] = {}
    last = 0
    tracks = files.header["tracks"]
    for index in files.segments():
        path = files.directory / f"plain-{index}.webm"
        path.write_bytes(files.read_segment(index, hashes[index]))
        with av.open(str(path)) as container:
            count = len(container.streams)
        for number in range(count):
            # A fresh demuxer per track: seeking back in a short WebM segment may be refused (EPERM).
            with av.open(str(path)) as container:
                stream = container.streams[number]
                name = tracks[stream.index]
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue
                    packets[name] = packets.get(name, 0) + 1
                    assert packet.pts is not None
                    last = max(last, int(packet.pts * packet.time_base * 1000))
        for number in (0, 1):
            with av.open(str(path)) as container:
                stream = container.streams.video[number]
                sent = sum(1 for pk in container.demux(stream) if pk.size)
            with av.open(str(path)) as container:
                decoded = len(list(container.decode(container.streams.video[number])))
            name = ("customer.video", "agent.video")[number]
            assert decoded >= sent - 1, f"segment {index}: {name} does not decode"
        path.unlink()
    return packets, last

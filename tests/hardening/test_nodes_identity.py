"""Identity across two nodes (one PostgreSQL schema, one Redis): the customer on one node, the agent on
the other; the face check, liveness and ID read asked of either node are answered by the call's owner
(whose witness has the live video); the transaction requested on one and confirmed on the other; both
parties' tracks recorded, the recording closed by a hang-up on the other node and played through both.

The nodes are separate processes with separate data directories, as separate machines would be; what
a session proved is in the database, so the level is reached whichever node answered each step, and
the change it allows runs once.  The customer's camera is a track that films obama1.jpg and performs
the challenge's head turns, nods and blinks (synthetic, :mod:`tests.identity.synth`) when told.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import av
import cv2
import pytest
from aiortc.mediastreams import VideoStreamTrack

from identity import IdentityService
from signaling import protocol as p
from signaling.peer import loopback_only
from signaling.witness.client import WitnessClient, WitnessSender
from tests.browser.identity_checks import CAMERA_PHOTO, camera_frame, render_moves
from tests.hardening.conftest import PrivatePostgres, PrivateRedis
from tests.hardening.multinode import close_media, csrf_header, post_json, wait_until
from tests.hardening.nodes import LoopbackNode
from tests.hardening.shared_state import play_through, recordings, shared_config

loopback_only()
MODELS = CAMERA_PHOTO.parents[3] / "models"
OBAMA = "13900139000"  # the demo line whose real-name photo is obama.jpg (counter/accounts/demo.py)
FPS = 15


class ActingCamera(VideoStreamTrack):
    """A 640x480 camera at 15 fps filming the neutral frame; :meth:`perform` plays an action once, as
    the browser journey's camera does: out along the ramp (each frame twice), held (1.2 s, a blink
    0.6 s), back, then neutral again."""

    def __init__(self, frames: dict[str, list[Any]]) -> None:
        super().__init__()
        self.frames = frames
        self.plan: list[Any] = []
        self.played: list[str] = []
        self._n = 0
        self._done = asyncio.Event()

    async def perform(self, action: str) -> None:
        out = self.frames[action]
        hold = round((0.6 if action == "blink" else 1.2) * FPS)
        back = list(reversed(out))[1:]
        neutral = self.frames["neutral"][0]
        self.plan = [*[neutral] * 5, *[f for f in out for _ in (0, 1)], *[out[-1]] * hold,
                     *[f for f in back for _ in (0, 1)], *[neutral] * 8]
        self.played.append(action)
        self._done.clear()
        await asyncio.wait_for(self._done.wait(), 3 * len(self.plan) / FPS + 5)

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(1 / FPS)
        image = self.plan.pop(0) if self.plan else self.frames["neutral"][0]
        if not self.plan:
            self._done.set()
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self._n * (90000 // FPS)
        frame.time_base = fractions.Fraction(1, 90000)
        self._n += 1
        return frame


def _moves() -> dict[str, list[Any]]:
    """The neutral frame and each action's frames, rendered from obama1.jpg (measured by the journey test)."""
    service = IdentityService(MODELS, threads=1)
    try:
        frames, _ = render_moves(service, CAMERA_PHOTO)
    finally:
        service.close()
    return frames


async def _identity_ready(phone: aiohttp.ClientSession, node: LoopbackNode, within: float = 120.0) -> None:
    """``/readyz`` green: the node's database, signaling and identity models (found at ../shared/models)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    body: Any = None
    while loop.time() < deadline:
        async with phone.get(node.url + "/readyz") as resp:
            body = await resp.json()
            if resp.status == 200:
                return
        assert node.proc is not None and node.proc.poll() is None, node.tail()
        await asyncio.sleep(0.2)
    raise AssertionError(f"{node.name} not ready: {body}\n{node.tail()}")


def _loopback_only(sdp: str) -> list[str]:
    """The SDP's candidate lines that are not on 127.0.0.1."""
    return [line for line in sdp.splitlines() if line.startswith("a=candidate") and " 127.0.0.1 " not in line]


async def test_face_on_one_node_liveness_on_the_other_reach_a2_and_the_change_runs_once(
    tmp_path: Path, private_redis: PrivateRedis, private_pg: PrivatePostgres, schema_url: str,
    sessions: tuple[aiohttp.ClientSession, aiohttp.ClientSession],
) -> None:
    if not (MODELS / "face_detection_yunet_2023mar.onnx").is_file():
        pytest.skip("shared models not present")
    staff, phone = sessions
    prefix = f"i{uuid.uuid4().hex[:8]}"
    # Separate data dirs as separate machines have; the master key (photos on file, evidence) comes
    # from shared configuration, as a deployment's nodes share it.
    shared = shared_config(tmp_path)
    a = LoopbackNode("ida", tmp_path, schema_url, private_redis.url, prefix, data_dir=tmp_path / "data-a", **shared)
    b = LoopbackNode("idb", tmp_path, schema_url, private_redis.url, prefix, data_dir=tmp_path / "data-b", **shared)
    moves = asyncio.create_task(asyncio.to_thread(_moves))
    clients: list[WitnessClient] = []
    senders: list[WitnessSender] = []
    try:
        await a.start()  # first alone: it creates the schema
        await b.start()
        await _identity_ready(phone, a)
        await _identity_ready(phone, b)
        camera = ActingCamera(await moves)

        # The customer on node b (recording and face processing consented, the obama line claimed),
        # put through to agent1 on node a.
        customer = await WitnessClient.customer(phone, b.url)
        agent = await WitnessClient.staff(staff, a.url, "agent1", "agent1-demo")
        assert isinstance(customer, WitnessClient) and isinstance(agent, WitnessClient)
        clients += [customer, agent]
        assert (await customer.consent_to_recording()).consent
        await customer.send(p.Join(claimed_phone=OBAMA, face_consent=True))
        await agent.send(p.Presence(state="available"))
        offer = await agent.expect(p.CallOffer, within=20)
        sid = offer.call_id
        await agent.send(p.Accept(call_id=sid))
        await agent.expect(p.CallStarted, within=20, call_id=sid)
        await customer.expect(p.CallStarted, within=20, call_id=sid)
        # The customer's camera reaches the witness of node b, over loopback only: b owns the call.
        sender = WitnessSender(camera)
        senders.append(sender)
        await sender.connect(customer, sid)
        assert not _loopback_only(sender.pc.localDescription.sdp), sender.pc.localDescription.sdp
        assert not _loopback_only(sender.pc.remoteDescription.sdp), sender.pc.remoteDescription.sdp
        # The agent's leg, offered through node a, reaches the owner's witness too.
        senders.append(WitnessSender(VideoStreamTrack()))
        assert (await senders[-1].connect(agent, sid)).recording

        csrf = await csrf_header(staff, a.url)
        on_a = f"{a.url}/api/counter/sessions/{sid}"
        on_b = f"{b.url}/api/counter/sessions/{sid}"
        async with staff.get(on_a) as resp:
            session = await resp.json()
            assert resp.status == 200, session
        assert session["session"]["account"] == OBAMA and session["session"]["face_consent"] is True, session

        # Face check asked of node a, on the live video that only node b's witness receives: a match, A0.
        status, face = await post_json(staff, on_a + "/identity/face", {"source": "live"}, csrf)
        assert status == 200, face
        assert face["result"]["decision"] == "match", face["result"]
        assert face["session"]["level"] == "A0", face["session"]

        # Liveness started on node a, evaluated on node b: the owner's witness takes the frames; the
        # camera performs each action of the random challenge in turn.
        status, started = await post_json(staff, on_a + "/identity/liveness", None, csrf)
        assert status == 201, started
        challenge = started["challenge"]
        await asyncio.sleep(1.0)  # neutral frames first: the customer's baseline
        for action in challenge["sequence"]:
            await camera.perform(action)
        status, alive = await post_json(staff, f"{on_b}/identity/liveness/{challenge['id']}", None, csrf)
        assert status == 200, alive
        assert alive["result"]["passed"], (alive["result"], camera.played)
        # Node b read the face proof node a recorded: the session reaches A2, seen by both nodes.
        assert alive["session"]["level"] == "A2", (alive["session"], alive.get("level_refused"))
        async with staff.get(on_a) as resp:
            assert (await resp.json())["session"]["level"] == "A2"
        # The ID card read asked of node a: its portrait is compared with the face check's image, kept
        # by the owner that ran it (a face photo is no card: read, refused, compared all the same).
        jpeg = cv2.imencode(".jpg", camera_frame(CAMERA_PHOTO), [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
        async with staff.post(on_a + "/identity/id-card", data=jpeg,
                              headers={**csrf, "Content-Type": "image/jpeg"}) as resp:
            card = await resp.json()
            assert resp.status == 200 and face["evidence"][0] in card["evidence"], card

        conn = await asyncpg.connect(private_pg.url, server_settings={"search_path": schema_url.split("=")[1]})
        try:
            version = await conn.fetchval("SELECT version FROM acct_lines WHERE msisdn = $1", OBAMA)
            assert await conn.fetchval("SELECT roaming FROM acct_lines WHERE msisdn = $1", OBAMA) in (0, False)

            # The transaction (A2) requested on node a, confirmed by the customer on node b: done...
            status, tx = await post_json(staff, on_a + "/transactions", {
                "code": "roaming.set", "inputs": {"enabled": True}, "idempotency_key": "nodes-roaming-1"}, csrf)
            assert status == 202 and tx["status"] == "pending", tx
            mine = {"X-Customer-Token": customer.token or ""}
            status, done = await post_json(phone, f"{b.url}/api/customer/counter/transactions/{tx['id']}/confirm",
                                       {"accept": True}, mine)
            assert status == 200 and done["status"] == "done", done
            # ...and the same confirmation arriving again at node a (a double tap) runs nothing more.
            status, again = await post_json(phone, f"{a.url}/api/customer/counter/transactions/{tx['id']}/confirm",
                                        {"accept": True}, mine)
            assert status in (200, 409), again
            assert status == 409 or again["status"] == "done", again

            # The change ran exactly once: one entry, one update of the line.
            line = await conn.fetchrow("SELECT roaming, version FROM acct_lines WHERE msisdn = $1", OBAMA)
            assert line is not None and bool(line["roaming"]) and line["version"] == version + 1, dict(line)
            entries = [(r["action"], r["outcome"], json.loads(r["body"])) for r in await conn.fetch(
                "SELECT action, outcome, body FROM audit_entries WHERE session_id = $1 ORDER BY seq", sid)]
            roaming = [(outcome, body) for action, outcome, body in entries if action == "transaction.roaming.set"]
            assert [outcome for outcome, _ in roaming] == ["ok"], roaming
            assert await conn.fetchval("SELECT status FROM tx_requests WHERE id = $1", tx["id"]) == "done"
            assert await conn.fetchval("SELECT count(*) FROM sms_outbox WHERE tx_id = $1", tx["id"]) == 1

            # One level entry: A2, naming the face proof and the liveness proof (both kept by the owner, b).
            levels = [body for action, _, body in entries if action == "session.level"]
            assert len(levels) == 1, levels
            assert levels[0]["details"]["level"] == "A2" and levels[0]["details"]["method"] == "face", levels
            face_sha, alive_sha = levels[0]["evidence"]
            assert face_sha == face["evidence"][0] and alive_sha in alive["evidence"], (levels, face, alive)
            kinds = dict(await conn.fetch("SELECT sha, kind FROM session_proofs WHERE session_id = $1", sid))
            assert (kinds.get(face_sha), kinds.get(alive_sha)) == ("face_match", "liveness"), kinds
            # Hung up on node a: the owner (b) closes the recording, which holds both parties' tracks.
            await agent.send(p.Hangup(call_id=sid))
            await customer.expect(p.CallEnded, within=20)

            async def closed() -> bool:
                return all(r["ended_at"] is not None for r in await recordings(conn, sid))

            await wait_until(closed, within=20)
            [recording] = await recordings(conn, sid)
            assert {"customer.video", "customer.audio", "agent.video", "agent.audio"} <= recording["tracks"]
        finally:
            await conn.close()
        # Played through either node, though only node b has the files.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as auditor:
            async with auditor.post(a.url + "/api/auth/login",
                                    json={"username": "audit1", "password": "audit1-demo"}) as resp:
                assert resp.status == 200
            assert all(await play_through(auditor, a.url, b.url, recording["id"]))
            assert all(await play_through(auditor, b.url, a.url, recording["id"]))
    finally:
        if not moves.done():
            await asyncio.gather(moves, return_exceptions=True)
        await close_media(senders, clients, a, b)
    for node in (a, b):
        log = node.tail(4000)
        assert "Traceback" not in log, log

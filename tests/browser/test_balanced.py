"""The journey through HAProxy: two ``counter serve`` nodes behind round-robin with no stickiness (every
page load, API call and WebSocket may land on either node), a Chromium customer and a Chromium agent,
all in one network namespace with only ``lo`` (:mod:`tests.hardening.balancer`).

- The whole puk.query journey (face, liveness, ID, confirm): both parties' tracks are recorded by the
  call's owner, the recording is closed at the hang-up and plays through either node, and
  ``counter audit verify`` is ok on both nodes.
- The call's owner killed with SIGKILL mid-call: both pages come back by themselves through the other
  node, which takes the call over; the recording goes on in a linked part; verify is ok.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from counter.sessions import Level
from tests.browser.conftest import FACES, MODELS
from tests.browser.harness import CHROMIUM, BrowserEnv, chromium_args, to_queue
from tests.browser.identity_checks import MATCHING_LINE, reactive_customer, to_a3
from tests.browser.staff import (
    accept_care_call,
    answer_connected,
    claim,
    hang_up,
    level,
    puk_confirmed,
    puk_picker,
    staff_page,
)
from tests.hardening.balancer import HAPROXY, Cluster
from tests.hardening.nodes import LoopbackNode

BOTH = {"customer.video", "agent.video"}


async def _start_browser(env: BrowserEnv, cluster: Cluster, y4m: Path) -> None:
    """Chromium on the cluster's loop (its namespace); the helpers' view of the nodes' shared state."""
    from playwright.async_api import async_playwright

    from counter.accounts.builtin import StorageAccountSystem
    from counter.appkeys import ACCOUNTS, IDENTITY, SESSIONS
    from counter.sessions import CounterSessions
    from identity import IdentityService
    from storage import open_database

    env.base_url = cluster.url
    env.playwright = await async_playwright().start()
    env.browser = await env.playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(y4m))
    db = await open_database(cluster.pg.url)
    identity = IdentityService(MODELS, threads=1)
    env._app = {IDENTITY: _Ready(identity), ACCOUNTS: StorageAccountSystem(db),
                SESSIONS: CounterSessions(db, None),  # type: ignore[arg-type]  # read only: no audit
                "db": db, "identity": identity}  # type: ignore[assignment]


class _Ready:
    def __init__(self, service: Any) -> None:
        self.service = service

    def ready(self) -> Any:
        return self.service


async def _stop_browser(env: BrowserEnv) -> None:
    await env.stop()
    if env._app is not None:
        await env._app["db"].close()  # type: ignore[index]
        env._app["identity"].close()  # type: ignore[index]


async def _ready(cluster: Cluster, within: float = 180.0) -> None:
    """Every node's ``/readyz`` green (identity models loaded)."""
    import asyncio

    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        for node in cluster.nodes:
            deadline = loop.time() + within
            while True:
                async with http.get(node.url + "/readyz") as resp:
                    if resp.status == 200:
                        break
                    body = await resp.text()
                assert loop.time() < deadline, f"{node.name} not ready: {body}\n{node.tail()}"
                await asyncio.sleep(0.3)


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path, face_y4m: Path) -> Iterator[tuple[Cluster, BrowserEnv]]:
    """Two loopback nodes with the models behind HAProxy, Chromium, all in one namespace.  With the
    parameter ``True`` (indirect) the nodes mount one recordings folder, else each keeps its own."""
    if not Path(HAPROXY).exists():
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    env_more = {}
    if getattr(request, "param", False):
        env_more["COUNTER_RECORDINGS_DIR"] = str(tmp_path / "shared" / "recordings")
    nodes = Cluster(tmp_path, 2, node_class=LoopbackNode, COUNTER_MODELS_DIR=str(MODELS),
                    COUNTER_DEMO_FACES_DIR=str(FACES), COUNTER_WITNESS_SEGMENT_S="1", **env_more)
    if not nodes.isolated:
        nodes.iso.stop()
        pytest.skip(f"WebRTC through the balancer must stay on loopback: {nodes.iso.why_not_isolated}")
    env = BrowserEnv(nodes.iso)
    try:
        nodes.start()
        nodes.run(_ready(nodes), timeout=240)
        nodes.run(_start_browser(env, nodes, face_y4m), timeout=120)
        yield nodes, env
    finally:
        nodes.run(_stop_browser(env), timeout=60)
        nodes.stop()


async def _recordings(cluster: Cluster, call_id: str) -> list[dict[str, Any]]:
    """The call's recordings in part order, with the tracks their segments hold."""
    conn = await asyncpg.connect(cluster.pg.url)
    try:
        rows = await conn.fetch(
            "SELECT r.id, r.ended_at, r.segments, p.part, p.previous_id, p.node FROM recordings r"
            " JOIN recording_parts p ON p.recording_id = r.id WHERE r.call_id = $1 ORDER BY p.part", call_id)
        out = []
        for row in rows:
            tracks = {t for (raw,) in await conn.fetch(
                "SELECT tracks FROM recording_segments WHERE recording_id = $1", row["id"]) for t in json.loads(raw)}
            out.append({**dict(row), "tracks": tracks})
        return out
    finally:
        await conn.close()


async def _until(check: Any, within: float = 30.0) -> Any:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await check()
        if value or loop.time() > deadline:
            return value
        await asyncio.sleep(0.3)


async def _play_everywhere(cluster: Cluster, rid: str) -> dict[str, list[int]]:
    """The auditor starts playback on each node and reads every segment through the other."""
    out = {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as auditor:
        first = cluster.nodes[0].url
        async with auditor.post(first + "/api/auth/login", json={"username": "audit1", "password": "audit1-demo"}) as r:
            assert r.status == 200, await r.text()
            csrf = {"X-CSRF-Token": (await r.json())["csrf_token"]}
        for play_at, read_at in ((cluster.nodes[0], cluster.nodes[1]), (cluster.nodes[1], cluster.nodes[0])):
            async with auditor.post(f"{play_at.url}/api/recordings/{rid}/play", headers=csrf) as r:
                body = await r.json()
                assert r.status == 200 and body["segments"], (r.status, body)
            sizes = []
            for seg in body["segments"]:
                async with auditor.get(read_at.url + seg["url"]) as r:
                    assert r.status == 200 and r.content_type == "video/webm", (r.status, await r.text())
                    sizes.append(len(await r.read()))
            out[f"{play_at.name}->{read_at.name}"] = sizes
    return out


def _audit_verify(node: LoopbackNode) -> tuple[int, str]:
    """``counter audit verify`` with the node's configuration (run on the cluster's loop: its namespace)."""
    done = subprocess.run([sys.executable, "-m", "counter.cli", "audit", "verify"], env=node.env,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout[-600:] + done.stderr[-600:]


async def _verify_both(cluster: Cluster) -> dict[str, tuple[int, str]]:
    return {node.name: _audit_verify(node) for node in cluster.nodes}  # type: ignore[arg-type]


def test_journey_through_the_balancer_recorded_playable_and_verified_on_both_nodes(
    cluster: tuple[Cluster, BrowserEnv], tmp_path: Path,
) -> None:
    nodes, env = cluster

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        customer, out["readings"] = await reactive_customer(env)
        agent = await staff_page(env, "agent1", "agent1-demo", "/agent")
        call_id = await accept_care_call(env, customer, agent)
        out["call_id"] = call_id
        await claim(agent, MATCHING_LINE)
        out.update(await to_a3(env, customer, agent, call_id, MATCHING_LINE, tmp_path))
        out["picker"] = await puk_picker(env, agent, call_id)
        await agent.click("#tx-list li[data-code='puk.query']")
        await agent.click("#btn-tx-run")
        await puk_confirmed(agent, customer)

        async def both_recorded() -> bool:
            parts = await _recordings(nodes, call_id)
            return bool(parts) and BOTH <= parts[0]["tracks"]

        out["recorded"] = await _until(both_recorded, within=30)
        await hang_up(agent, customer)

        async def closed() -> list[dict[str, Any]] | None:
            parts = await _recordings(nodes, call_id)
            return parts if parts and all(p["ended_at"] is not None for p in parts) else None

        out["parts"] = await _until(closed, within=30) or await _recordings(nodes, call_id)
        if out["parts"] and out["parts"][0]["ended_at"] is not None:
            out["played"] = await _play_everywhere(nodes, out["parts"][0]["id"])
        out["verify"] = await _verify_both(nodes)
        await env.close_all()
        return out

    r = nodes.run(scenario(), timeout=300)
    assert r["face"]["decision"] == "match", r["face"]
    assert r["liveness"]["api_ok"], (r["liveness"], r["readings"])
    assert r["id"]["ok"] and r["level_after_id"] == Level.A3, (r["id"], r["level_after_id"])
    assert r["picker"]["enabled"] == "true", r["picker"]
    assert r["recorded"], ("both parties' tracks in the recording", r["parts"])
    assert r["parts"] and all(p["ended_at"] is not None for p in r["parts"]), r["parts"]
    assert r.get("played") and all(all(sizes) for sizes in r["played"].values()), r.get("played")
    assert all(rc == 0 for rc, _ in r["verify"].values()), r["verify"]


@pytest.mark.parametrize("cluster", [True], indirect=True, ids=["shared-recordings"])  # the dead owner's part
def test_owner_killed_mid_call_the_call_resumes_through_the_other_node(cluster: tuple[Cluster, BrowserEnv]) -> None:
    nodes, env = cluster

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        customer = await env.new_page()
        agent = await staff_page(env, "agent1", "agent1-demo", "/agent")
        await to_queue(customer, senior=True)
        call_id = await answer_connected(agent, customer)
        await claim(agent, MATCHING_LINE)
        out["password"] = await agent.evaluate(
            """async (sid) => { const r = await fetch(`/api/counter/sessions/${sid}/verify-password`, {method: 'POST',
               headers: {'Content-Type': 'application/json', 'X-CSRF-Token': sessionStorage.getItem('rc.csrf')},
               body: JSON.stringify({password: '246810'})}); return r.status; }""", call_id)
        out["level_before"] = await level(env, call_id)

        async def recorded(part: int) -> bool:
            parts = await _recordings(nodes, call_id)
            return len(parts) >= part and BOTH <= parts[part - 1]["tracks"]

        out["first_recorded"] = await _until(lambda: recorded(1), within=30)
        r = aioredis.from_url(nodes.redis.url, decode_responses=True)
        try:
            owner = await r.get(f"{nodes.prefix}:owner:{call_id}")
            where = await r.hgetall(f"{nodes.prefix}:loc")
        finally:
            await r.aclose()
        out["owner"] = owner
        before = int(await customer.evaluate("Number(document.body.dataset.rtcGeneration || 0)"))
        nodes.kill(str(owner))  # the call's owner dies without a word
        # Nobody clicks: both pages come back through HAProxy to the other node, which takes the call over.
        try:
            await customer.wait_for_function(
                "(before) => document.body.dataset.rtc === 'connected'"
                " && Number(document.body.dataset.rtcGeneration) > before", arg=before, timeout=45000)
            await agent.wait_for_selector("body[data-rtc=connected]", timeout=45000)
        except Exception as exc:  # say where each page stood
            seen = {name: await page.evaluate("({...document.body.dataset, screen: document.querySelector("
                                              "'[data-screen]')?.dataset.screen})")
                    for name, page in (("customer", customer), ("agent", agent))}
            r = aioredis.from_url(nodes.redis.url, decode_responses=True)
            try:
                now = {"loc": await r.hgetall(f"{nodes.prefix}:loc"),
                       "agent": await r.get(f"{nodes.prefix}:agent:agent1"),
                       "call": await r.get(f"{nodes.prefix}:call:{call_id}")}
            finally:
                await r.aclose()
            raise AssertionError(f"not back after the owner {owner} died: {seen}\nbefore: {where}\nnow: {now}"
                                 f"\n{nodes.tails()}") from exc
        out["agent_call"] = await agent.evaluate("document.body.dataset.call")
        out["second_recorded"] = await _until(lambda: recorded(2), within=45)
        out["parts"] = await _recordings(nodes, call_id)
        out["level"] = await level(env, call_id)
        await hang_up(agent, customer)
        survivor = next(n for n in nodes.nodes if n.env["COUNTER_NODE_ID"] != owner)
        out["verify"] = _audit_verify(survivor)  # type: ignore[arg-type]
        out["call_id"] = call_id
        await env.close_all()
        return out

    r = nodes.run(scenario(), timeout=300)
    assert r["first_recorded"] and r["owner"] in ("node-a", "node-b"), r
    assert r["agent_call"] == r["call_id"], "the console is back in the same call"
    assert r["second_recorded"], ("the recording goes on in a linked part", r["parts"])
    first, second = r["parts"][:2]
    assert second["previous_id"] == first["id"] and second["node"] != r["owner"], r["parts"]
    assert r["password"] == 200 and r["level_before"] == r["level"] == Level.A1, r
    assert r["verify"][0] == 0, r["verify"]

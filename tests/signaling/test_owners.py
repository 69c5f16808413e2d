"""Call owners on the real Redis: the first claim wins while its node lives; a dead owner is taken over."""

from __future__ import annotations

import asyncio

from signaling.bus import InProcessBus, RedisBus
from signaling.owners import Claim, Owners
from tests.signaling.conftest import REDIS_URL


async def test_first_claim_wins_until_its_node_dies_then_it_is_taken_over(prefix: str) -> None:
    a, b = RedisBus(REDIS_URL, "node-a", prefix), RedisBus(REDIS_URL, "node-b", prefix)

    async def nowhere(key: str, text: str) -> None:
        return None

    await a.start(nowhere)
    await b.start(nowhere)
    try:
        on_a, on_b = Owners(a, "http://a:1"), Owners(b, "http://b:2")
        await a.heartbeat_node(0.5)
        await b.heartbeat_node(30)
        await on_a.heartbeat(0.5)
        await on_b.heartbeat(30)
        assert on_a.secret and on_a.secret == on_b.secret  # requests passed on between them say it
        assert await on_a.claim("c1") == Claim("node-a")
        assert await on_b.claim("c1") == Claim("node-a")  # alive: it stays the owner
        assert await on_b.internal_url("node-a") == "http://a:1"
        assert await on_b.claim("c1", dead="node-a") == Claim("node-b", taken_from="node-a")  # did not answer
        assert await on_a.owner("c1") == "node-b"
        assert await on_a.owners_of(["c1", "c9"]) == ["node-b", None]
        assert await on_a.claim("c2") == Claim("node-a")
        await asyncio.sleep(0.7)  # node a's heartbeat lapses: its calls are taken over by the next claim
        assert await on_b.live_owner("c2") is None and await on_b.internal_url("node-a") is None
        assert await on_b.claim("c2") == Claim("node-b", taken_from="node-a")
        await on_a.release("c2")  # not a's any more: kept
        assert await on_b.owner("c2") == "node-b"
        await on_b.release("c2")
        assert await on_b.owner("c2") is None
    finally:
        await a.close()
        await b.close()


async def test_in_process_the_one_node_owns_every_call() -> None:
    owners = Owners(InProcessBus("solo"))
    assert await owners.claim("c1") == Claim("solo")
    assert await owners.live_owner("c1") == "solo"
    await owners.release("c1")
    assert await owners.owner("c1") is None

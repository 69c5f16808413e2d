"""Two nodes behind HAProxy (round-robin, no stickiness), in their own network namespace: a burst of
simultaneous joins is served by both without any node flipping into its outage mode, and once the
customers are gone (their sockets closed, one node killed with SIGKILL) nobody stays queued and Redis
maps no customer to any node."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from signaling import protocol as p
from signaling.client import SignalingClient
from tests.hardening.balancer import Cluster

#: Over Redis's old unbounded default of 100 connections per node, which then raised: with round-robin
#: each node holds about 120 joins at once (150 over two nodes, 75 each, stayed under it).
CUSTOMERS = 240
GRACE_S = 2.0


async def _queued(http: aiohttp.ClientSession, url: str) -> SignalingClient:
    customer = await SignalingClient.customer(http, url)
    await customer.send(p.Join())
    await customer.expect(p.QueueStatus, within=90)
    return customer


async def _left_in_redis(cluster: Cluster) -> dict[str, int]:
    """What Redis still holds about customers: queue entries, call records, node mappings."""
    r = aioredis.from_url(cluster.redis.url, decode_responses=True)
    try:
        pre = cluster.prefix
        left = {f"lane:{lane}": int(await r.zcard(f"{pre}:lane:{lane}")) for lane in ("care", "general")}
        left["calls"] = len([k async for k in r.scan_iter(match=f"{pre}:call:*", count=500)])
        left["mapped"] = len([k for k in await r.hkeys(f"{pre}:loc") if k.startswith("customer:")])
        return left
    finally:
        await r.aclose()


async def _burst_then_gone(cluster: Cluster) -> tuple[list[Any], collections.Counter[str], dict[str, int]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        results = await asyncio.gather(*(_queued(http, cluster.url) for _ in range(CUSTOMERS)),
                                       return_exceptions=True)
        customers = [c for c in results if isinstance(c, SignalingClient)]
        failed = [repr(e) for e in results if not isinstance(e, SignalingClient)]
        nodes = collections.Counter(c.welcome.node for c in customers if c.welcome is not None)
        # One node dies with its customers' sockets; the others' customers close theirs.
        cluster.kill("b")
        await asyncio.gather(*(c.close() for c in customers))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GRACE_S + 30  # the dead node's presence lapses (6 s), then the grace
        left = await _left_in_redis(cluster)
        while any(left.values()) and loop.time() < deadline:
            await asyncio.sleep(0.5)
            left = await _left_in_redis(cluster)
        return failed, nodes, left


def test_a_burst_of_joins_over_two_nodes_all_connect_and_nobody_stays_queued(
    balanced: Callable[..., Cluster],
) -> None:
    cluster = balanced(2, COUNTER_SIGNALING_RECONNECT_GRACE_S=str(GRACE_S))
    failed, nodes, left = cluster.run(_burst_then_gone(cluster), timeout=300)
    assert not failed and not any(left.values()), (
        f"{len(failed)} of {CUSTOMERS} joins failed, e.g. {failed[:2]}; left in Redis: {left}\n{cluster.tails()}")
    assert set(nodes) == {"node-a", "node-b"} and sum(nodes.values()) == CUSTOMERS, nodes

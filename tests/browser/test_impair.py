"""The UDP impairment relay on loopback: it forwards both ways, per client, drops the asked fraction
from a seeded RNG (the same drops each run) and adds the asked delay."""

from __future__ import annotations

import asyncio
import time
from typing import cast

from tests.browser.impair import Addr, Impair

LOCAL: Addr = ("127.0.0.1", 0)


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.transport.sendto(b"echo:" + data, addr)


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.got.append(data)
        self.arrived.set()


async def _setup(loss: float = 0.0, delay_s: float = 0.0, seed: int = 19) -> tuple[Impair, asyncio.DatagramTransport]:
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(_Echo, local_addr=LOCAL)
    relay = await Impair(LOCAL, echo.get_extra_info("sockname")[:2], loss=loss, delay_s=delay_s, seed=seed).start()
    return relay, echo


async def _exchange(relay: Impair, n: int, settle: float = 0.5) -> list[bytes]:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(_Client, remote_addr=relay.address)
    for i in range(n):
        transport.sendto(f"{i}".encode())
        if i % 50 == 49:
            await asyncio.sleep(0.01)  # do not overrun the loopback socket buffers
    await asyncio.sleep(settle)
    transport.close()
    return client.got


async def test_forwards_both_ways_without_loss() -> None:
    relay, echo = await _setup()
    try:
        got = await _exchange(relay, 200)
        assert got == [f"echo:{i}".encode() for i in range(200)]
        assert relay.counts.up == relay.counts.down == 200
    finally:
        relay.close()
        echo.close()


async def test_drops_the_fraction_asked_the_same_each_run() -> None:
    runs = []
    for _ in range(2):
        relay, echo = await _setup(loss=0.05, seed=7)
        try:
            got = await _exchange(relay, 2000)
            runs.append((got, relay.counts))
        finally:
            relay.close()
            echo.close()
    (got, counts), (got2, _counts2) = runs
    assert got == got2  # seeded: the same datagrams lost
    assert counts.up == 2000 and counts.up_dropped > 0 and counts.down_dropped > 0
    dropped = counts.up_dropped + counts.down_dropped
    assert 0.03 < dropped / (counts.up + counts.down) < 0.07, counts
    assert len(got) == counts.down - counts.down_dropped


async def test_adds_the_delay_asked() -> None:
    relay, echo = await _setup(delay_s=0.2)
    try:
        loop = asyncio.get_running_loop()
        transport, client = await loop.create_datagram_endpoint(_Client, remote_addr=relay.address)
        sent = time.monotonic()
        transport.sendto(b"x")
        await asyncio.wait_for(client.arrived.wait(), 5)
        assert time.monotonic() - sent >= 0.4  # 0.2 s each way
        assert client.got == [b"echo:x"]
        transport.close()
    finally:
        relay.close()
        echo.close()

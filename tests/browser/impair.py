"""A small userspace UDP impairment relay: loss and delay where ``netem`` is not in the kernel.

It listens on one address and forwards every datagram to another; each client (source address) gets
its own socket towards the target, so the target sees one steady peer per client and its answers go
back to the right one.  Each datagram, either way, is dropped with probability :attr:`Impair.loss`
(from a seeded RNG, so a run can be repeated) and otherwise sent after :attr:`Impair.delay_s`.  Both
may be changed while it runs.  The network tests put it in front of coturn (the customer's TURN over
UDP goes through it), so the call's media crosses it.

    .venv/bin/python -m tests.browser.impair --listen 127.0.0.1:3479 --to 127.0.0.1:3478 --loss 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

Addr = tuple[str, int]


@dataclass
class Counts:
    """Datagrams seen and dropped, per direction (``up``: client to target)."""

    up: int = 0
    up_dropped: int = 0
    down: int = 0
    down_dropped: int = 0


class _Side(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Addr], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] = []  # to the target, before its socket is made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        for data in self.pending:
            self.transport.sendto(data)
        self.pending.clear()

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.on_datagram(data, addr)


@dataclass
class Impair:
    """The relay from ``listen`` to ``target``; :meth:`start` binds it, :meth:`close` ends it."""

    listen: Addr
    target: Addr
    loss: float = 0.0
    delay_s: float = 0.0
    seed: int = 19
    counts: Counts = field(default_factory=Counts)
    _rng: random.Random = field(init=False)
    _front: _Side | None = field(default=None, init=False)
    _backs: dict[Addr, _Side] = field(default_factory=dict, init=False)
    _tasks: set[asyncio.Task[object]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def address(self) -> Addr:
        """Where clients send (the real port when ``listen`` asked for port 0)."""
        assert self._front is not None and self._front.transport is not None
        addr: Addr = self._front.transport.get_extra_info("sockname")[:2]
        return addr

    async def start(self) -> Impair:
        loop = asyncio.get_running_loop()
        front = _Side(self._from_client)
        await loop.create_datagram_endpoint(lambda: front, local_addr=self.listen)
        self._front = front
        return self

    def _drop(self) -> bool:
        return self.loss > 0 and self._rng.random() < self.loss

    def _send(self, side: _Side, data: bytes, addr: Addr | None) -> None:
        if self.delay_s > 0:
            asyncio.get_running_loop().call_later(self.delay_s, self._send_now, side, data, addr)
        else:
            self._send_now(side, data, addr)

    @staticmethod
    def _send_now(side: _Side, data: bytes, addr: Addr | None) -> None:
        if side.transport is None:
            side.pending.append(data)
        elif not side.transport.is_closing():
            side.transport.sendto(data, addr)

    def _from_client(self, data: bytes, client: Addr) -> None:
        self.counts.up += 1
        if self._drop():
            self.counts.up_dropped += 1
            return
        back = self._backs.get(client)
        if back is None:
            back = _Side(lambda d, _a: self._from_target(d, client))
            self._backs[client] = back
            loop = asyncio.get_running_loop()
            self._tasks.add(loop.create_task(loop.create_datagram_endpoint(lambda: back, remote_addr=self.target)))
        self._send(back, data, None)

    def _from_target(self, data: bytes, client: Addr) -> None:
        self.counts.down += 1
        if self._drop():
            self.counts.down_dropped += 1
            return
        if self._front is not None:
            self._send(self._front, data, client)

    def close(self) -> None:
        for side in (self._front, *self._backs.values()):
            if side is not None and side.transport is not None:
                side.transport.close()
        self._backs.clear()


def _addr(text: str) -> Addr:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _main(args: argparse.Namespace) -> None:
    relay = await Impair(_addr(args.listen), _addr(args.to), loss=args.loss, delay_s=args.delay_ms / 1000,
                         seed=args.seed).start()
    print(f"impairing {relay.address} -> {args.to}: loss {args.loss:.1%}, delay {args.delay_ms} ms", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        relay.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, help="host:port to listen on (UDP)")
    ap.add_argument("--to", required=True, help="host:port to forward to (UDP)")
    ap.add_argument("--loss", type=float, default=0.0, help="fraction of datagrams dropped, each way")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="added one-way delay")
    ap.add_argument("--seed", type=int, default=19)
    asyncio.run(_main(ap.parse_args()))

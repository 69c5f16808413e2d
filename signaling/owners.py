"""One owner node per call: the node whose witness holds the call's legs, recording and live frames.

With the Redis bus, ``<prefix>:owner:<call id>`` names the owner (set by the first node that needs
the call's witness, kept for a day at most) and ``<prefix>:url:<node>`` the address other nodes
reach a node at (written with its heartbeat, lapsing with it).  A node is alive while its bus
heartbeat (``<prefix>:alive:<node>``) is.  Each node receives messages for the calls it owns in its
inbox, the bus key ``node:<node id>`` (a connection registered like a principal's, so the bus
routes to it and re-registers it after an outage).  On the in-process bus the one node owns every
call.  A claim is taken under the bus lock: when the owner named is dead (or did not answer), the
claiming node takes the call over and is told whom it took it from.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from signaling.bus import Bus, RedisBus

OWNER_TTL_S = 86400


def inbox_key(node: str) -> str:
    """The bus key of a node's inbox."""
    return f"node:{node}"


@dataclass(frozen=True)
class Claim:
    """The owner of a call, and the dead owner it was taken over from (``None``: no takeover)."""

    node: str
    taken_from: str | None = None


class Owners:
    """Who owns each call, and where each node is reached (see the module docs)."""

    def __init__(self, bus: Bus, url: str = "") -> None:
        self.bus = bus
        self.url = url
        self._local: dict[str, str] = {}
        self._redis = bus.redis if isinstance(bus, RedisBus) else None
        self._prefix = bus.prefix if isinstance(bus, RedisBus) else ""
        #: Shared by the nodes through Redis: a request passed on by a node says it (and is trusted to
        #: have passed that node's rate limits).  Empty on the in-process bus: nothing is passed on.
        self.secret = ""

    @property
    def node_id(self) -> str:
        return self.bus.node_id

    def _k(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def heartbeat(self, ttl_s: float) -> None:
        """Say where this node is reached, for ``ttl_s`` seconds; read the nodes' shared secret."""
        if self._redis is None:
            return
        if self.url:
            await self._redis.set(self._k("url", self.node_id), self.url, px=max(1, int(ttl_s * 1000)))
        await self._redis.set(self._k("node_secret"), secrets.token_urlsafe(32), nx=True)
        raw = await self._redis.get(self._k("node_secret"))
        self.secret = raw if isinstance(raw, str) else ""

    async def alive(self, node: str) -> bool:
        if node == self.node_id or self._redis is None:
            return node == self.node_id
        return bool(await self._redis.exists(self._k("alive", node)))

    async def internal_url(self, node: str) -> str | None:
        """Where ``node`` is reached (``None``: not said, or the node is gone)."""
        if self._redis is None:
            return None
        raw = await self._redis.get(self._k("url", node))
        return raw if isinstance(raw, str) and raw else None

    async def owner(self, call_id: str) -> str | None:
        """The call's owner as recorded (alive or not), ``None`` before anyone needed its witness."""
        if self._redis is None:
            return self._local.get(call_id)
        raw = await self._redis.get(self._k("owner", call_id))
        return raw if isinstance(raw, str) else None

    async def owners_of(self, call_ids: list[str]) -> list[str | None]:
        """:meth:`owner` of each call, in one round trip."""
        if self._redis is None or not call_ids:
            return [self._local.get(c) for c in call_ids]
        raw = await self._redis.mget([self._k("owner", c) for c in call_ids])
        return [r if isinstance(r, str) else None for r in raw]

    async def live_owner(self, call_id: str) -> str | None:
        """The call's owner if it is alive, else ``None``."""
        node = await self.owner(call_id)
        return node if node is not None and await self.alive(node) else None

    async def claim(self, call_id: str, dead: str | None = None) -> Claim:
        """The owner of ``call_id``: the one recorded while it is alive (and is not ``dead``: a node
        that did not answer), else this node from now on."""
        if self._redis is None:
            self._local[call_id] = self.node_id
            return Claim(self.node_id)
        current = await self.owner(call_id)
        if current is not None and current != dead and await self.alive(current):
            return Claim(current)  # the usual case (every candidate of a leg): no lock
        async with self.bus.lock():
            current = await self.owner(call_id)
            if current is not None and current != dead and await self.alive(current):
                return Claim(current)
            await self._redis.set(self._k("owner", call_id), self.node_id, ex=OWNER_TTL_S)
        taken = current if current is not None and current != self.node_id else None
        return Claim(self.node_id, taken)

    async def release(self, call_id: str) -> None:
        """The call is over here: forget its owner if that is this node."""
        if self._redis is None:
            self._local.pop(call_id, None)
            return
        if await self.owner(call_id) == self.node_id:
            await self._redis.delete(self._k("owner", call_id))


async def forward(owners: Owners, node: str, text: str) -> bool:
    """Put ``text`` in ``node``'s inbox; ``False`` when nobody received it (the node is gone)."""
    return await owners.bus.send(inbox_key(node), text)


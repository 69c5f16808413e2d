"""Message routing between connections and the shared queue/presence state, on one node or many.

:class:`Bus` is the interface.  :class:`InProcessBus` (the default) keeps everything in this process;
:class:`RedisBus` shares it between ``counter serve`` processes: each node subscribes to its own
pub/sub channel, a hash maps each connected principal to its node, the lanes are sorted sets changed
atomically (``MULTI``), presence keys expire unless heartbeaten, and routing decisions are serialised
by a lock (``SET NX PX`` released by a compare-and-delete script).  Its connection pool is bounded and
waits for a free connection (a burst of joins queues up instead of failing).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from signaling.protocol import Lane
from signaling.state import AgentRecord, CallRecord

log = logging.getLogger("signaling.bus")

Deliver = Callable[[str, str], Awaitable[None]]
LANES: tuple[Lane, ...] = ("care", "general")


class Bus(abc.ABC):
    """Routing (``send`` to a principal key, wherever it is connected) and shared routing state."""

    #: Exceptions meaning "the shared state is unreachable for now" (the service degrades, then recovers).
    unavailable: tuple[type[BaseException], ...] = ()

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._deliver: Deliver | None = None
        self.local: set[str] = set()

    async def start(self, deliver: Deliver) -> None:
        """Start receiving: ``deliver(key, text)`` is called for messages to keys connected here."""
        self._deliver = deliver

    async def close(self) -> None:  # noqa: B027 - nothing to release in the simplest bus
        """Stop receiving and release connections."""

    # routing --------------------------------------------------------------------------------

    async def register(self, key: str) -> None:
        """``key`` is now connected to this node."""
        self.local.add(key)

    async def unregister(self, key: str) -> None:
        """``key`` left this node."""
        self.local.discard(key)

    async def send(self, key: str, text: str) -> bool:
        """Deliver ``text`` to ``key``; ``False`` if it is connected nowhere (dropped)."""
        if key in self.local and self._deliver is not None:
            await self._deliver(key, text)
            return True
        return await self._send_remote(key, text)

    async def _send_remote(self, key: str, text: str) -> bool:
        return False

    # state ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Serialise routing decisions across every node."""

    @abc.abstractmethod
    async def get_call(self, call_id: str) -> CallRecord | None: ...

    async def read_call(self, call_id: str) -> CallRecord | None:
        """Like :meth:`get_call` for readers that change nothing (may return the stored object)."""
        return await self.get_call(call_id)

    @abc.abstractmethod
    async def put_call(self, call: CallRecord) -> None: ...

    @abc.abstractmethod
    async def delete_call(self, call_id: str) -> None:
        """Forget the call and take it out of its lane."""

    @abc.abstractmethod
    async def enqueue(self, call: CallRecord) -> None:
        """Store the call and put it in its lane at ``call.score``, atomically."""

    @abc.abstractmethod
    async def dequeue(self, call: CallRecord) -> bool:
        """Store the call and take it out of its lane, atomically; ``False`` if it was not queued."""

    @abc.abstractmethod
    async def lane(self, lane: Lane) -> list[tuple[str, float]]:
        """The lane's call ids with their scores, head first."""

    @abc.abstractmethod
    async def calls(self) -> list[CallRecord]:
        """Every known call (queued or connected)."""

    async def read_calls(self) -> list[CallRecord]:
        """Like :meth:`calls` for readers that change nothing (may return the stored objects)."""
        return await self.calls()

    @abc.abstractmethod
    async def get_agent(self, agent_id: str) -> AgentRecord | None: ...

    @abc.abstractmethod
    async def put_agent(self, agent: AgentRecord, ttl_s: float) -> None:
        """Store presence; it lapses after ``ttl_s`` unless put again (heartbeat)."""

    @abc.abstractmethod
    async def remove_agent(self, agent_id: str) -> None: ...

    @abc.abstractmethod
    async def agents(self) -> list[AgentRecord]: ...

    async def read_agents(self) -> list[AgentRecord]:
        """Like :meth:`agents` for readers that change nothing (may return the stored objects)."""
        return await self.agents()

    async def head_score(self, lane: Lane) -> float:
        """A score that puts a call before every call now in ``lane``."""
        entries = await self.lane(lane)
        return (entries[0][1] - 1.0) if entries else 0.0

    # node liveness -------------------------------------------------------------------------

    def receiving(self) -> bool:
        """Whether messages routed to this node reach it (``False`` while re-subscribing after an outage)."""
        return True

    async def heartbeat_node(self, ttl_s: float) -> None:  # noqa: B027 - one process has nothing to say
        """This node is alive for ``ttl_s`` more seconds."""

    async def orphaned_keys(self) -> list[str]:
        """Keys registered to nodes that stopped heartbeating (killed); they are unregistered here."""
        return []

    async def stale_keys(self) -> list[str]:
        """Keys registered to this node without a connection here (their unregistering was lost, as in
        an outage), seen so on two passes in a row; they are unregistered here."""
        return []

    async def connected_keys(self) -> set[str]:
        """Every key connected to some node."""
        return set(self.local)


class InProcessBus(Bus):
    """Everything in this process: the default for a single ``counter serve``."""

    def __init__(self, node_id: str = "local") -> None:
        super().__init__(node_id)
        self._lock = asyncio.Lock()
        self._calls: dict[str, CallRecord] = {}
        self._lanes: dict[Lane, dict[str, float]] = {lane: {} for lane in LANES}
        self._agents: dict[str, AgentRecord] = {}

    def lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._locked()

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        async with self._lock:
            yield

    async def get_call(self, call_id: str) -> CallRecord | None:
        call = self._calls.get(call_id)
        return call.model_copy(deep=True) if call is not None else None

    async def read_call(self, call_id: str) -> CallRecord | None:
        return self._calls.get(call_id)

    async def put_call(self, call: CallRecord) -> None:
        self._calls[call.call_id] = call.model_copy(deep=True)

    async def delete_call(self, call_id: str) -> None:
        self._calls.pop(call_id, None)
        for lane in self._lanes.values():
            lane.pop(call_id, None)

    async def enqueue(self, call: CallRecord) -> None:
        await self.put_call(call)
        self._lanes[call.lane][call.call_id] = call.score

    async def dequeue(self, call: CallRecord) -> bool:
        await self.put_call(call)
        return self._lanes[call.lane].pop(call.call_id, None) is not None

    async def lane(self, lane: Lane) -> list[tuple[str, float]]:
        return sorted(self._lanes[lane].items(), key=lambda item: item[1])

    async def calls(self) -> list[CallRecord]:
        return [c.model_copy(deep=True) for c in self._calls.values()]

    async def read_calls(self) -> list[CallRecord]:
        return list(self._calls.values())

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        agent = self._agents.get(agent_id)
        return agent.model_copy(deep=True) if agent is not None else None

    async def put_agent(self, agent: AgentRecord, ttl_s: float) -> None:
        self._agents[agent.id] = agent.model_copy(deep=True)

    async def remove_agent(self, agent_id: str) -> None:
        self._agents.pop(agent_id, None)

    async def agents(self) -> list[AgentRecord]:
        return [a.model_copy(deep=True) for a in self._agents.values()]

    async def read_agents(self) -> list[AgentRecord]:
        return list(self._agents.values())


_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""
_UNREGISTER = """
if redis.call('hget', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('hdel', KEYS[1], ARGV[1]) else return 0 end
"""


class RedisBus(Bus):
    """Shared state and routing through Redis, so several nodes serve one queue."""

    def __init__(self, url: str, node_id: str, prefix: str = "rc", lock_ttl_ms: int = 5000,
                 max_connections: int = 64, pool_timeout_s: float = 5.0) -> None:
        super().__init__(node_id)
        import redis.asyncio as aioredis
        import redis.exceptions as redis_errors

        self.unavailable = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)
        # The default pool raises at its limit (100), which the service takes for Redis being down: a
        # burst of joins would flip the node into its outage mode.  This one waits for a connection.
        pool = aioredis.BlockingConnectionPool.from_url(url, decode_responses=True, max_connections=max_connections,
                                                         timeout=pool_timeout_s)
        self.redis = aioredis.Redis.from_pool(pool)
        self._stale_seen: set[str] = set()
        self.prefix = prefix
        self.lock_ttl_ms = lock_ttl_ms
        self._pubsub = self.redis.pubsub()
        self._reader: asyncio.Task[None] | None = None
        self._receiving = True
        self._unlock = self.redis.register_script(_UNLOCK)
        self._unregister = self.redis.register_script(_UNREGISTER)

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def start(self, deliver: Deliver) -> None:
        await super().start(deliver)
        await self._pubsub.subscribe(self._k("node", self.node_id))
        self._reader = asyncio.create_task(self._read(), name=f"redis-bus-{self.node_id}")

    def receiving(self) -> bool:
        return self._receiving

    async def _resubscribe(self) -> None:
        """A fresh pub/sub connection subscribed to this node's channel (after Redis came back)."""
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        self._pubsub = self.redis.pubsub()
        await self._pubsub.subscribe(self._k("node", self.node_id))
        self._receiving = True
        log.warning("redis bus: subscribed again after an outage")

    async def _read(self) -> None:
        while True:
            try:
                if not self._receiving:
                    await self._resubscribe()
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._receiving:
                    log.warning("redis bus: pub/sub lost (%s); subscribing again when Redis answers", exc)
                self._receiving = False
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            try:
                key, text = json.loads(message["data"])
            except (ValueError, TypeError):
                log.warning("redis bus: dropped a malformed routed message")
                continue
            if key in self.local and self._deliver is not None:
                try:
                    await self._deliver(key, text)
                except Exception:
                    log.exception("redis bus: delivering to %s failed", key)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for key in list(self.local):
            await self.unregister(key)
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.redis.aclose()

    async def register(self, key: str) -> None:
        await super().register(key)
        await self.redis.hset(self._k("loc"), key, self.node_id)

    async def unregister(self, key: str) -> None:
        await super().unregister(key)
        await self._unregister(keys=[self._k("loc")], args=[key, self.node_id])

    async def _send_remote(self, key: str, text: str) -> bool:
        node = await self.redis.hget(self._k("loc"), key)
        if not isinstance(node, str):
            return False
        receivers = await self.redis.publish(self._k("node", node), json.dumps([key, text]))
        return bool(receivers)

    def lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._locked()

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        token = secrets.token_hex(8)
        key = self._k("lock")
        delay = 0.002
        while not await self.redis.set(key, token, nx=True, px=self.lock_ttl_ms):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            await self._unlock(keys=[key], args=[token])

    async def heartbeat_node(self, ttl_s: float) -> None:
        await self.redis.set(self._k("alive", self.node_id), "1", px=max(1, int(ttl_s * 1000)))

    async def orphaned_keys(self) -> list[str]:
        where = {str(k): str(v) for k, v in (await self.redis.hgetall(self._k("loc"))).items()}
        nodes = sorted({n for n in where.values() if n != self.node_id})
        if not nodes:
            return []
        alive = await self.redis.mget([self._k("alive", n) for n in nodes])
        dead = {n for n, flag in zip(nodes, alive, strict=True) if flag is None}
        orphans = []
        for key, node in where.items():
            if node in dead and await self._unregister(keys=[self._k("loc")], args=[key, node]):
                orphans.append(key)
        return orphans

    async def stale_keys(self) -> list[str]:
        where = await self.redis.hgetall(self._k("loc"))
        # A key is between ``local`` and the hash for a moment while it registers or unregisters: only
        # what two passes in a row saw is stale.
        mine = {str(k) for k, v in where.items() if v == self.node_id and k not in self.local}
        stale, self._stale_seen = mine & self._stale_seen, mine - self._stale_seen
        released = []
        for key in sorted(stale):
            if key not in self.local and await self._unregister(keys=[self._k("loc")], args=[key, self.node_id]):
                released.append(key)
        return released

    async def connected_keys(self) -> set[str]:
        return {str(k) for k in await self.redis.hkeys(self._k("loc"))}

    async def get_call(self, call_id: str) -> CallRecord | None:
        raw = await self.redis.get(self._k("call", call_id))
        return CallRecord.model_validate_json(raw) if raw else None

    async def put_call(self, call: CallRecord) -> None:
        await self.redis.set(self._k("call", call.call_id), call.model_dump_json())

    async def delete_call(self, call_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._k("call", call_id))
            for lane in LANES:
                pipe.zrem(self._k("lane", lane), call_id)
            await pipe.execute()

    async def enqueue(self, call: CallRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._k("call", call.call_id), call.model_dump_json())
            pipe.zadd(self._k("lane", call.lane), {call.call_id: call.score})
            await pipe.execute()

    async def dequeue(self, call: CallRecord) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._k("call", call.call_id), call.model_dump_json())
            pipe.zrem(self._k("lane", call.lane), call.call_id)
            _, removed = await pipe.execute()
        return bool(removed)

    async def lane(self, lane: Lane) -> list[tuple[str, float]]:
        items: list[Any] = await self.redis.zrange(self._k("lane", lane), 0, -1, withscores=True)
        return [(str(member), float(score)) for member, score in items]

    async def calls(self) -> list[CallRecord]:
        keys = [k async for k in self.redis.scan_iter(match=self._k("call", "*"), count=500)]
        if not keys:
            return []
        raws = await self.redis.mget(keys)
        return [CallRecord.model_validate_json(r) for r in raws if r]

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        raw = await self.redis.get(self._k("agent", agent_id))
        return AgentRecord.model_validate_json(raw) if raw else None

    async def put_agent(self, agent: AgentRecord, ttl_s: float) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._k("agent", agent.id), agent.model_dump_json(), px=int(ttl_s * 1000))
            pipe.sadd(self._k("agents"), agent.id)
            await pipe.execute()

    async def remove_agent(self, agent_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._k("agent", agent_id))
            pipe.srem(self._k("agents"), agent_id)
            await pipe.execute()

    async def agents(self) -> list[AgentRecord]:
        ids: list[str] = sorted(str(i) for i in await self.redis.smembers(self._k("agents")))
        if not ids:
            return []
        raws = await self.redis.mget([self._k("agent", i) for i in ids])
        lapsed = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
        if lapsed:
            await self.redis.srem(self._k("agents"), *lapsed)
        return [AgentRecord.model_validate_json(r) for r in raws if r]


def make_bus(redis_url: str, node_id: str, prefix: str, max_connections: int = 64,
             pool_timeout_s: float = 5.0) -> Bus:
    """The Redis bus when ``redis_url`` is set (a pool of at most ``max_connections``, each command
    waiting up to ``pool_timeout_s`` for a free one), else the in-process bus."""
    if redis_url:
        return RedisBus(redis_url, node_id, prefix, max_connections=max_connections, pool_timeout_s=pool_timeout_s)
    return InProcessBus(node_id)

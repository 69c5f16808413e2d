"""The HTTP side of signaling: background upkeep of the join tokens."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from counter.app import build_app
from counter.appkeys import DB
from counter.config import Settings
from signaling.store import SignalingStore


async def _tokens(store: SignalingStore) -> set[str]:
    return {str(r["call_id"]) for r in await store.db.fetch("SELECT call_id FROM signaling_tokens")}


async def test_expired_join_tokens_are_purged_on_a_schedule(settings: Settings) -> None:
    fast = settings.model_copy(update={"signaling": {**settings.signaling, "token_purge_every_s": 0.1}})
    async with TestClient(TestServer(await build_app(fast))) as client:
        store = SignalingStore(client.app[DB])
        expired = await store.mint_token(-1.0)
        live = await store.mint_token(900.0)
        for _ in range(200):  # bounded: at most about 10 s
            if expired.call_id not in await _tokens(store):
                break
            await asyncio.sleep(0.05)
        assert expired.call_id not in await _tokens(store)
        assert live.call_id in await _tokens(store)

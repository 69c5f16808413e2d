"""Guessing limits (counter/guessing.py) on both databases."""

from __future__ import annotations

import asyncio

from counter.guessing import LOGIN_ACCOUNT, Guard
from storage import Database


async def test_logins_of_one_name_at_once_are_all_remembered(db: Database) -> None:
    # Two nodes logging the same name in from the same address at the same moment: each must succeed
    # (an update-then-insert let both inserts race into a unique violation, a 409 at login).
    guard = Guard(db)
    await asyncio.gather(*(guard.remember("10.0.0.1", "audit1") for _ in range(8)))
    assert await guard.known("10.0.0.1", "audit1")
    assert not await guard.known("10.0.0.2", "audit1")


async def test_failures_count_up_to_a_lock_and_success_clears_them(db: Database) -> None:
    guard = Guard(db)
    verdicts = [await guard.failed(LOGIN_ACCOUNT, "agent1") for _ in range(LOGIN_ACCOUNT.free + 1)]
    assert [v.failures for v in verdicts] == list(range(1, LOGIN_ACCOUNT.free + 2))
    assert verdicts[-1].locked_for_s and await guard.locked(LOGIN_ACCOUNT, "agent1") > 0
    await guard.succeeded(LOGIN_ACCOUNT, "agent1")
    assert await guard.locked(LOGIN_ACCOUNT, "agent1") == 0

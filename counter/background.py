"""Background work of one process, started and stopped with the app through aiohttp's ``cleanup_ctx``.

A job registered here starts when the app starts (before the ``on_startup`` handlers) and is cancelled
and awaited on cleanup (after the ``on_shutdown`` handlers), so it never outlives the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web

log = logging.getLogger("counter.background")

Job = Callable[[], Awaitable[object]]


def run_in_background(app: web.Application, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``run()`` as a task named ``name`` while the app runs; cancelled and awaited on cleanup."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run(), name=name)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(lifecycle)


def repeat(app: web.Application, name: str, every_s: float, job: Job, *, first_after_s: float = 0.0) -> None:
    """Call ``job()`` every ``every_s`` seconds while the app runs (first after ``first_after_s``).

    A failing run is logged and the job is tried again at its next turn: one bad pass must not stop it.
    """

    async def loop() -> None:
        await asyncio.sleep(first_after_s)
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; retrying in %.0f s", name, every_s)
            await asyncio.sleep(every_s)

    run_in_background(app, name, loop)

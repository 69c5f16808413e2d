"""An event loop on its own thread, inside a network namespace that has only ``lo``.

Linux namespaces belong to threads: after ``unshare(CLONE_NEWNET)`` on this thread, every socket it
opens and every process it starts (the Playwright driver, Chromium) see loopback only, so WebRTC
ICE checks can go nowhere else.  The rest of the test process keeps the normal network (PostgreSQL,
Redis).  Without the privilege to unshare, the loop runs unisolated and :attr:`isolated` says so.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import subprocess
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def _unshare_net() -> str | None:
    """Move the calling thread into a new network namespace with ``lo`` up; return why not, or None."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}"
    done = subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"ip link set lo up failed: {done.stderr.strip()}"
    return None


class IsolatedLoop:
    """``run(coro)`` runs a coroutine on the isolated loop and returns its result."""

    def __init__(self, name: str = "isolated-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.why_not_isolated: str | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    @property
    def isolated(self) -> bool:
        return self.why_not_isolated is None

    def _enter(self) -> str | None:
        """Move this loop's thread into its network namespace; why not, or ``None``."""
        return _unshare_net()

    def _main(self) -> None:
        self.why_not_isolated = self._enter()
        asyncio.set_event_loop(self.loop)
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

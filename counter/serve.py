"""``counter serve``: the whole service in one process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import web

from counter.audit import AuditError, KeyFileError
from counter.config import ConfigError, Settings
from counter.demo import DEMO_STAFF
from storage import DatabaseError


def ssl_context(settings: Settings) -> ssl.SSLContext:
    from counter.certs import ensure_certs

    paths = ensure_certs(settings.cert_dir, settings.cert_names)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(paths.cert, paths.key)
    return ctx


def banner(settings: Settings, demo: bool) -> str:
    scheme = "https" if settings.tls else "http"
    host = "localhost" if settings.host in ("0.0.0.0", "::", "", "127.0.0.1") else settings.host
    base = f"{scheme}://{host}:{settings.port}"
    lines = [
        f"Remote Counter (远程柜台) is up on {scheme}://{settings.host}:{settings.port}",
        f"  customer   (mobile) {base}/customer",
        f"  agent      console  {base}/agent",
        f"  supervisor wall     {base}/supervisor",
        f"  auditor    console  {base}/auditor",
        f"  health              {base}/healthz  {base}/readyz",
    ]
    if settings.tls and settings.host in ("0.0.0.0", "::"):
        from counter.certs import lan_addresses

        for addr in lan_addresses()[:3]:
            shown = f"[{addr}]" if ":" in addr else addr
            lines.append(f"  on the LAN          {scheme}://{shown}:{settings.port}/customer")
        lines.append(f"  phones: trust {settings.cert_dir / 'ca.crt'} or accept the certificate warning once")
    if demo:
        lines.append("  demo logins:")
        lines += [f"    {d.role.value:<10} {d.username} / {d.password}" for d in DEMO_STAFF]
    lines.append("Press Ctrl+C to stop (open calls are told, nothing is lost).")
    return "\n".join(lines)


async def run(settings: Settings, *, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM, then shut down gracefully."""
    from counter.app import build_app

    app = await build_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    ctx = ssl_context(settings) if settings.tls else None
    site = web.TCPSite(runner, settings.host, settings.port, ssl_context=ctx, shutdown_timeout=10)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await site.start()
        print(banner(settings, settings.demo_data), flush=True)
        if ready is not None:
            ready.set()
        await stop.wait()
        print("shutting down: telling open calls, flushing the audit log...", flush=True)
    finally:
        await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def event_loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for ``Settings.event_loop``: uvloop's (when installed, or asked for), else
    ``None`` (asyncio's own).  Raises :class:`ImportError` when uvloop is asked for and absent."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _serve(args: argparse.Namespace) -> int:
    from counter.cli import settings_from_args

    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["port"] = args.port
    if args.host is not None:
        overrides["host"] = args.host
    settings = settings_from_args(args)
    if overrides:
        settings = settings.model_copy(update=overrides)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from signaling.witness.compat import AiortcIncompatible

    try:
        loop_factory = event_loop_factory(settings.event_loop)
    except ImportError:
        print("counter: event_loop = uvloop but uvloop is not installed: pip install '.[fast]'", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(run(settings))
    except AiortcIncompatible as exc:
        print(f"counter: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"counter: {exc}", file=sys.stderr)
        return 1
    except DatabaseError as exc:
        print(f"counter: database error: {exc}", file=sys.stderr)
        return 1
    except (KeyFileError, AuditError) as exc:
        print(f"counter: audit log: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"counter: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("serve", help="run the whole service in one process")
    parser.add_argument("--host", default=None, help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=None, help="port (default 8443)")
    parser.set_defaults(func=_serve)

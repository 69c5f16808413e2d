"""``counter probe call --url ...``: place one real call through a running server and print JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from pathlib import Path

from signaling.client import ClientError


def _probe_call(args: argparse.Namespace) -> int:
    from signaling.peer import loopback_only
    from signaling.probe import place_call

    loopback_only()  # both peers run in this process: their media never needs to leave it
    try:
        tls = ssl.create_default_context(cafile=str(args.cafile) if args.cafile else None)
    except OSError as exc:
        print(json.dumps({"ok": False, "error": f"--cafile {args.cafile}: {exc.strerror or exc}"}))
        return 2
    try:
        result = asyncio.run(
            place_call(args.url, args.user, args.password, agent_url=args.agent_url, frames=args.frames,
                       care=args.care, within=args.timeout, tls=tls,
                       record=(args.auditor, args.auditor_password) if args.record else None)
        )
    except (ClientError, TimeoutError, OSError) as exc:
        print(json.dumps({"ok": False, "error": str(exc) or type(exc).__name__}))
        return 1
    print(json.dumps({"ok": True, **result}))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    probe = sub.add_parser("probe", help="check a running server from outside")
    kinds = probe.add_subparsers(dest="probe", required=True)
    call = kinds.add_parser("call", help="place one call between two aiortc peers through the server")
    call.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8443")
    call.add_argument("--agent-url", default=None, help="where the agent connects (another node; default --url)")
    call.add_argument("--user", default="agent1", help="agent login (default: demo agent1)")
    call.add_argument("--password", default="agent1-demo", help="agent password")
    call.add_argument("--frames", type=int, default=30, help="frames to receive before hanging up")
    call.add_argument("--care", action="store_true", help="join the care lane")
    call.add_argument("--timeout", type=float, default=30.0, help="seconds allowed per step")
    call.add_argument("--record", action="store_true",
                      help="record the call (both parties' legs to the witness) and report the recording")
    call.add_argument("--auditor", default="audit1", help="auditor login that reads the recording (with --record)")
    call.add_argument("--auditor-password", default="audit1-demo", help="that auditor's password")
    call.add_argument("--cafile", type=Path, default=None,
                      help="CA certificate(s) to trust for https (default: the local CA of the settings' cert_dir)")
    # The composition root fills ``cafile`` from the settings when it is not given (``local_ca``).
    call.set_defaults(func=_probe_call, local_ca="cafile")

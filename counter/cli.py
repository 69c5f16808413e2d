"""The ``counter`` command."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from counter.config import ConfigError, Settings, load_settings

#: Modules adding subcommands: each has ``register(subparsers) -> None``; a subcommand sets
#: ``func`` (``args -> int``) with ``set_defaults``.
COMMAND_MODULES: list[str] = [
    "counter.serve",
    "signaling.cli",
    "identity.cli",
    "counter.audit.cli",
    "counter.keys",
    "counter.staffing_cli",
]


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Load the settings, with ``--config`` honoured; raises :class:`ConfigError`."""
    config: Path | None = getattr(args, "config", None)
    return load_settings(config)


def _certs(args: argparse.Namespace) -> int:
    from counter.certs import create_certs

    settings = settings_from_args(args)
    paths = create_certs(args.dir or settings.cert_dir, [*settings.cert_names, *args.name])
    print(f"CA certificate:     {paths.ca_cert}  (install it on phones to trust the service)")
    print(f"server certificate: {paths.cert}")
    print(f"server key:         {paths.key}  (mode 0600, never commit it)")
    return 0


def _config(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    print(json.dumps(settings.model_dump(mode="json"), indent=2, ensure_ascii=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="counter", description="Remote Counter (远程柜台) video counter service"
    )
    parser.add_argument("--config", type=Path, default=None, help="settings file (default: counter.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    certs = sub.add_parser("certs", help="create a local CA and a server certificate in certs/")
    certs.add_argument("--dir", type=Path, default=None, help="where to write them (default: cert_dir)")
    certs.add_argument("--name", action="append", default=[], help="an extra DNS name (repeatable)")
    certs.set_defaults(func=_certs)

    config = sub.add_parser("config", help="print the effective settings")
    config.set_defaults(func=_config)

    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None] = module.register
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        local_ca: str | None = getattr(args, "local_ca", None)
        if local_ca and getattr(args, local_ca) is None:
            # a client of our own server trusts our own CA unless told otherwise
            ca = settings_from_args(args).cert_dir / "ca.crt"
            setattr(args, local_ca, ca if ca.is_file() else None)
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"counter: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())

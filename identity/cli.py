"""``counter models ...`` and ``counter identity ...`` subcommands."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from identity.models import check_models


def _models_check(args: argparse.Namespace) -> int:
    statuses = check_models(args.models_dir)
    if args.json:
        print(json.dumps([asdict(s) for s in statuses], indent=2))
    else:
        width = max(len(s.filename) for s in statuses)
        for s in statuses:
            print(f"{s.status:8} {s.filename:{width}}  {s.path or '-'}")
            if s.hint:
                print(f"         {s.hint}")
    return 0 if all(s.status == "ok" for s in statuses) else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``models`` and ``identity`` subcommands."""
    models = sub.add_parser("models", help="ONNX model files used by identity checks")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    check = models_sub.add_parser("check", help="list each model and its status (exit 1 if any is not ok)")
    check.add_argument("--models-dir", type=Path, default=None, help="folder searched first")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=_models_check)

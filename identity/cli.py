"""``counter models ...`` and ``counter identity ...`` subcommands."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from identity.images import ImageError
from identity.models import ModelError, check_models

Command = Callable[[argparse.Namespace], int]


def _plain_errors(func: Command) -> Command:
    """A missing model, an unreadable file or a bad image: one line saying what to do, exit 2."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (ModelError, ImageError) as exc:
            print(f"counter: {exc}", file=sys.stderr)
        except OSError as exc:
            print(f"counter: cannot read {exc.filename or 'the file'}: {exc.strerror or exc}", file=sys.stderr)
        return 2

    return run


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


@_plain_errors
def _verify(args: argparse.Namespace) -> int:
    from identity.face import FaceEngine
    from identity.models import ModelRegistry

    engine = FaceEngine(ModelRegistry(args.models_dir))
    try:
        result = engine.verify_sync(args.live.read_bytes(), args.reference.read_bytes())
    finally:
        engine.close()
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    else:
        print(f"{result.decision}  score {result.score:.4f}  threshold {result.threshold:.3f}")
        for note in result.notes:
            print(f"  {note.code}: {note.en} {note.zh}")
    return 0 if result.decision == "match" else 1


@_plain_errors
def _read_id(args: argparse.Namespace) -> int:
    from identity.idcard import IdCardReader

    result = IdCardReader().read_sync(args.card.read_bytes())
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    else:
        for key, value in result.fields.items():
            print(f"{key:12} {value}")
        print("number valid" if result.number_valid else f"NOT valid: {', '.join(result.errors)}")
        for item in result.quality.guidance():
            print(f"  {item['code']}: {item['en']} {item['zh']}")
    return 0 if result.number_valid else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``models`` and ``identity`` subcommands."""
    models = sub.add_parser("models", help="ONNX model files used by identity checks")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    check = models_sub.add_parser("check", help="list each model and its status (exit 1 if any is not ok)")
    check.add_argument("--models-dir", type=Path, default=None, help="folder searched first")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=_models_check)

    ident = sub.add_parser("identity", help="face verification and ID card reading from image files")
    ident_sub = ident.add_subparsers(dest="identity_command", required=True)
    verify = ident_sub.add_parser("verify", help="compare the face in LIVE with REFERENCE (exit 0 on a match)")
    verify.add_argument("live", type=Path)
    verify.add_argument("reference", type=Path)
    verify.add_argument("--models-dir", type=Path, default=None)
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=_verify)
    read = ident_sub.add_parser("read-id", help="read a resident ID card photo (exit 0 when the number is valid)")
    read.add_argument("card", type=Path)
    read.add_argument("--json", action="store_true")
    read.set_defaults(func=_read_id)

"""``counter audit ...``: verify, export, proofs, checkpoints, retention purge."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from counter.audit.keys import Checkpoint, KeyFileError, Signer, load_public_key, public_pem, raw_public


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="verify, export and prove the tamper-evident audit log")
    cmds = audit.add_subparsers(dest="audit_command", required=True)

    verify = cmds.add_parser(
        "verify", help="recompute the whole log from the database (or check a BUNDLE offline); exit 1 if tampered"
    )
    verify.add_argument("bundle", nargs="?", type=Path, help="a bundle.json from `counter audit export`")
    verify.add_argument(
        "--public-key",
        help="trusted public key: PEM file, 64 hex characters, or note verifier key (required for a BUNDLE)",
    )
    verify.add_argument(
        "--checkpoint", type=Path, action="append", default=[],
        help="a checkpoint kept elsewhere: JSON from /api/audit/checkpoint/latest or the note from /checkpoint"
             " (repeatable); a fork or rollback against it fails",
    )
    verify.add_argument("--witness", action="append", default=[],
                        help="cosignature verifier key of a witness you trust (repeatable)")
    verify.add_argument("--quorum", type=int, default=0,
                        help="cosignatures of those witnesses the log (or a BUNDLE's checkpoint) needs (k of n)")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(func=_verify)

    export = cmds.add_parser("export", help="entries with inclusion proofs, checkpoints and the public key")
    export.add_argument("--from", dest="first", type=int, default=0, help="first seq (default 0)")
    export.add_argument("--to", dest="last", type=int, default=None,
                        help="last seq, inclusive (default: the newest)")
    export.add_argument("--since", type=int, action="append", default=[],
                        help="add a consistency proof from this tree size (a checkpoint you kept; repeatable)")
    export.set_defaults(func=_export)

    proof = cmds.add_parser("proof", help="inclusion proof of entry SEQ")
    proof.add_argument("seq", type=int)
    proof.add_argument("--size", type=int, default=None, help="tree size (default: latest checkpoint)")
    proof.set_defaults(func=_proof)

    cons = cmds.add_parser("consistency", help="consistency proof between two tree sizes")
    cons.add_argument("old", type=int)
    cons.add_argument("new", type=int, nargs="?", default=None)
    cons.set_defaults(func=_consistency)

    cp = cmds.add_parser("checkpoint", help="sign and print the latest checkpoint")
    cp.set_defaults(func=_checkpoint)

    key = cmds.add_parser("key", help="print the public key checkpoints are signed with")
    key.set_defaults(func=_key)

    purge = cmds.add_parser("purge", help="delete personal data of entries older than the retention period")
    purge.add_argument("--days", type=int, default=None, help="default: evidence_retention_days")
    purge.set_defaults(func=_purge)


    witness = sub.add_parser("witness", help="a C2SP tlog-witness that cosigns audit checkpoints (any machine)")
    wcmds = witness.add_subparsers(dest="witness_command", required=True)
    wserve = wcmds.add_parser("serve", help="serve POST /add-checkpoint")
    wkey = wcmds.add_parser("key", help="print the witness's cosignature verifier key")
    for p in (wserve, wkey):
        p.add_argument("--state-dir", type=Path, required=True, help="its key and state (created 0600)")
        p.add_argument("--name", required=True, help="its name, a schema-less URL (witness.example/w1)")
    wserve.add_argument("--log", action="append", default=[], required=True,
                        help="note verifier key of a log to witness (counter audit key prints it; repeatable)")
    wserve.add_argument("--host", default="127.0.0.1")
    wserve.add_argument("--port", type=int, default=8480)
    wserve.set_defaults(func=_witness_serve)
    wkey.set_defaults(func=_witness_key)


def _witness_key(args: argparse.Namespace) -> int:
    from counter.audit.witness import Witness

    args.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    print(Witness(args.state_dir, args.name, []).verifier_key)
    return 0


def _witness_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from counter.audit.witness import Witness

    args.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        witness = Witness(args.state_dir, args.name, args.log)
    except (KeyFileError, ValueError) as exc:
        print(f"counter witness: {exc}", file=sys.stderr)
        return 2
    print(f"witness {args.name} on http://{args.host}:{args.port}  key: {witness.verifier_key}", flush=True)
    web.run_app(witness.app(), host=args.host, port=args.port, print=None, access_log=None)
    return 0


def _settings(args: argparse.Namespace) -> Any:
    from counter.cli import settings_from_args

    return settings_from_args(args)


def _print(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _public_key_text(args: argparse.Namespace) -> str | None:
    value: str | None = args.public_key
    if value and Path(value).is_file():
        return Path(value).read_text()
    return value


def _verify(args: argparse.Namespace) -> int:
    from counter.audit.verify import verify_bundle, verify_database
    from counter.audit.witness import Cosigner

    pinned = _public_key_text(args)
    try:
        witnesses = [Cosigner.parse(w) for w in args.witness]
    except ValueError as exc:
        print(f"counter audit: a witness key: {exc}", file=sys.stderr)
        return 2
    if not 0 <= args.quorum <= len(witnesses):
        print(f"counter audit: --quorum {args.quorum} needs as many --witness keys", file=sys.stderr)
        return 2
    if args.bundle is not None:
        if not pinned:
            print("counter audit: a bundle proves nothing with its own key: give the published key with"
                  " --public-key (PEM file, hex, or the note verifier key)", file=sys.stderr)
            return 2
        try:
            bundle = json.loads(args.bundle.read_text(encoding="utf-8"))
            kept = [_kept(p, load_public_key(pinned)) for p in args.checkpoint]
        except (OSError, ValueError, KeyError, TypeError, KeyFileError) as exc:
            print(f"counter audit: cannot read {args.bundle} or a kept checkpoint: {exc}", file=sys.stderr)
            return 2
        report = verify_bundle(bundle if isinstance(bundle, dict) else {}, pinned, kept, witnesses, args.quorum)
    else:
        settings = _settings(args)
        if pinned is not None:
            key = load_public_key(pinned)
        else:
            path = settings.effective_audit_key_file
            if not path.exists():
                print(f"counter audit: no key file {path}; give --public-key", file=sys.stderr)
                return 2
            key = Signer.from_file(path).public_key
        try:
            trusted = [_kept(p, key) for p in args.checkpoint]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"counter audit: cannot read a kept checkpoint: {exc}", file=sys.stderr)
            return 2

        async def run() -> Any:
            from storage import open_database

            db = await open_database(settings.effective_database_url)
            try:
                return await verify_database(db, key, trusted=trusted, witnesses=witnesses, quorum=args.quorum)
            finally:
                await db.close()

        report = asyncio.run(run())
    if args.json:
        _print(report.to_json())
    else:
        print(report.summary())
    return 0 if report.ok else 1


def _kept(path: Path, key: Any) -> Checkpoint:
    """A checkpoint an auditor kept: the JSON of /api/audit/checkpoint/latest, or the signed note of
    /checkpoint (checked against the trusted key)."""
    from counter.audit.keys import checkpoint_from_note

    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        return Checkpoint.from_json(json.loads(text))
    return checkpoint_from_note(text, key)[0]


def _with_log(args: argparse.Namespace, action: Any) -> int:
    from counter.audit import open_audit_log
    from storage import migrate, open_database

    settings = _settings(args)

    async def run() -> Any:
        db = await open_database(settings.effective_database_url)
        try:
            await migrate(db)
            log = await open_audit_log(db, settings)
            try:
                return await action(log, settings)
            finally:
                await log.close()
        finally:
            await db.close()

    try:
        result = asyncio.run(run())
    except KeyFileError as exc:
        print(f"counter audit: {exc}", file=sys.stderr)
        return 2
    if result is not None:
        _print(result)
    return 0


def _export(args: argparse.Namespace) -> int:
    from counter.audit.verify import export_bundle
    from counter.audit.witnessing import WitnessConfig, Witnessing

    async def action(log: Any, settings: Any) -> Any:
        witnessing = Witnessing(log, [WitnessConfig.parse(w) for w in settings.audit_witnesses])
        try:
            cosign = witnessing.cosign if witnessing.witnesses else None
            return await export_bundle(log, args.first, args.last, args.since, cosign)
        finally:
            await witnessing.close()

    return _with_log(args, action)


def _proof(args: argparse.Namespace) -> int:
    async def action(log: Any, _: Any) -> Any:
        await log.flush()
        proof = await log.inclusion_proof(args.seq, args.size)
        cp = await log.checkpoint_at(proof.tree_size)
        return {**proof.to_json(), "checkpoint": cp.to_json() if cp else None}

    return _with_log(args, action)


def _consistency(args: argparse.Namespace) -> int:
    async def action(log: Any, _: Any) -> Any:
        await log.flush()
        new = args.new if args.new is not None else log.latest_checkpoint().tree_size
        return {"old_size": args.old, "new_size": new, "path": await log.consistency_proof(args.old, new)}

    return _with_log(args, action)


def _checkpoint(args: argparse.Namespace) -> int:
    async def action(log: Any, _: Any) -> Any:
        cp = await log.flush()
        return cp.to_json() if cp else {"tree_size": 0}

    return _with_log(args, action)


def _key(args: argparse.Namespace) -> int:
    settings = _settings(args)
    signer = Signer.from_file(settings.effective_audit_key_file, settings.audit_origin)
    print(public_pem(signer.public_key), end="")
    print(f"raw: {raw_public(signer.public_key).hex()}  key id: {signer.key_id}")
    print(f"note verifier key: {signer.verifier_key}")
    return 0


def _purge(args: argparse.Namespace) -> int:
    from storage.timeutil import utcnow

    async def action(log: Any, settings: Any) -> Any:
        days = args.days if args.days is not None else settings.evidence_retention_days
        count = await log.purge_personal(utcnow() - timedelta(days=days))
        return {"purged_entries": count, "older_than_days": days}

    return _with_log(args, action)

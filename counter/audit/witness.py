"""A small C2SP ``tlog-witness``: ``counter witness serve`` (own key, own state, any machine).

For each log it is told to trust (by its note verifier key, whose name is the log's origin) it
keeps the latest checkpoint it cosigned, and cosigns a new one only if a consistency proof shows it
extends that one (``POST /add-checkpoint``).  Cosignatures are C2SP ``tlog-cosignature`` v1
(Ed25519): ``— <witness name> base64(key hash || u64 time || signature)`` over
``cosignature/v1\\ntime <t>\\n`` + the checkpoint body.  State is one JSON file, replaced atomically
(written, fsynced, renamed) before answering, under a lock: a checked size is never rolled back by a
concurrent request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from counter.audit.keys import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    NoteSignature,
    Signer,
    note_key_hash,
    note_verifier_key,
    parse_checkpoint_body,
    parse_verifier_key,
    raw_public,
    split_note,
)
from counter.audit.merkle import EMPTY_ROOT, ProofError, verify_consistency
from identity.files import write_atomic

MAX_BODY = 64 * 1024
MAX_PROOF = 63
SIZE_TYPE = "text/x.tlog.size"


def cosigned_message(body: str, timestamp: int) -> bytes:
    """What an Ed25519 cosignature/v1 signs."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode("utf-8")


def cosign(signer: Signer, body: str, timestamp: int) -> str:
    """A cosignature line by ``signer`` (its origin is the witness name) on the checkpoint ``body``."""
    stamp = timestamp.to_bytes(8, "big") + signer.sign_raw(cosigned_message(body, timestamp))
    key_hash = note_key_hash(signer.origin, ALG_COSIGNATURE_V1, raw_public(signer.public_key))
    return NoteSignature(signer.origin, key_hash, stamp).line()


@dataclass(frozen=True)
class Cosigner:
    """A witness a verifier trusts: its name and cosignature key."""

    name: str
    key: Ed25519PublicKey

    @classmethod
    def parse(cls, vkey: str) -> Cosigner:
        name, alg, key = parse_verifier_key(vkey)
        if alg != ALG_COSIGNATURE_V1:
            raise ValueError(f"{name}: not a cosignature/v1 key (algorithm {alg})")
        return cls(name, key)

    def valid(self, body: str, sigs: list[NoteSignature]) -> bool:
        """Whether ``sigs`` hold a valid cosignature by this witness on ``body``."""
        want = note_key_hash(self.name, ALG_COSIGNATURE_V1, raw_public(self.key))
        for sig in sigs:
            if sig.name == self.name and sig.key_hash == want and len(sig.signature) == 72:
                stamp = int.from_bytes(sig.signature[:8], "big")
                try:
                    self.key.verify(sig.signature[8:], cosigned_message(body, stamp))
                except InvalidSignature:
                    continue
                return True
        return False


def count_cosignatures(note: str, witnesses: list[Cosigner]) -> list[str]:
    """The names of ``witnesses`` that validly cosigned the checkpoint ``note`` (signed note text)."""
    body, sigs = split_note(note)
    return [w.name for w in witnesses if w.valid(body, sigs)]


class Witness:
    """The witness state and the ``add-checkpoint`` logic."""

    def __init__(self, state_dir: Path, name: str, logs: list[str]) -> None:
        self.signer = Signer.from_file(state_dir / "witness_ed25519.key", name)
        self.state_file = state_dir / "state.json"
        self.logs: dict[str, Ed25519PublicKey] = {}
        for vkey in logs:
            origin, alg, key = parse_verifier_key(vkey)
            if alg != ALG_ED25519:
                raise ValueError(f"log {origin}: not an Ed25519 note key")
            self.logs[origin] = key
        self.state: dict[str, dict[str, str | int]] = (
            json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        )
        self.lock = asyncio.Lock()

    @property
    def verifier_key(self) -> str:
        return note_verifier_key(self.signer.origin, self.signer.public_key, ALG_COSIGNATURE_V1)

    def _save(self) -> None:
        write_atomic(self.state_file, json.dumps(self.state).encode())

    async def add_checkpoint(self, request: web.Request) -> web.Response:
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return _text(413, "request too large")
        try:
            text = raw.decode("utf-8")
            head, note = text.split("\n\n", 1)
            lines = head.split("\n")
            if not lines[0].startswith("old ") or len(lines) - 1 > MAX_PROOF:
                raise ValueError("expected 'old <size>' and at most 63 proof lines")
            old_text = lines[0][4:]
            if not old_text.isdigit() or (old_text != "0" and old_text.startswith("0")):
                raise ValueError("bad old size")
            old = int(old_text)
            proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
            body, sigs = split_note(note)
            origin, size, root, _ = parse_checkpoint_body(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _text(400, f"malformed request: {exc}")
        key = self.logs.get(origin)
        if key is None:
            return _text(404, f"unknown log {origin[:100]!r}")
        want = note_key_hash(origin, ALG_ED25519, raw_public(key))
        mine = [s for s in sigs if s.name == origin and s.key_hash == want]
        try:
            if not mine:
                raise InvalidSignature
            for sig in mine:
                key.verify(sig.signature, body.encode("utf-8"))
        except InvalidSignature:
            return _text(403, "no valid signature by the log's key")
        if old > size:
            return _text(400, "old size is larger than the checkpoint")
        async with self.lock:
            held = self.state.get(origin, {"size": 0, "root": base64.b64encode(EMPTY_ROOT).decode()})
            held_size, held_root = int(held["size"]), base64.b64decode(str(held["root"]))
            if old != held_size:
                return web.Response(status=409, text=f"{held_size}\n", content_type=SIZE_TYPE)
            if size == 0 and root != EMPTY_ROOT:
                return _text(422, "a checkpoint of size 0 must have the empty root")
            try:
                if old == 0 and proof:
                    raise ProofError("a proof from size 0 must be empty")
                if old == size and root != held_root:
                    raise ProofError("same size, another root")
                if 0 < old < size:
                    verify_consistency(old, size, proof, held_root, root)
            except ProofError as exc:
                return _text(422, f"not consistent with the checkpoint of size {held_size}: {exc}")
            self.state[origin] = {"size": size, "root": base64.b64encode(root).decode()}
            await asyncio.get_running_loop().run_in_executor(None, self._save)
        return web.Response(text=cosign(self.signer, body, int(time.time())) + "\n", content_type="text/plain")

    async def info(self, request: web.Request) -> web.Response:
        return web.json_response({"name": self.signer.origin, "verifier_key": self.verifier_key,
                                  "logs": sorted(self.logs)})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/add-checkpoint", self.add_checkpoint)
        app.router.add_get("/", self.info)
        return app


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type="text/plain")


def main(argv: list[str] | None = None) -> int:
    """``python -m counter.audit.witness serve|key ...``: the witness alone, without the service's imports."""
    import argparse

    from counter.audit.cli import register

    parser = argparse.ArgumentParser(prog="counter")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["witness", *(argv if argv is not None else sys.argv[1:])])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())

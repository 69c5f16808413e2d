"""Full verification of the stored log, and export/offline verification of proof bundles."""

from __future__ import annotations

import asyncio
import bisect
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from counter.audit.entry import AuditError, commitment
from counter.audit.keys import (
    ORIGIN,
    Checkpoint,
    checkpoint_from_note,
    checkpoint_valid,
    key_id,
    load_public_key,
    note_verifier_key,
    public_pem,
    raw_public,
)
from counter.audit.log import AuditLog
from counter.audit.merkle import Frontier, ProofError, hash_leaf, verify_consistency, verify_inclusion
from counter.audit.purge import PURGE_ACTION, purged_seqs
from counter.audit.witness import Cosigner, count_cosignatures
from storage import Database

BUNDLE_FORMAT = "remote-counter-audit-bundle/v1"
_INDEXED = ("time", "action", "actor_role", "actor_id", "outcome", "session_id", "account")
_CHUNK = 5000
#: Most kept checkpoints a bundle carries consistency proofs from.
MAX_KEPT = 20


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the log.  ``seq`` is the first entry it concerns."""

    kind: str  # altered | removed | reordered | truncated | bad_signature | personal_altered
    seq: int | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "seq": self.seq, "message": self.message}


@dataclass
class VerifyReport:
    """What verification found."""

    entries: int = 0
    checkpoints: int = 0
    verified_size: int = 0
    problems: list[Problem] = field(default_factory=list)
    witnessed_size: int | None = None  # with a quorum: the largest checkpoint k witnesses cosigned

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        """The first problem in log order (the earliest entry altered, removed or reordered)."""
        return self.problems[0] if self.problems else None

    def summary(self) -> str:
        head = (
            f"{self.entries} entries, {self.checkpoints} signed checkpoints;"
            f" entries 0..{self.verified_size - 1} proven by a signed checkpoint"
            if self.verified_size
            else f"{self.entries} entries, {self.checkpoints} signed checkpoints"
        )
        if self.ok:
            tail = self.entries - self.verified_size
            return f"OK: {head}" + (f"; {tail} newer entries not yet checkpointed" if tail > 0 else "")
        first = self.first
        assert first is not None
        loud = [p.message for p in self.problems if p.kind in ("rollback", "fork") and p is not first]
        return f"TAMPERED: {head}\nfirst problem: {first.message}" + "".join(f"\n{m}" for m in loud) + (
            f"\n({len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "verified_size": self.verified_size,
            "witnessed_size": self.witnessed_size,
            "first_problem": self.first.to_json() if self.first else None,
            "problems": [p.to_json() for p in self.problems[:50]],
        }


@dataclass
class _Scan:
    """State of a scan over the entries in seq order (run chunk by chunk in an executor)."""

    checkpoints: dict[int, Checkpoint]
    bad: dict[int, Checkpoint]
    tree: Frontier = field(default_factory=Frontier)
    expected: int = 0
    last_good: int = 0
    since_good: bool = False  # a precise problem was found after last_good
    verified: int = 0
    problems: list[Problem] = field(default_factory=list)
    roots: dict[int, str] = field(default_factory=dict)
    committed: list[int] = field(default_factory=list)  # entries whose body commits to personal data
    purges: list[tuple[int, int]] = field(default_factory=list)  # seq ranges audit.purge entries name

    def feed(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            seq = int(row["seq"])
            if seq != self.expected:
                self._problem("removed", self.expected, f"entries {self.expected}..{seq - 1} were removed")
                self.expected = seq
            body = str(row["body"]).encode("utf-8")
            leaf = hash_leaf(body)
            if leaf.hex() != row["leaf_hash"]:
                self._problem("altered", seq, f"entry {seq} was altered: its content no longer matches its leaf hash")
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = {}
                self._problem("altered", seq, f"entry {seq} was altered: it is not valid JSON any more")
            if isinstance(parsed, dict) and parsed.get("personal"):
                self.committed.append(seq)
            if isinstance(parsed, dict) and parsed.get("action") == PURGE_ACTION and isinstance(
                parsed.get("details"), dict
            ):
                self.purges += purged_seqs(parsed["details"])
            if parsed.get("seq") != seq:
                claimed = parsed.get("seq")
                self._problem("reordered", seq, f"entry stored as {seq} says it is entry {claimed}: reordered")
            else:
                for column in _INDEXED:
                    if parsed.get(column) != row[column]:
                        self._problem("altered", seq, f"entry {seq}: the search column {column!r} was altered")
                        break
            self.tree = self.tree.append(leaf)
            self.expected = seq + 1
            self._at_size(self.tree.size)

    def _at_size(self, size: int) -> None:
        if size in self.bad:
            self._problem(
                "bad_signature",
                self.last_good,
                f"checkpoint of size {size} is not signed by the audit key (key id {self.bad[size].key_id}):"
                f" entries from {self.last_good} on are not proven (tail replaced and re-signed?)",
            )
        cp = self.checkpoints.get(size)
        if cp is None:
            return
        self.roots[size] = self.tree.root().hex()
        if cp.root_hash != self.tree.root().hex():
            if not self.since_good:
                self._problem(
                    "altered",
                    self.last_good,
                    f"entries {self.last_good}..{size - 1} differ from what the checkpoint of size {size} signed"
                    " (altered, removed or reordered, with the hashes recomputed)",
                )
            return
        if not self.problems:
            self.verified = size
        self.last_good = size
        self.since_good = False

    def _problem(self, kind: str, seq: int | None, message: str) -> None:
        self.since_good = True
        if len(self.problems) < 1000:
            self.problems.append(Problem(kind, seq, message))


async def verify_database(
    db: Database, public_key: Ed25519PublicKey, *, trusted: Iterable[Checkpoint] = (),
    witnesses: Sequence[Cosigner] = (), quorum: int = 0,
) -> VerifyReport:
    """Recompute every leaf hash and the tree from the stored entries and check it against every
    signed checkpoint (and any ``trusted`` checkpoints kept elsewhere); name the first problem.
    With a ``quorum``, a checkpoint of the recomputed tree must be cosigned by that many ``witnesses``
    (only what it covers counts as verified)."""
    good: dict[int, Checkpoint] = {}
    bad: dict[int, Checkpoint] = {}
    rows = await db.fetch("SELECT * FROM audit_checkpoints ORDER BY tree_size")
    kept = list(trusted)
    origin = kept[0].origin if kept else ORIGIN
    for cp in [Checkpoint.from_row(r, origin) for r in rows] + kept:
        (good if checkpoint_valid(cp, public_key) else bad)[cp.tree_size] = cp
    scan = _Scan(good, bad)
    loop = asyncio.get_running_loop()
    last = -1
    while True:
        chunk = await db.fetch(
            "SELECT seq, time, action, actor_role, actor_id, outcome, session_id, account, body, leaf_hash"
            f" FROM audit_entries WHERE seq > $1 ORDER BY seq LIMIT {_CHUNK}",
            last,
        )
        if not chunk:
            break
        await loop.run_in_executor(None, scan.feed, chunk)
        last = int(chunk[-1]["seq"])
    stored = scan.tree.size
    beyond = sorted(s for s in good if s > stored)
    if beyond:
        top = beyond[-1]
        scan._problem(
            "truncated",
            scan.expected,
            f"the checkpoint of size {top} was signed but entries {scan.expected}..{top - 1} are gone (tail truncated)",
        )
    for k in kept:
        if not checkpoint_valid(k, public_key):
            continue
        if k.tree_size > stored:
            scan._problem("rollback", stored, f"ROLLBACK: you kept a checkpoint of size {k.tree_size}, the database"
                                              f" holds {stored} entries: it was rolled back or truncated")
        elif scan.roots.get(k.tree_size) not in (None, k.root_hash):
            scan._problem("fork", 0, f"FORK: the stored log of size {k.tree_size} is not the one you kept a"
                                     " checkpoint of: history was rewritten")
    for size in sorted(s for s in bad if s > stored):
        scan._problem("bad_signature", scan.expected, f"checkpoint of size {size} is not signed by the audit key")
    personal = await db.fetch(
        "SELECT p.seq, p.salt, p.data, e.body FROM audit_personal p LEFT JOIN audit_entries e ON e.seq = p.seq"
        " ORDER BY p.seq"
    )
    for row in personal:
        expected = json.loads(row["body"]).get("personal") if row["body"] else None
        if commitment(bytes.fromhex(row["salt"]), str(row["data"]).encode("utf-8")) != expected:
            scan._problem("personal_altered", int(row["seq"]), f"personal data of entry {row['seq']} was altered")
    _missing_personal(scan, {int(r["seq"]) for r in personal})
    witnessed = await _witnessed(db, scan, public_key, list(witnesses), quorum) if quorum else None
    problems = sorted(scan.problems, key=lambda p: (p.seq if p.seq is not None else -1))
    verified = scan.verified if witnessed is None else min(scan.verified, witnessed)
    return VerifyReport(stored, len(good), verified, problems, witnessed)


async def _witnessed(
    db: Database, scan: _Scan, key: Ed25519PublicKey, witnesses: list[Cosigner], quorum: int
) -> int:
    """The largest checkpoint of the recomputed tree with ``quorum`` valid cosignatures of ``witnesses``
    (0 and a ``witness_quorum`` problem when there is none)."""
    rows = await db.fetch("SELECT tree_size, line FROM audit_cosignatures ORDER BY tree_size DESC")
    lines: dict[int, list[str]] = {}
    for row in rows:
        lines.setdefault(int(row["tree_size"]), []).append(str(row["line"]))
    for size in sorted(lines, reverse=True):
        cp = scan.checkpoints.get(size)
        if cp is None or scan.roots.get(size) != cp.root_hash:
            continue
        try:
            if len(count_cosignatures(cp.signed_note(key, lines[size]), witnesses)) >= quorum:
                return size
        except ValueError:
            continue
    if scan.tree.size:
        scan._problem("witness_quorum", None,
                      f"no checkpoint of the stored log is cosigned by {quorum} of the {len(witnesses)} witnesses"
                      " you trust (rewritten, or not witnessed yet)")
    return 0


def _missing_personal(scan: _Scan, stored: set[int]) -> None:
    """Personal data gone without an ``audit.purge`` entry naming it: deleted behind the log's back."""
    purges = sorted(scan.purges)
    starts = [a for a, _ in purges]
    for seq in scan.committed:
        if seq in stored:
            continue
        i = bisect.bisect_right(starts, seq) - 1
        if i >= 0 and any(a <= seq <= b for a, b in purges[max(0, i - 8): i + 1]):
            continue
        scan._problem("personal_removed", seq,
                      f"the personal data of entry {seq} was deleted without a purge entry (not by retention)")


# Bundles ---------------------------------------------------------------------------------------------


async def export_bundle(
    audit: AuditLog, first: int, last: int | None = None, since: Iterable[int] = (),
    cosign: Callable[[Checkpoint], Awaitable[object]] | None = None,
) -> dict[str, Any]:
    """Entries ``first..last`` (inclusive) with inclusion proofs to the latest checkpoint, the
    checkpoints in between (at most 200) with consistency proofs to it, consistency proofs from the
    tree sizes ``since`` (checkpoints an auditor kept), and the public key: checkable offline."""
    anchor = await audit.flush() or audit.latest_checkpoint()
    if anchor is None:
        raise AuditError("the log is empty: nothing to export")
    last = anchor.tree_size - 1 if last is None else last
    if not 0 <= first <= last < anchor.tree_size:
        raise AuditError(f"choose entries within 0..{anchor.tree_size - 1} (from <= to)")
    rows = await audit.db.fetch(
        "SELECT seq, body FROM audit_entries WHERE seq >= $1 AND seq <= $2 ORDER BY seq", first, last
    )
    entries = []
    for row in rows:
        proof = await audit.inclusion_proof(int(row["seq"]), anchor.tree_size)
        entries.append({"seq": proof.seq, "body": row["body"], "leaf_hash": proof.leaf_hash, "path": proof.path})
    checkpoints = []
    for cp in await audit.checkpoints(first + 1, limit=200):
        if cp.tree_size >= anchor.tree_size:
            break
        consistency = await audit.consistency_proof(cp.tree_size, anchor.tree_size)
        checkpoints.append({**cp.to_json(), "consistency": consistency})
    proofs_from = []
    for size in sorted(set(since))[:MAX_KEPT]:
        if not 0 < size <= anchor.tree_size:
            raise AuditError(f"no consistency proof from size {size}: choose 1..{anchor.tree_size}")
        proofs_from.append({"tree_size": size, "root_hash": (await audit.root_at(size)).hex(),
                            "path": await audit.consistency_proof(size, anchor.tree_size)})
    key = audit.signer.public_key
    if cosign is not None:
        await cosign(anchor)
    cosigned = await audit.db.fetch(
        "SELECT line FROM audit_cosignatures WHERE tree_size = $1 ORDER BY witness", anchor.tree_size
    )
    return {
        "format": BUNDLE_FORMAT,
        "public_key": {"pem": public_pem(key), "raw_hex": raw_public(key).hex(), "key_id": key_id(key),
                       "note_verifier_key": note_verifier_key(audit.signer.origin, key)},
        "checkpoint": anchor.to_json(),
        "checkpoint_note": anchor.signed_note(key, [str(r["line"]) for r in cosigned]),
        "entries": entries,
        "checkpoints": checkpoints,
        "proofs_from": proofs_from,
    }


def verify_bundle(
    bundle: dict[str, Any], pinned_key: str | None, kept: Iterable[Checkpoint] = (),
    witnesses: Sequence[Cosigner] = (), quorum: int = 0,
) -> VerifyReport:
    """Check a bundle without the server: signatures under the trusted key ``pinned_key`` (without
    one nothing is trusted: a ``no_trusted_key`` problem), leaf hashes, inclusion and consistency
    proofs, and consistency with the checkpoints the auditor ``kept`` (a ``fork`` or ``rollback``).

    A malformed bundle (missing fields, wrong types, bad hex) is reported as a ``format`` problem."""
    if not pinned_key:
        report = VerifyReport()
        report.problems.append(Problem(
            "no_trusted_key", None,
            "no trusted key given: a bundle's own key proves nothing (anyone can re-sign a forged bundle);"
            " give the published key with --public-key",
        ))
        return report
    try:
        report = _verify_bundle(bundle, pinned_key, list(kept))
        if quorum:
            _check_quorum(report, bundle, pinned_key, list(witnesses), quorum)
        return report
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        report = VerifyReport()
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        report.problems.append(Problem("format", None, f"malformed bundle ({type(exc).__name__}: {what})"))
        return report


def _check_quorum(
    report: VerifyReport, bundle: dict[str, Any], pinned_key: str, witnesses: list[Cosigner], quorum: int
) -> None:
    """At least ``quorum`` of ``witnesses`` must have cosigned the bundle's checkpoint."""
    note = str(bundle.get("checkpoint_note") or "")
    try:
        cp, _ = checkpoint_from_note(note, load_public_key(pinned_key))
        names = count_cosignatures(note, witnesses)
    except ValueError as exc:
        report.problems.append(Problem("witness_quorum", None, f"the bundle's checkpoint note: {exc}"))
        return
    if (cp.tree_size, cp.root_hash) != (bundle["checkpoint"]["tree_size"], bundle["checkpoint"]["root_hash"]):
        report.problems.append(Problem("witness_quorum", None, "the checkpoint note is not the bundle's checkpoint"))
    elif len(names) < quorum:
        report.problems.append(Problem(
            "witness_quorum", None,
            f"{len(names)} of the {len(witnesses)} witnesses you trust cosigned the checkpoint"
            f" ({', '.join(names) or 'none'}); you require {quorum}",
        ))
    if not report.ok:
        report.verified_size = 0


def _checkpoint(c: dict[str, Any]) -> Checkpoint:
    return Checkpoint(int(c["tree_size"]), str(c["root_hash"]), str(c["time"]), str(c["key_id"]),
                      str(c["signature"]), str(c.get("origin", ORIGIN)))


def check_kept(
    kept: Iterable[Checkpoint], key: Ed25519PublicKey, anchor: Checkpoint, proofs: dict[int, dict[str, Any]]
) -> list[Problem]:
    """What is wrong between checkpoints an auditor kept and the newest one now shown (``anchor``):
    a kept checkpoint larger than it (``rollback``), of the same size with another root, or not
    provably a prefix of it (``fork``); or none to prove it with (``unchecked``)."""
    found: list[Problem] = []
    root = bytes.fromhex(anchor.root_hash)
    for k in kept:
        if not checkpoint_valid(k, key):
            found.append(Problem("bad_signature", k.tree_size,
                                 f"the kept checkpoint of size {k.tree_size} is not signed by the trusted key"))
        elif k.tree_size > anchor.tree_size:
            found.append(Problem(
                "rollback", anchor.tree_size,
                f"ROLLBACK: you kept a checkpoint of size {k.tree_size}, the log now shows only {anchor.tree_size}"
                f" entries: entries {anchor.tree_size}..{k.tree_size - 1} were taken back",
            ))
        elif k.tree_size == anchor.tree_size:
            if k.root_hash != anchor.root_hash:
                found.append(Problem("fork", 0, f"FORK: two signed checkpoints of size {k.tree_size} with different"
                                                " roots: the log was rewritten"))
        elif k.tree_size not in proofs:
            found.append(Problem(
                "unchecked", None,
                f"the bundle has no consistency proof from your checkpoint of size {k.tree_size}:"
                f" export with --since {k.tree_size}",
            ))
        else:
            try:
                verify_consistency(k.tree_size, anchor.tree_size,
                                   [bytes.fromhex(p) for p in proofs[k.tree_size].get("consistency")
                                    or proofs[k.tree_size].get("path") or []],
                                   bytes.fromhex(k.root_hash), root)
            except (ProofError, ValueError) as exc:
                found.append(Problem(
                    "fork", 0,
                    f"FORK: the log of size {anchor.tree_size} does not extend your checkpoint of size {k.tree_size}"
                    f" ({exc}): history was rewritten",
                ))
    return found


def _verify_bundle(bundle: dict[str, Any], pinned_key: str, kept: list[Checkpoint]) -> VerifyReport:
    report = VerifyReport()

    def problem(kind: str, seq: int | None, message: str) -> None:
        report.problems.append(Problem(kind, seq, message))

    if bundle.get("format") != BUNDLE_FORMAT:
        problem("format", None, f"not a {BUNDLE_FORMAT} bundle")
        return report
    key = load_public_key(pinned_key)
    named = bundle["public_key"]
    if raw_public(key).hex() != named["raw_hex"] or load_public_key(named["pem"]) != key:
        problem("bad_signature", None, "the bundle names another public key than the one you trust")
    anchor = _checkpoint(bundle["checkpoint"])
    if named.get("note_verifier_key", None) not in (None, note_verifier_key(anchor.origin, key)):
        problem("bad_signature", None, "the bundle names another note verifier key than the one you trust")
    if not checkpoint_valid(anchor, key):
        problem("bad_signature", None, f"the bundle's checkpoint (size {anchor.tree_size}) is not validly signed")
    root = bytes.fromhex(anchor.root_hash)
    expected: int | None = None
    for e in bundle["entries"]:
        seq = int(e["seq"])
        if expected is not None and seq != expected:
            problem("removed", expected, f"entries {expected}..{seq - 1} are missing from the bundle")
        expected = seq + 1
        body = str(e["body"]).encode("utf-8")
        leaf = hash_leaf(body)
        try:
            parsed_seq = json.loads(body).get("seq")
        except ValueError:
            parsed_seq = None
        if parsed_seq != seq:
            problem("reordered", seq, f"entry {seq} says it is entry {parsed_seq}")
        try:
            verify_inclusion(seq, anchor.tree_size, leaf, [bytes.fromhex(p) for p in e["path"]], root)
        except (ProofError, ValueError) as exc:
            problem("altered", seq, f"entry {seq} is not in the signed tree: {exc}")
        report.entries += 1
    report.checkpoints = 1
    for c in bundle.get("checkpoints", []):
        cp = _checkpoint(c)
        if not checkpoint_valid(cp, key):
            problem("bad_signature", cp.tree_size, f"checkpoint of size {cp.tree_size} is not validly signed")
            continue
        try:
            verify_consistency(
                cp.tree_size, anchor.tree_size, [bytes.fromhex(p) for p in c["consistency"]],
                bytes.fromhex(cp.root_hash), root,
            )
        except (ProofError, ValueError) as exc:
            message = f"checkpoint {cp.tree_size} is not consistent with {anchor.tree_size}: {exc}"
            problem("altered", cp.tree_size, message)
        report.checkpoints += 1
    proofs = {int(c["tree_size"]): c for c in bundle.get("checkpoints", [])}
    proofs.update({int(p["tree_size"]): p for p in bundle.get("proofs_from", [])})
    for problem_found in check_kept(kept, key, anchor, proofs):
        report.problems.append(problem_found)
    report.problems.sort(key=lambda p: (p.seq if p.seq is not None else -1))
    if report.ok:
        report.verified_size = anchor.tree_size
    return report

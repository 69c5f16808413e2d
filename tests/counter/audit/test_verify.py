"""Tampering with the stored log or an exported bundle is detected and located, on both back-ends."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from counter.audit import AuditEvent, AuditLog
from counter.audit.keys import Signer, public_pem, raw_public
from counter.audit.merkle import Frontier, hash_leaf
from counter.audit.verify import export_bundle, verify_bundle, verify_database
from counter.cli import main
from storage import Database

N = 30


async def fill(audit: AuditLog) -> None:
    """N entries, appended one after another: each batch gets its own signed checkpoint."""
    for i in range(N):
        await audit.append(AuditEvent("transaction.bill.query", "agent", "agent1", account="13900000000",
                                      details={"i": i, "amount": "12.50"}))
    await audit.flush()


async def row(db: Database, seq: int) -> dict[str, Any]:
    found = await db.fetchrow("SELECT * FROM audit_entries WHERE seq = $1", seq)
    assert found is not None
    return found


async def set_body(db: Database, seq: int, body: str, *, rehash: bool) -> None:
    if rehash:
        await db.execute("UPDATE audit_entries SET body = $1, leaf_hash = $2 WHERE seq = $3",
                         body, hash_leaf(body.encode()).hex(), seq)
    else:
        await db.execute("UPDATE audit_entries SET body = $1 WHERE seq = $2", body, seq)


async def change_byte(db: Database) -> None:
    r = await row(db, 13)
    await set_body(db, 13, r["body"].replace('"amount":"12.50"', '"amount":"12.60"'), rehash=False)


async def change_byte_and_rehash(db: Database) -> None:
    r = await row(db, 13)
    await set_body(db, 13, r["body"].replace('"amount":"12.50"', '"amount":"92.50"'), rehash=True)


async def delete_one(db: Database) -> None:
    await db.execute("DELETE FROM audit_entries WHERE seq = 13")


async def swap_two(db: Database) -> None:
    a, b = await row(db, 10), await row(db, 11)
    for target, source in ((10, b), (11, a)):
        await db.execute("UPDATE audit_entries SET body = $1, leaf_hash = $2 WHERE seq = $3",
                         source["body"], source["leaf_hash"], target)


async def truncate_tail(db: Database) -> None:
    await db.execute("DELETE FROM audit_entries WHERE seq >= 25")


async def replace_tail_and_resign(db: Database) -> None:
    """Rewrite entries 20.. with recomputed hashes, drop their checkpoints and sign new ones."""
    forger = Signer.generate()
    rows = await db.fetch("SELECT seq, body FROM audit_entries ORDER BY seq")
    tree = Frontier()
    await db.execute("DELETE FROM audit_checkpoints WHERE tree_size > 20")
    for r in rows:
        body = r["body"]
        if r["seq"] >= 20:
            body = body.replace('"agent1"', '"agent2"')
            await set_body(db, r["seq"], body, rehash=True)
            await db.execute("UPDATE audit_entries SET actor_id = 'agent2' WHERE seq = $1", r["seq"])
        tree = tree.append(hash_leaf(body.encode()))
        if tree.size > 20:
            cp = forger.sign(tree.size, tree.root(), "2026-11-23T00:00:00+00:00")
            await db.execute(
                "INSERT INTO audit_checkpoints (tree_size, root_hash, time, key_id, signature)"
                " VALUES ($1, $2, $3, $4, $5)", cp.tree_size, cp.root_hash, cp.time, cp.key_id, cp.signature)


CASES: list[tuple[Callable[[Database], Awaitable[None]], str, int]] = [
    (change_byte, "altered", 13),
    (change_byte_and_rehash, "altered", 13),
    (delete_one, "removed", 13),
    (swap_two, "reordered", 10),
    (truncate_tail, "truncated", 25),
    (replace_tail_and_resign, "bad_signature", 20),
]


async def test_untouched_log_verifies(audit: AuditLog, db: Database) -> None:
    await fill(audit)
    report = await verify_database(db, audit.signer.public_key)
    assert report.ok and report.entries == N and report.verified_size == N, report.summary()


@pytest.mark.parametrize(("tamper", "kind", "seq"), CASES, ids=[c[0].__name__ for c in CASES])
async def test_tampering_is_detected_and_located(
    audit: AuditLog, db: Database, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    tamper: Callable[[Database], Awaitable[None]], kind: str, seq: int,
) -> None:
    await fill(audit)
    await audit.close()
    await tamper(db)
    report = await verify_database(db, audit.signer.public_key)
    assert report.first is not None, report.summary()
    assert (report.first.kind, report.first.seq) == (kind, seq), report.summary()
    assert report.verified_size <= seq

    config = tmp_path / "counter.toml"
    config.write_text(f'database_url = "{db_url}"\ndata_dir = "{tmp_path / "data"}"\n')
    key = raw_public(audit.signer.public_key).hex()
    code = await asyncio.to_thread(main, ["--config", str(config), "audit", "verify", "--public-key", key])
    out = capsys.readouterr().out
    assert code == 1 and "TAMPERED" in out and str(seq) in out.split("first problem:")[1], out


async def test_bundle_verifies_offline_and_tampering_is_located(
    audit: AuditLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await fill(audit)
    bundle = await export_bundle(audit, 5, 20)
    assert [e["seq"] for e in bundle["entries"]] == list(range(5, 21))
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    key = raw_public(audit.signer.public_key).hex()
    assert verify_bundle(bundle, key).ok
    assert await asyncio.to_thread(main, ["audit", "verify", str(path), "--public-key", key]) == 0
    assert "OK" in capsys.readouterr().out

    altered = json.loads(path.read_text())
    altered["entries"][2]["body"] = altered["entries"][2]["body"].replace("12.50", "12.51")
    first = verify_bundle(altered, key).first
    assert first is not None and (first.kind, first.seq) == ("altered", 7)

    dropped = json.loads(path.read_text())
    del dropped["entries"][4]
    first = verify_bundle(dropped, key).first
    assert first is not None and (first.kind, first.seq) == ("removed", 9)

    other = Signer.generate()
    resigned = json.loads(path.read_text())
    cp = resigned["checkpoint"]
    forged = other.sign(cp["tree_size"], bytes.fromhex(cp["root_hash"]), cp["time"])
    resigned["checkpoint"] = forged.to_json()
    resigned["checkpoints"] = []
    resigned["public_key"] = {"pem": public_pem(other.public_key), "raw_hex": raw_public(other.public_key).hex()}
    first = verify_bundle(resigned, pinned_key=key).first
    assert first is not None and first.kind == "bad_signature"
    # Self-consistent under its own key: without a trusted key it is an error, not a pass.
    first = verify_bundle(resigned, None).first
    assert first is not None and first.kind == "no_trusted_key"
    path.write_text(json.dumps(resigned))
    assert await asyncio.to_thread(main, ["audit", "verify", str(path)]) == 2
    assert await asyncio.to_thread(main, ["audit", "verify", str(path), "--public-key", key]) == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
async def test_checkpoint_signature_checks_with_plain_openssl(audit: AuditLog, tmp_path: Path) -> None:
    await fill(audit)
    cp = audit.latest_checkpoint()
    assert cp is not None
    (tmp_path / "note.txt").write_bytes(cp.note())
    (tmp_path / "sig.bin").write_bytes(bytes.fromhex(cp.signature))
    (tmp_path / "audit.pem").write_text(public_pem(audit.signer.public_key))
    cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "audit.pem", "-rawin", "-in", "note.txt",
           "-sigfile", "sig.bin"]
    ok = await asyncio.to_thread(subprocess.run, cmd, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "Verified Successfully" in ok.stdout, ok.stdout + ok.stderr
    (tmp_path / "note.txt").write_bytes(cp.note().replace(b"\n30\n", b"\n29\n"))
    bad = await asyncio.to_thread(subprocess.run, cmd, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert bad.returncode != 0

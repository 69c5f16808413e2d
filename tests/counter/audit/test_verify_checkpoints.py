"""Checkpoints an auditor kept outside the system catch a rolled-back or rewritten log, in the
database and in bundles (``--checkpoint``); a bundle needs a trusted key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from counter.audit import AuditEvent, AuditLog
from counter.audit.keys import ALG_COSIGNATURE_V1, Checkpoint, Signer, note_verifier_key, raw_public
from counter.audit.verify import Problem, export_bundle, verify_bundle, verify_database
from counter.audit.witness import Cosigner, cosign
from counter.cli import main
from storage import Database
from tests.counter.audit.conftest import PSEUDONYM_KEY, roll_back


async def grow(audit: AuditLog, n: int, tag: str) -> Checkpoint:
    for i in range(n):
        await audit.append(AuditEvent("transaction.bill.query", "agent", "agent1", details={"i": i, "tag": tag}))
    cp = await audit.flush()
    assert cp is not None
    return cp


def kinds(report_problems: list[Problem]) -> set[str]:
    return {p.kind for p in report_problems}


async def test_kept_checkpoints_catch_rollback_and_fork(db: Database, signer: Signer, tmp_path: Path) -> None:
    key = raw_public(signer.public_key).hex()
    audit = await AuditLog.open(db, signer, PSEUDONYM_KEY, checkpoint_interval=0)
    first = await grow(audit, 5, "a")
    second = await grow(audit, 5, "a")
    # Consistent growth: checked with a proof from the kept size.
    bundle = await export_bundle(audit, 0, None, since=[first.tree_size])
    assert verify_bundle(bundle, key, [first, second]).ok
    unchecked = verify_bundle(await export_bundle(audit, 7, None), key, [first])
    assert kinds(unchecked.problems) == {"unchecked"}
    assert (await verify_database(db, signer.public_key, trusted=[first, second])).ok
    await audit.close()

    # The database is restored from a copy taken at `first`: the auditor's `second` shows it.
    await roll_back(db, first.tree_size)
    audit = await AuditLog.open(db, signer, PSEUDONYM_KEY, checkpoint_interval=0)
    report = await verify_database(db, signer.public_key, trusted=[second])
    assert not report.ok and "rollback" in kinds(report.problems), report.summary()
    rolled = verify_bundle(await export_bundle(audit, 0), key, [second])
    assert "rollback" in kinds(rolled.problems)
    assert "ROLLBACK" in rolled.summary()

    # ... and it then grows again over the same sizes with other entries: a fork.
    await grow(audit, 5, "b")
    report = await verify_database(db, signer.public_key, trusted=[second])
    assert "fork" in kinds(report.problems), report.summary()
    await grow(audit, 3, "b")
    forked = verify_bundle(await export_bundle(audit, 0, None, since=[second.tree_size]), key, [second])
    assert "fork" in kinds(forked.problems), forked.summary()
    await audit.close()

    # The CLI takes the kept checkpoint as JSON or as the signed note and fails loudly.
    path = tmp_path / "bundle.json"
    audit = await AuditLog.open(db, signer, PSEUDONYM_KEY)
    path.write_text(json.dumps(await export_bundle(audit, 0)))
    await audit.close()
    (tmp_path / "cp.json").write_text(json.dumps(second.to_json()))
    (tmp_path / "cp.note").write_text(second.signed_note(signer.public_key))
    for kept in ("cp.json", "cp.note"):
        code = await asyncio.to_thread(
            main, ["audit", "verify", str(path), "--public-key", key, "--checkpoint", str(tmp_path / kept)])
        assert code == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_bundle_without_a_trusted_key_is_an_error(
    db: Database, signer: Signer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audit = await AuditLog.open(db, signer, PSEUDONYM_KEY, checkpoint_interval=0)
    await grow(audit, 3, "a")
    bundle = await export_bundle(audit, 0)
    await audit.close()
    assert not verify_bundle(bundle, None).ok
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    assert await asyncio.to_thread(main, ["audit", "verify", str(path)]) == 2
    assert "--public-key" in capsys.readouterr().err
    vkey = signer.verifier_key  # the note verifier key is accepted as the trusted key too
    assert await asyncio.to_thread(main, ["audit", "verify", str(path), "--public-key", vkey]) == 0


async def test_the_database_check_requires_k_of_n_cosignatures(db: Database, db_url: str, tmp_path: Path) -> None:
    signer = Signer.generate()
    w1, w2 = Signer.generate("witness.example/w1"), Signer.generate("witness.example/w2")
    trusted = [Cosigner(w.origin, w.public_key) for w in (w1, w2)]
    vkeys = [note_verifier_key(w.origin, w.public_key, ALG_COSIGNATURE_V1) for w in (w1, w2)]
    audit = await AuditLog.open(db, signer, PSEUDONYM_KEY, checkpoint_interval=0)
    cp = await grow(audit, 5, "a")
    await audit.close()
    await db.execute("INSERT INTO audit_cosignatures (tree_size, witness, line) VALUES ($1, $2, $3)",
                     cp.tree_size, w1.origin, cosign(w1, cp.note().decode(), 1_700_000_000))
    one = await verify_database(db, signer.public_key, witnesses=trusted, quorum=1)
    assert one.ok and one.witnessed_size == cp.tree_size, one.summary()
    two = await verify_database(db, signer.public_key, witnesses=trusted, quorum=2)
    assert kinds(two.problems) == {"witness_quorum"} and two.verified_size == 0, two.summary()

    # The CLI on the database: 1 of 2 is enough for --quorum 1, not for --quorum 2.
    config = tmp_path / "auditor.toml"
    config.write_text(f'database_url = "{db_url}"\ndata_dir = "{tmp_path / "data"}"\n')
    cli = ["--config", str(config), "audit", "verify", "--public-key", signer.verifier_key,
           "--witness", vkeys[0], "--witness", vkeys[1], "--quorum"]
    assert await asyncio.to_thread(main, [*cli, "1"]) == 0
    assert await asyncio.to_thread(main, [*cli, "2"]) == 1
    assert await asyncio.to_thread(main, [*cli, "3"]) == 2

    # Rewritten under the same key (same size, other entries): the witness's cosignature no longer counts.
    await roll_back(db, 2)
    audit = await AuditLog.open(db, signer, PSEUDONYM_KEY, checkpoint_interval=0)
    forged = await grow(audit, 3, "b")
    await audit.close()
    assert forged.tree_size == cp.tree_size and forged.root_hash != cp.root_hash
    rewritten = await verify_database(db, signer.public_key, witnesses=trusted, quorum=1)
    assert kinds(rewritten.problems) == {"witness_quorum"}, rewritten.summary()
    assert await asyncio.to_thread(main, [*cli, "1"]) == 1

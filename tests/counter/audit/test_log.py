"""The audit log on both back-ends: group commit, tree, proofs, recovery, append_in, personal data."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from counter.audit import AuditError, AuditEvent, AuditLog
from counter.audit.keys import Signer, checkpoint_valid
from counter.audit.merkle import hash_leaf, root_of, verify_consistency, verify_inclusion
from counter.audit.verify import verify_database
from storage import Database
from storage.timeutil import utcnow
from tests.counter.audit.conftest import PSEUDONYM_KEY, event


async def stored_leaves(db: Database) -> list[bytes]:
    rows = await db.fetch("SELECT body, leaf_hash FROM audit_entries ORDER BY seq")
    assert all(hash_leaf(r["body"].encode()).hex() == r["leaf_hash"] for r in rows)
    return [bytes.fromhex(r["leaf_hash"]) for r in rows]


async def test_concurrent_appends_are_group_committed_in_seq_order(audit: AuditLog, db: Database) -> None:
    receipts = await asyncio.gather(*(audit.append(event(i)) for i in range(300)))
    assert sorted(r.seq for r in receipts) == list(range(300))
    # Each batch is one transaction with one time: far fewer batches than entries.
    assert len({r.time for r in receipts}) < 100
    cp = await audit.flush()
    assert cp is not None and cp.tree_size == 300
    assert checkpoint_valid(cp, audit.signer.public_key)
    leaves = await stored_leaves(db)
    assert root_of(leaves).hex() == cp.root_hash == audit.root().hex()
    for r in receipts[::37]:
        assert leaves[r.seq].hex() == r.leaf_hash


async def test_inclusion_and_consistency_proofs_against_checkpoints(audit: AuditLog, db: Database) -> None:
    sizes = []
    for wave in (1, 6, 70, 130):  # crosses the 64-leaf tile boundary held in memory
        await asyncio.gather(*(audit.append(event(i)) for i in range(wave)))
        cp = await audit.flush()
        assert cp is not None
        sizes.append(cp)
    leaves = await stored_leaves(db)
    for cp in sizes:
        root = bytes.fromhex(cp.root_hash)
        for seq in {0, cp.tree_size // 2, cp.tree_size - 1, 63, 64, 65} & set(range(cp.tree_size)):
            proof = await audit.inclusion_proof(seq, cp.tree_size)
            verify_inclusion(seq, cp.tree_size, leaves[seq], [bytes.fromhex(p) for p in proof.path], root)
        for old in sizes:
            if old.tree_size <= cp.tree_size:
                path = await audit.consistency_proof(old.tree_size, cp.tree_size)
                verify_consistency(
                    old.tree_size, cp.tree_size, [bytes.fromhex(p) for p in path], bytes.fromhex(old.root_hash), root
                )
    with pytest.raises(AuditError):
        await audit.inclusion_proof(sizes[-1].tree_size, sizes[-1].tree_size)


async def test_restart_recovers_tree_and_continues(db: Database, signer: Signer) -> None:
    log = await AuditLog.open(db, signer, PSEUDONYM_KEY, checkpoint_interval=0)
    await asyncio.gather(*(log.append(event(i)) for i in range(150)))
    root = log.root()
    await log.close()
    again = await AuditLog.open(db, signer, PSEUDONYM_KEY, checkpoint_interval=0)
    try:
        assert again.size == 150 and again.root() == root
        assert (await again.append(event(150))).seq == 150
        proof = await again.inclusion_proof(100, 151)
        leaves = await stored_leaves(db)
        verify_inclusion(100, 151, leaves[100], [bytes.fromhex(p) for p in proof.path], root_of(leaves))
    finally:
        await again.close()
    assert (await verify_database(db, signer.public_key)).ok


async def test_append_in_commits_and_rolls_back_with_the_callers_transaction(
    audit: AuditLog, db: Database
) -> None:
    await audit.append(event(0))
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await audit.append_in(tx, event(1, action="transaction.plan.change"))
            raise RuntimeError("the caller's change failed")
    async with db.transaction() as tx:
        receipt = await audit.append_in(tx, event(2, action="transaction.plan.change"))
    assert receipt.seq == 1
    after = await audit.append(event(3))
    assert after.seq == 2
    cp = await audit.flush()
    assert cp is not None and cp.tree_size == 3
    assert root_of(await stored_leaves(db)).hex() == cp.root_hash
    report = await verify_database(db, audit.signer.public_key)
    assert report.ok and report.verified_size == 3, report.summary()


async def test_append_after_close_is_still_written(audit: AuditLog, db: Database) -> None:
    await audit.append(event(0))
    await audit.close()
    receipt = await audit.append(event(1))
    assert receipt.seq == 1
    assert (await verify_database(db, audit.signer.public_key)).verified_size == 2


async def test_bad_events_are_refused_with_a_reason(audit: AuditLog) -> None:
    with pytest.raises(AuditError, match="actor_role"):
        await audit.append(AuditEvent("x.y", "admin", "root"))
    with pytest.raises(AuditError, match="evidence"):
        await audit.append(AuditEvent("x.y", "system", "system", evidence=["not-a-hash"]))
    with pytest.raises(AuditError, match="plain JSON"):
        await audit.append(AuditEvent("x.y", "system", "system", details={"t": object()}))


async def test_personal_data_purge_keeps_the_tree_verifiable(
    audit: AuditLog, db: Database, db_url: str
) -> None:
    name = "张三丰Zhangsanfeng"
    receipt = await audit.append(event(0, personal={"name": name, "id_number": "110101199003071234"}))
    await audit.append(event(1))
    entry = await audit.get(receipt.seq)
    assert entry is not None and entry["personal_stored"] and name not in json.dumps(entry)
    assert (await audit.personal(receipt.seq)) == {"name": name, "id_number": "110101199003071234"}
    before = await verify_database(db, audit.signer.public_key)
    assert before.ok
    assert await audit.purge_personal(utcnow() - timedelta(days=1)) == 0
    assert await audit.purge_personal(utcnow() + timedelta(seconds=1)) == 1
    assert await audit.personal(receipt.seq) is None
    entry = await audit.get(receipt.seq)
    assert entry is not None and entry["personal_purged"] and entry["leaf_hash"] == receipt.leaf_hash
    await audit.flush()
    after = await verify_database(db, audit.signer.public_key)
    assert after.ok and after.verified_size == before.verified_size + 1  # + the audit.purge entry
    if db_url.startswith("sqlite:"):
        path = Path(db_url.removeprefix("sqlite:///"))
        blobs = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert name.encode() not in blobs and b"110101199003071234" not in blobs


async def test_two_nodes_share_one_log(db: Database, db_url: str, signer: Signer) -> None:
    """Two processes' logs on one database (two connections): gap-free seqs, one tree, both verify."""
    from storage import open_database

    other_db = await open_database(db_url)
    a = await AuditLog.open(db, signer, PSEUDONYM_KEY, checkpoint_interval=0)
    b = await AuditLog.open(other_db, signer, PSEUDONYM_KEY, checkpoint_interval=0)
    try:
        receipts = await asyncio.gather(
            *(log.append(event(i)) for i in range(120) for log in (a, b))
        )
        assert sorted(r.seq for r in receipts) == list(range(240))
        cp_a, cp_b = await a.flush(), await b.flush()
        assert cp_a is not None and cp_b is not None
        assert cp_a.tree_size == cp_b.tree_size == 240 and cp_a.root_hash == cp_b.root_hash
        proof = await b.inclusion_proof(5, 240)
        leaves = await stored_leaves(db)
        verify_inclusion(5, 240, leaves[5], [bytes.fromhex(p) for p in proof.path], bytes.fromhex(cp_a.root_hash))
    finally:
        await a.close()
        await b.close()
        await other_db.close()
    report = await verify_database(db, signer.public_key)
    assert report.ok and report.verified_size == 240, report.summary()


async def test_append_in_entries_get_checkpointed_without_further_appends(audit: AuditLog, db: Database) -> None:
    await audit.append(event(0))
    async with db.transaction() as tx:
        await audit.append_in(tx, event(1))
    for _ in range(200):  # the writer's idle tick picks it up; bounded wait, not a timing assertion
        cp = audit.latest_checkpoint()
        if cp is not None and cp.tree_size == 2:
            break
        await asyncio.sleep(0.05)
    cp = audit.latest_checkpoint()
    assert cp is not None and cp.tree_size == 2
    assert cp.root_hash == root_of(await stored_leaves(db)).hex()


async def test_a_failed_batch_fails_its_callers_and_the_log_goes_on(audit: AuditLog, db: Database) -> None:
    await audit.append(event(0))
    await db.execute("ALTER TABLE audit_personal RENAME TO audit_personal_away")
    try:
        with pytest.raises(AuditError, match="not written"):
            await audit.append(event(1, personal={"name": "x"}))
    finally:
        await db.execute("ALTER TABLE audit_personal_away RENAME TO audit_personal")
    assert (await audit.append(event(2))).seq == 1
    cp = await audit.flush()
    assert cp is not None and cp.tree_size == 2
    assert (await verify_database(db, audit.signer.public_key)).ok


async def test_restart_uses_the_subtree_cache_and_repairs_a_tampered_one(db: Database, signer: Signer) -> None:
    log = await AuditLog.open(db, signer, PSEUDONYM_KEY, checkpoint_interval=0)
    await asyncio.gather(*(log.append(event(i)) for i in range(200)))
    root = log.root()
    await log.close()
    tiles = await db.fetch("SELECT idx, hash FROM audit_tiles ORDER BY idx")
    mth_leaves = await stored_leaves(db)
    assert [t["idx"] for t in tiles] == [0, 1, 2]
    assert tiles[1]["hash"] == root_of(mth_leaves[64:128]).hex()

    await db.execute("UPDATE audit_tiles SET hash = $1 WHERE idx = 1", "00" * 32)
    again = await AuditLog.open(db, signer, PSEUDONYM_KEY, checkpoint_interval=0)
    try:
        assert again.size == 200 and again.root() == root
        assert (await db.fetchval("SELECT hash FROM audit_tiles WHERE idx = 1")) == tiles[1]["hash"]
        proof = await again.inclusion_proof(70, 200)
        verify_inclusion(70, 200, mth_leaves[70], [bytes.fromhex(p) for p in proof.path], root)
    finally:
        await again.close()


async def test_phone_and_id_numbers_never_stay_in_the_immutable_body(audit: AuditLog, db: Database) -> None:
    """A phone or ID number that reached ``details`` or ``reason`` (they belong in ``personal``) is
    masked before the body is hashed: the body can never be purged."""
    await audit.append(AuditEvent("session.refused", "agent", "agent1", outcome="refused",
                                  details={"tried": {"msisdn": "13912345678"}, "ids": ["11010519491231002X"]},
                                  reason="no line 13912345678: check the number",
                                  personal={"msisdn": "13912345678"}))
    await audit.flush()
    body = str(await db.fetchval("SELECT body FROM audit_entries"))
    assert "12345678" not in body and "19491231" not in body, body
    assert "139****5678" in body and "1101**********002X" in body
    assert "13912345678" in str(await db.fetchval("SELECT data FROM audit_personal"))

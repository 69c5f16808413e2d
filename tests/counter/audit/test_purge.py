"""The retention purge is audited: verify tells a purge from a personal row deleted directly; the
service runs it on a schedule and clears the personal fields of old counter sessions too."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from counter.app import build_app
from counter.audit import AUDIT, AuditEvent, AuditLog
from counter.audit.purge import purge, seq_ranges
from counter.audit.verify import verify_database
from counter.config import Settings
from storage import Database
from storage.timeutil import iso, utcnow


def test_seq_ranges_are_inclusive_runs() -> None:
    assert seq_ranges([1, 2, 3, 7, 9, 10]) == [[1, 3], [7, 7], [9, 10]]
    assert seq_ranges([]) == []


async def _session(db: Database, sid: str, days_ago: int) -> None:
    await db.execute(
        "INSERT INTO counter_sessions (id, agent, account, claimed_name, customer_token_hash, rating_comment,"
        " created_at) VALUES ($1, 'agent1', '13811112222', '张三', 'x', '13811112222 is my number', $2)",
        sid, iso(utcnow() - timedelta(days=days_ago)),
    )


async def test_a_purge_is_audited_and_a_direct_delete_is_tampering(audit: AuditLog, db: Database) -> None:
    seqs = []
    for i in range(6):
        receipt = await audit.append(AuditEvent("identity.id_card", "agent", "agent1", details={"i": i},
                                                personal={"name": "赵六"} if i != 2 else {}))
        seqs.append(receipt.seq)
    await _session(db, "old", 400)
    await _session(db, "new", 0)
    report = await purge(audit, utcnow() + timedelta(seconds=1))
    assert report.personal_entries == 5 and report.sessions == 2
    assert report.seq_ranges == [[seqs[0], seqs[1]], [seqs[3], seqs[5]]]
    entry = await audit.get(report.audit_seqs[0])
    assert entry is not None and entry["entry"]["action"] == "audit.purge"
    assert entry["entry"]["details"]["seq_ranges"] == report.seq_ranges
    await audit.flush()
    assert (await verify_database(db, audit.signer.public_key)).ok  # purged: not tampering

    row = await db.fetchrow("SELECT claimed_name, account, rating_comment FROM counter_sessions WHERE id = 'old'")
    assert row == {"claimed_name": "", "account": None, "rating_comment": None}

    kept = await audit.append(AuditEvent("identity.id_card", "agent", "agent1", personal={"name": "钱七"}))
    await audit.flush()
    await db.execute("DELETE FROM audit_personal WHERE seq = $1", kept.seq)
    report2 = await verify_database(db, audit.signer.public_key)
    assert not report2.ok
    assert report2.first is not None and (report2.first.kind, report2.first.seq) == ("personal_removed", kept.seq)
    assert await purge(audit, utcnow() - timedelta(days=1)) == type(report)()  # nothing old: no entry


async def test_the_service_purges_on_schedule(settings: Settings, tmp_path: Path) -> None:
    app = await build_app(settings.model_copy(update={"audit_purge_interval_s": 0.2, "evidence_retention_days": 30}))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        log = app[AUDIT]
        await _session(log.db, "s-old", 45)
        for _ in range(200):
            found = await log.search(action="audit.purge")
            if found:
                break
            await asyncio.sleep(0.05)
        assert found and found[0]["entry"]["details"]["sessions"] == 1, found
        row = await log.db.fetchrow("SELECT claimed_name, account FROM counter_sessions WHERE id = 's-old'")
        assert row == {"claimed_name": "", "account": None}
        assert json.dumps(found[0]["entry"]).find("13811112222") == -1
    finally:
        await client.close()

"""Reading the audit log back: search filters, pseudonymised accounts, personal data checked on read."""

from __future__ import annotations

from datetime import timedelta

import pytest

from counter.audit import AuditError, AuditLog
from counter.audit.verify import verify_database
from storage import Database
from storage.timeutil import utcnow
from tests.counter.audit.conftest import event


async def test_search_filters_and_pseudonymised_account(audit: AuditLog, db: Database) -> None:
    await audit.append(event(0, action="identity.face_check", outcome="refused", reason="face does not match"))
    await audit.append(event(1, action="transaction.puk.query", account="13812345678"))
    await audit.append(event(2, action="transaction.puk_reset", account="13812345678"))
    await audit.append(event(3, actor_id="audit1", actor_role="auditor", action="auditor.view_record"))
    raw = " ".join(r["body"] for r in await db.fetch("SELECT body FROM audit_entries"))
    assert "13812345678" not in raw
    found = await audit.search(account="13812345678")
    assert [f["seq"] for f in found] == [1, 2]
    assert [f["seq"] for f in await audit.search(action="transaction.puk")] == [1]  # dotted prefix, not "puk_"
    assert [f["seq"] for f in await audit.search(outcome="refused")] == [0]
    assert [f["seq"] for f in await audit.search(actor_id="audit1")] == [3]
    assert [f["seq"] for f in await audit.search(after_seq=1, limit=1)] == [2]
    first = (await audit.search())[0]
    assert first["entry"]["reason"] == "face does not match" and first["entry"]["time"] <= utcnow().isoformat()
    assert await audit.search(since=(utcnow() + timedelta(seconds=5)).isoformat()) == []


async def test_altered_personal_data_is_detected(audit: AuditLog, db: Database) -> None:
    receipt = await audit.append(event(0, personal={"name": "李四"}))
    await db.execute("UPDATE audit_personal SET data = $1 WHERE seq = $2", '{"name":"王五"}', receipt.seq)
    with pytest.raises(AuditError, match="altered"):
        await audit.personal(receipt.seq)
    report = await verify_database(db, audit.signer.public_key)
    assert report.first is not None and report.first.kind == "personal_altered" and report.first.seq == 0

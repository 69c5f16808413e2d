"""A restart finishes what a crash left half-done (issue 16): the app's start-up recovery
(:meth:`counter.transactions.engine.TransactionEngine.recover`, run by the counter component before it
serves), over a real call and a second app started on the same database, as ``counter serve`` restarted.

The restarted app has its own in-process signaling state (no Redis), in which the call is not
connected: the request the customer confirmed is refused, not run (run-again is covered by the
engine's test, tests/counter/transactions/test_engine.py).
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from counter.app import build_app
from counter.appkeys import ACCOUNTS, DB
from counter.config import Settings
from counter.transactions.engine import RESTARTED_CALL_ENDED, RESTARTED_RUNNING
from storage.timeutil import iso
from tests.calls import live_call
from tests.conftest import login

LINE = "13800138000"


async def test_a_restart_finishes_what_the_crash_left(app_client: TestClient[Any, Any], settings: Settings) -> None:
    async with live_call(str(app_client.make_url("")), claimed_phone=LINE) as call:
        sid = call.call_id
        url = f"/api/counter/sessions/{sid}/transactions"
        assert (await call.staff("POST", f"/api/counter/sessions/{sid}/verify-password",
                                 json={"password": "246810"}))[0] == 200
        made = {}
        for key, code, inputs in (("q", "balance.query", {}), ("c", "datacap.set", {"cap_mb": 300}),
                                  ("w", "balance.query", {})):
            status, tx = await call.staff("POST", url, json={"code": code, "inputs": inputs, "idempotency_key": key})
            assert status == 202 and tx["status"] == "pending", tx
            made[key] = tx
        # As a SIGKILL leaves them: inserted but never checked; confirmed by the customer but never run.
        db = app_client.app[DB]
        await db.execute("UPDATE tx_requests SET status = 'running' WHERE id = $1", made["q"]["id"])
        await db.execute("UPDATE tx_requests SET confirmed_at = $2 WHERE id = $1", made["c"]["id"], iso())

        restarted = TestClient(TestServer(await build_app(settings)))  # same database, same node name
        await restarted.start_server()
        try:
            rows = {r["idem_key"]: r for r in await db.fetch(
                "SELECT idem_key, status, confirmed_at, audit_seq FROM tx_requests WHERE session_id = $1", sid)}
            assert {k: r["status"] for k, r in rows.items()} == {"q": "failed", "c": "refused", "w": "pending"}
            for key in ("q", "c"):
                action = await db.fetchval("SELECT action FROM audit_entries WHERE seq = $1", rows[key]["audit_seq"])
                assert action == f"transaction.{made[key]['code']}"
            assert await db.fetchval("SELECT COUNT(*) FROM audit_entries WHERE session_id = $1 AND action LIKE $2",
                                     sid, "transaction.%") == 2
        finally:
            await restarted.close()

        # Both screens show why; the same key returns the finished request; confirming again changes nothing.
        status, body = await call.staff("GET", f"/api/counter/sessions/{sid}")
        shown = {t["id"]: t for t in body["transactions"]}
        assert (shown[made["q"]["id"]]["reason"], shown[made["q"]["id"]]["reason_zh"]) == RESTARTED_RUNNING
        status, again = await call.staff("POST", url, json={"code": "balance.query", "idempotency_key": "q"})
        assert again["id"] == made["q"]["id"] and again["status"] == "failed", again
        refused = shown[made["c"]["id"]]
        assert (refused["status"], refused["reason"], refused["reason_zh"]) == ("refused", *RESTARTED_CALL_ENDED)
        status, out = await call.phone("POST", f"/api/customer/counter/transactions/{made['c']['id']}/confirm",
                                       json={"accept": True})
        assert status == 200 and out["status"] == "refused" and out["reason_zh"] == RESTARTED_CALL_ENDED[1], out
        account = await app_client.app[ACCOUNTS].get(LINE)
        assert account is not None and account.datacap_mb != 300
        assert await db.fetchval("SELECT COUNT(*) FROM audit_entries WHERE session_id = $1 AND action LIKE $2",
                                 sid, "transaction.%") == 2

    auditor = await login(app_client, "audit1", "audit1-demo")
    resp = await app_client.post("/api/audit/verify", headers=auditor)
    report = await resp.json()
    assert resp.status == 200 and report["ok"], report

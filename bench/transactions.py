"""Counter transactions end to end vs a bare insert of the same rows, on SQLite and PostgreSQL.

    python bench/transactions.py                        # both back-ends, 1 and 8 concurrent sessions
    python bench/transactions.py --backends sqlite --workers 1,4,16 --per-worker 100

End to end: the whole app (``counter.app.build_app``) on a loopback socket; W agent sessions, each
on its own line and already at A1, loop over ``datacap.set`` (a state change): the agent's
``POST /api/counter/sessions/{sid}/transactions`` (202 pending), then the customer's
``POST /api/customer/counter/transactions/{tid}/confirm`` (runs it: account change, audit entry,
SMS outbox row, all in one commit).  One transaction = those two HTTP requests.

Bare: the rows the run left (final ``tx_requests`` row, the ``acct_lines`` update, the
``sms_outbox`` row, the ``audit_entries`` row) written again into a fresh database, one commit per
transaction, by the same number of concurrent tasks.  Ratios are measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from counter.accounts import StorageAccountSystem
from counter.app import build_app
from counter.appkeys import DB
from counter.audit import AUDIT
from counter.config import load_settings
from counter.users import Role, UserStore
from signaling import protocol as p
from signaling.client import SignalingClient, connect_call
from storage import Database, Executor, Row, migrate, open_database

PG_URL = os.environ.get("COUNTER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(serial: int) -> str:
    body = f"11010119500101{serial % 1000:03d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, _W, strict=True)) % 11]


def msisdn(w: int) -> str:
    return f"1390000{w:04d}"


async def end_to_end(url: str, tmp: Path, workers: int, per: int) -> tuple[dict[str, Any], dict[str, list[Row]]]:
    settings = load_settings(
        config_file=tmp / "none.toml", environ={}, tls=False, host="127.0.0.1", port=8443,
        data_dir=tmp / uuid.uuid4().hex, cert_dir=tmp / "certs", database_url=url,
        require_recording=False,  # calls here have no witness leg: measuring requests, not recording
    )
    app = await build_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    db = app[DB]
    accounts = StorageAccountSystem(db)
    try:
        async with aiohttp.ClientSession(base) as phone, contextlib.AsyncExitStack() as stack:
            sessions: list[tuple[str, str, aiohttp.ClientSession, dict[str, str]]] = []
            users = UserStore(db)
            for w in range(workers):
                await accounts.create(
                    msisdn=msisdn(w), name=f"测试{w}", id_number=id_number(w), birth_date="1950-01-01",
                    password="135790", balance_cents=10000,
                )
                # A session exists only for a call an agent accepted and that is connected: one agent
                # (and one placed call) per concurrent session.
                name = f"bench{w}"
                await users.create(name, name + "-pass", Role.AGENT, name, ["general"])
                agent = await stack.enter_async_context(
                    aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True))  # cookies from 127.0.0.1
                )
                agent_ws = await SignalingClient.staff(agent, base, name, name + "-pass")
                customer = await SignalingClient.customer(phone, base)
                stack.push_async_callback(agent_ws.close)
                stack.push_async_callback(customer.close)
                sid = await connect_call(customer, agent_ws, p.Join(claimed_phone=msisdn(w)))
                assert customer.token is not None
                async with agent.get("/api/auth/me") as resp:
                    headers = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
                resp = await agent.post(
                    f"/api/counter/sessions/{sid}/verify-password", json={"password": "135790"}, headers=headers
                )
                assert resp.status == 200, await resp.text()
                sessions.append((sid, customer.token, agent, headers))
            latencies: list[float] = []

            async def worker(sid: str, token: str, agent: aiohttp.ClientSession, headers: dict[str, str]) -> None:
                for i in range(per):
                    t0 = time.perf_counter()
                    body = {"code": "datacap.set", "inputs": {"cap_mb": 100 + i}, "idempotency_key": f"k{i}"}
                    async with agent.post(f"/api/counter/sessions/{sid}/transactions", json=body,
                                          headers=headers) as resp:
                        assert resp.status == 202, await resp.text()
                        tid = (await resp.json())["id"]
                    async with phone.post(f"/api/customer/counter/transactions/{tid}/confirm",
                                          json={"accept": True}, headers={"X-Customer-Token": token}) as resp:
                        result = await resp.json()
                        assert result["status"] == "done", result
                    latencies.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            await asyncio.gather(*(worker(*session) for session in sessions))
            elapsed = time.perf_counter() - t0
        await app[AUDIT].flush()
        n = workers * per
        rows = {
            "tx_requests": await db.fetch("SELECT * FROM tx_requests WHERE status = 'done' ORDER BY id"),
            "sms_outbox": await db.fetch("SELECT * FROM sms_outbox WHERE tx_id IS NOT NULL ORDER BY id"),
            "audit_entries": await db.fetch(
                "SELECT * FROM audit_entries WHERE action = 'transaction.datacap.set' ORDER BY seq"
            ),
        }
        assert all(len(r) == n for r in rows.values()), {k: len(v) for k, v in rows.items()}
        latencies.sort()
        return {
            "per_s": n / elapsed,
            "p50_ms": statistics.median(latencies) * 1e3,
            "p95_ms": latencies[int(len(latencies) * 0.95)] * 1e3,
            "n": n,
        }, rows
    finally:
        await runner.cleanup()


async def bare(url: str, workers: int, rows: dict[str, list[Row]]) -> float:
    """The same rows, one commit per transaction, ``workers`` tasks; transactions per second."""
    db = await open_database(url)
    try:
        await migrate(db)
        accounts = StorageAccountSystem(db)
        for w in range(workers):
            await accounts.create(msisdn=msisdn(w), name=f"测试{w}", id_number=id_number(w),
                                  birth_date="1950-01-01", password="135790", balance_cents=10000)
        by_tx = list(zip(rows["tx_requests"], rows["sms_outbox"], rows["audit_entries"], strict=True))
        queues: dict[str, list[tuple[Row, Row, Row]]] = {}
        for item in by_tx:
            queues.setdefault(item[0]["session_id"], []).append(item)

        async def write(tx: Executor, req: Row, sms: Row, entry: Row) -> None:
            await tx.execute(*_insert_args("tx_requests", req))
            await tx.execute(
                "UPDATE acct_lines SET datacap_mb = $2, version = version + 1, updated_at = $3 WHERE msisdn = $1",
                sms["msisdn"], 100, entry["time"],
            )
            await tx.execute(*_insert_args("sms_outbox", sms))
            await tx.execute(*_insert_args("audit_entries", entry, skip=()))

        async def worker(items: list[tuple[Row, Row, Row]]) -> None:
            for req, sms, entry in items:
                async with db.transaction() as tx:
                    await write(tx, req, sms, entry)

        await _make_sessions(db, list(queues))
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(items) for items in queues.values()))
        return len(by_tx) / (time.perf_counter() - t0)
    finally:
        await db.close()


def _insert_args(table: str, row: Row, skip: tuple[str, ...] = ("id",)) -> tuple[Any, ...]:
    cols = [c for c in row if c not in skip]
    marks = ", ".join(f"${i + 1}" for i in range(len(cols)))
    return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", *(row[c] for c in cols))


async def _make_sessions(db: Database, ids: list[str]) -> None:
    for sid in ids:
        await db.execute(
            "INSERT INTO counter_sessions (id, agent, customer_token_hash, created_at) VALUES ($1, 'agent1', $1, '')",
            sid,
        )


async def run(backend: str, tmp: Path, workers: int, per: int) -> dict[str, Any]:
    schemas: list[str] = []

    def url() -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp / f'{uuid.uuid4().hex}.db'}"
        schemas.append(f"bench_{uuid.uuid4().hex[:10]}")
        return f"{PG_URL}?schema={schemas[-1]}"

    try:
        e2e, rows = await end_to_end(url(), tmp, workers, per)
        e2e["bare_per_s"] = await bare(url(), workers, rows)
        return e2e
    finally:
        if schemas:
            import asyncpg

            conn = await asyncpg.connect(PG_URL)
            try:
                for schema in schemas:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--workers", default="1,8", help="concurrent agent sessions, comma-separated")
    parser.add_argument("--per-worker", type=int, default=0, help="transactions per session (default: 400/W, min 50)")
    args = parser.parse_args()
    print("| back-end | sessions | transactions | end to end tx/s | p50 ms | p95 ms | bare same rows tx/s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
        for backend in args.backends.split(","):
            for w in (int(x) for x in args.workers.split(",")):
                per = args.per_worker or max(50, 400 // w)
                r = await run(backend, Path(d), w, per)
                print(f"| {backend} | {w} | {r['n']} | {r['per_s']:.0f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f}"
                      f" | {r['bare_per_s']:.0f} | {r['per_s'] / r['bare_per_s']:.2f} |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())

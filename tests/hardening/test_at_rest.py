"""Private at rest (issue 16): after a journey at DEBUG, no code, phone number, ID number, name,
address or image bytes in the logs or the immutable audit bodies, no plain JPEG in the database,
sent texts masked, and the data files private."""

from __future__ import annotations

import asyncio
import io
import re
import stat
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from counter.accounts.demo import demo_id_number
from counter.appkeys import ACCOUNTS, DB, SESSIONS
from counter.audit import AUDIT
from counter.config import Settings
from counter.levels import Method
from counter.proofs import ProofKind
from counter.sessions import Level
from counter.sms import SMS, BuiltinGateway
from counter.transactions import CATALOG
from tests.calls import LiveCall, live_call
from tests.conftest import CARD_PORTRAIT, FACES, login
from tests.counter.transactions.cases import CASES
from tests.counter.txkit import record_proofs
from tests.hardening.leaks import leaks
from tests.identity import synth

LINE = "13800138000"
NAME = "妮可·基德曼"
ADDRESS = "北京市东城区示例路1号"
NEW_ADDRESS = "上海市浦东新区测试路88号"
TARGET = "13912345678"
REASON = "出差去乌鲁木齐三个月"


async def _texts(gateway: BuiltinGateway, count: int) -> list[str]:
    return await asyncio.wait_for(gateway.wait_for(LINE, count), 30)


async def _run(call: LiveCall, code: str, inputs: dict[str, Any], key: str) -> dict[str, Any]:
    """Request a transaction and confirm it with the customer's token, as the customer's page does."""
    status, tx = await call.staff("POST", f"/api/counter/sessions/{call.call_id}/transactions",
                                  json={"code": code, "inputs": inputs, "idempotency_key": key})
    assert status == 202 and tx["status"] == "pending", tx
    status, done = await call.phone("POST", f"/api/customer/counter/transactions/{tx['id']}/confirm",
                                     json={"accept": True})
    assert status == 200, done
    return dict(done)


async def test_a_journey_at_debug_leaves_nothing_personal_behind(debug_log: io.StringIO,
                                                                 settings: Settings) -> None:
    from counter.app import build_app

    app = await build_app(settings.model_copy(update={"log_level": "DEBUG"}))
    secrets_seen: list[str] = [LINE, TARGET, NAME, ADDRESS, NEW_ADDRESS, REASON, demo_id_number("1967-06-20", "012")]
    async with TestClient(TestServer(app)) as client:
        gateway = app[SMS].gateway
        assert isinstance(gateway, BuiltinGateway)
        async with live_call(str(client.make_url("")), claimed_phone=LINE) as call:
            sid = call.call_id
            s = f"/api/counter/sessions/{sid}"
            assert (await call.staff("POST", s + "/verify-password", json={"password": "000000"}))[0] == 403
            assert (await call.staff("POST", s + "/sms-code"))[0] == 202
            code = re.search(r"验证码是(\d{6})", (await _texts(gateway, 1))[-1])
            assert code
            secrets_seen.append(code.group(1))
            status, body = await call.staff("POST", s + "/verify-sms-code", json={"code": code.group(1)})
            assert status == 200 and body["session"]["level"] == "A1", body
            await app[SESSIONS].set_face_consent(sid, True)
            # The face path with the real models: a live still matched with the (sealed) photo on file.
            still = (FACES / "faceonnx" / "nicole_kidman" / "nicole_1.jpg").read_bytes()
            for _ in range(300):
                status, body = await call.staff("POST", s + "/identity/face", data=still,
                                                headers={"Content-Type": "image/jpeg"})
                if status != 503:  # the models load in the background at start
                    break
                await asyncio.sleep(0.1)
            assert status == 200 and body["result"]["decision"] == "match", body
            # Liveness needs the witness's live video: its proof recorded as the check would, then A2 on
            # the real face check and it.
            face_sha = body["evidence"][0]
            [alive] = await record_proofs(app[SESSIONS], sid, ProofKind.LIVENESS)
            session = await app[SESSIONS].raise_level(sid, Level.A2, [face_sha, alive], Method.FACE.value)
            assert session.level == Level.A2
            for code_, inputs, key in (("forwarding.set", {"target": TARGET}, "f1"),
                                       ("contact.update", {"address": NEW_ADDRESS}, "c1"),
                                       ("line.suspend", {"reason": REASON}, "s1")):
                assert (await _run(call, code_, inputs, key))["status"] in ("done", "refused", "failed")
            # The ID card read for real (OCR at DEBUG: the number and name it reads must not be logged).
            holder = (await app[ACCOUNTS].get(LINE)).holder  # type: ignore[union-attr]
            card = synth.card_photo_jpeg(CARD_PORTRAIT, holder.id_number, holder.name, holder.birth_date)
            status, body = await call.staff("POST", s + "/identity/id-card", data=card,
                                            headers={"Content-Type": "image/jpeg"})
            assert status == 200 and body["accepted"] is True, body
            assert body["session"]["level"] == "A3", body
            reset = await _run(call, "password.reset", {}, "p1")
            assert reset["status"] == "done", reset
            password = None
            for count in range(2, 10):
                texts = await _texts(gateway, count)
                if password := re.search(r"新服务密码：(\d{6})", "".join(texts)):
                    break
            assert password, texts
            secrets_seen.append(password.group(1))
            # Every transaction of the catalog with its inputs, as an agent would send them (A4 ones
            # approved by a supervisor); whether each is done or refused, nothing personal stays.
            supervisor = await login(client, "super1", "super1-demo")
            for code_, case in sorted(CASES.items()):
                spec = CATALOG[code_]
                secrets_seen += [str(v) for k, v in case.good.items()
                                 if k in spec.personal_fields and len(str(v)) >= 4 and k != "target"]
                status, tx = await call.staff("POST", f"{s}/transactions", json={
                    "code": code_, "inputs": case.good, "idempotency_key": f"all-{code_}"})
                assert status in (200, 202), (code_, tx)
                if tx["status"] != "pending":
                    continue
                status, out = await call.phone(
                    "POST", f"/api/customer/counter/transactions/{tx['id']}/confirm", json={"accept": True})
                assert status == 200, (code_, out)
                if out["status"] == "pending":  # A4: the second person
                    resp = await client.post(f"/api/counter/approvals/{tx['id']}", headers=supervisor)
                    assert resp.status == 200, (code_, await resp.text())
            ran = await app[DB].fetch("SELECT code, status FROM tx_requests WHERE idem_key LIKE 'all-%'")
            assert len(ran) == len(CATALOG) and not [r for r in ran if r["status"] in ("pending", "running")], ran
        db = app[DB]
        await app[AUDIT].flush()
        for _ in range(100):  # every text handed to the gateway
            if not await db.fetchval("SELECT COUNT(*) FROM sms_outbox WHERE sent_at IS NULL"):
                break
            await asyncio.sleep(0.1)
        bodies = "\n".join(r["body"] for r in await db.fetch("SELECT body FROM audit_entries"))
        outbox = "\n".join(r["body"] for r in await db.fetch("SELECT body FROM sms_outbox"))
        blobs: list[tuple[str, bytes]] = []
        texts_in_db: list[str] = []
        tables = [r["name"] for r in await db.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in await db.fetch(f"SELECT * FROM {table}"):
                for column, value in row.items():
                    if isinstance(value, bytes | bytearray | memoryview):
                        blobs.append((f"{table}.{column}", bytes(value)))
                    elif isinstance(value, str):
                        texts_in_db.append(value)
    log = debug_log.getvalue()
    assert "DEBUG" in log and "aiosqlite" in log  # the capture saw the driver at work
    assert leaks(log) == [], leaks(log)[:5]
    assert [s for s in secrets_seen if s in log] == []
    assert "\\xff\\xd8\\xff" not in log and "/9j/" not in log  # no JPEG, raw or base64
    assert leaks(bodies) == [] and [s for s in secrets_seen if s in bodies] == []
    assert [s for s in (code.group(1), password.group(1), TARGET) if s in outbox] == []
    assert "forwarding.set" in bodies and "contact.update" in bodies
    assert blobs and [name for name, b in blobs if b.startswith(b"\xff\xd8\xff")] == []
    assert [t[:40] for t in texts_in_db if "/9j/" in t] == []
    data = settings.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("counter.db", "counter.db-wal", "counter.db-shm", "master.key", "audit_ed25519.key"):
        if (data / name).exists() or name == "counter.db":
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    for folder in (data / "evidence", data / "recordings"):
        if folder.exists():
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder

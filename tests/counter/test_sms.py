"""The SMS outbox sender: texts reach the gateway in clear and stay in the database masked, once."""

from __future__ import annotations

import asyncio
import re

from counter.sessions import Level
from counter.sms import BuiltinGateway, SmsSender, masked
from counter.smscode import SmsCodes
from storage import Database
from tests.counter.txkit import open_kit

MSISDN = "13800138000"


def test_masked_hides_codes_passwords_puks_and_numbers() -> None:
    assert masked("【远程柜台】您的验证码是747387，5分钟内有效。") == "【远程柜台】您的验证码是******，5分钟内有效。"
    assert masked("新服务密码：246810") == "新服务密码：******"
    assert masked("PUK码 12345678，转移到13912345678") == "PUK码 ********，转移到***********"
    assert masked("欠费61.20元，2026-12-01起") == "欠费61.20元，2026-12-01起"


async def test_a_sent_code_is_not_kept_in_clear(db: Database) -> None:
    async with open_kit(db, MSISDN) as kit:
        codes = SmsCodes(db, kit.accounts, kit.sessions, kit.audit)
        session = await kit.session(MSISDN, Level.A0)
        await codes.send(session.id, "agent1")
        gateway = BuiltinGateway()
        assert await SmsSender(db, gateway).flush() == 1
        code = re.search(r"验证码是(\d{6})", gateway.received(MSISDN)[0])
        assert code, gateway.received(MSISDN)
        rows = await db.fetch("SELECT body, sent_at FROM sms_outbox")
        assert len(rows) == 1 and rows[0]["sent_at"] is not None
        assert code.group(1) not in rows[0]["body"] and "验证码是******" in rows[0]["body"]
        # The code is kept only as a salted hash, and it still works.
        stored = await db.fetchval("SELECT code_hash FROM session_sms_codes")
        assert code.group(1) not in stored and stored.startswith("$argon2")
        assert (await codes.verify(session.id, code.group(1), "agent1")).level == Level.A1


async def test_two_senders_deliver_each_text_once(db: Database) -> None:
    for i in range(15):
        await db.execute("INSERT INTO sms_outbox (msisdn, body, created_at) VALUES ($1, $2, 'now')",
                         MSISDN, f"text {i} code {100000 + i}")
    gateway = BuiltinGateway()
    counts = await asyncio.gather(SmsSender(db, gateway).flush(), SmsSender(db, gateway).flush())
    assert sum(counts) == 15
    assert sorted(gateway.received(MSISDN)) == sorted(f"text {i} code {100000 + i}" for i in range(15))
    assert await db.fetchval("SELECT COUNT(*) FROM sms_outbox WHERE sent_at IS NULL") == 0
    assert await db.fetchval("SELECT COUNT(*) FROM sms_outbox WHERE body LIKE '%1000%'") == 0

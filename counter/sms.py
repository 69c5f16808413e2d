"""The SMS outbox sender, and the built-in gateway.

Every SMS the counter sends (one-time codes, receipts, a new service password, notices) is first a
``sms_outbox`` row, written in the same database transaction as what it reports.  The sender job
hands unsent rows to the gateway; a row it takes is marked sent and its text masked in the same
statement (:func:`masked`: every run of five or more digits, so codes, PUKs, passwords, SIM and
phone numbers), so no code or password stays in the database in clear once it has left.  Taking a
row is one conditional ``UPDATE``: two nodes never send the same text twice.

The built-in gateway (:class:`BuiltinGateway`) is the demo's handset: it keeps the last texts of
each line in memory only, for the demo and the tests to read; a deployment plugs in its operator's
gateway (anything with ``async send(msisdn, body)``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict, deque
from datetime import datetime
from typing import Protocol

from aiohttp import web

from counter.background import repeat
from storage import Database, Executor
from storage.timeutil import iso, utcnow

log = logging.getLogger("counter.sms")

#: How often the sender looks for unsent texts.
SEND_EVERY_S = 0.5
#: Texts taken per pass.
BATCH = 100
#: A secret in a text: any run of this many digits or more (codes 6, passwords 6, PUKs 8, numbers 11).
SECRET_DIGITS = re.compile(r"\d{5,}")


def masked(body: str) -> str:
    """The text as kept once sent: every run of five or more digits replaced by as many ``*``."""
    return SECRET_DIGITS.sub(lambda m: "*" * len(m.group()), body)


async def queue_sms(ex: Executor, msisdn: str, body: str, now: datetime, tx_id: int | None = None) -> None:
    """Put a text in the outbox in the caller's database transaction; the sender job sends it once committed.

    ``tx_id`` links a receipt to the transaction it reports."""
    await ex.execute(
        "INSERT INTO sms_outbox (msisdn, body, tx_id, created_at) VALUES ($1, $2, $3, $4)",
        msisdn, body, tx_id, iso(now),
    )


class SmsGateway(Protocol):
    """Where texts go: the operator's SMS gateway, or :class:`BuiltinGateway`."""

    async def send(self, msisdn: str, body: str) -> None:
        """Deliver ``body`` to ``msisdn``; raise if it cannot be handed over."""


class BuiltinGateway:
    """The demo handset: the last :attr:`KEEP` texts of each line, in memory only."""

    KEEP = 20

    def __init__(self) -> None:
        self._inbox: defaultdict[str, deque[str]] = defaultdict(lambda: deque(maxlen=self.KEEP))
        self._arrived = asyncio.Condition()

    async def send(self, msisdn: str, body: str) -> None:
        async with self._arrived:
            self._inbox[msisdn].append(body)
            self._arrived.notify_all()

    def received(self, msisdn: str) -> list[str]:
        """The texts the line has received, oldest first."""
        return list(self._inbox.get(msisdn, ()))

    async def wait_for(self, msisdn: str, count: int) -> list[str]:
        """The line's texts once it has received at least ``count`` (the caller bounds the wait)."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self._inbox.get(msisdn, ())) >= count)
        return self.received(msisdn)


class SmsSender:
    """Hands ``sms_outbox`` rows to a gateway, masking each row's text as it is taken."""

    def __init__(self, db: Database, gateway: SmsGateway) -> None:
        self.db = db
        self.gateway = gateway

    async def flush(self, now: datetime | None = None) -> int:
        """Send every unsent text (oldest first); returns how many this call sent."""
        sent = 0
        while True:
            rows = await self.db.fetch(
                f"SELECT id, msisdn, body FROM sms_outbox WHERE sent_at IS NULL ORDER BY id LIMIT {BATCH}"
            )
            for row in rows:
                taken = await self.db.execute(
                    "UPDATE sms_outbox SET sent_at = $2, body = $3 WHERE id = $1 AND sent_at IS NULL",
                    row["id"],
                    iso(now or utcnow()),
                    masked(row["body"]),
                )
                if taken != 1:  # another node took it
                    continue
                try:
                    await self.gateway.send(row["msisdn"], row["body"])
                except Exception:
                    log.exception("SMS #%s could not be handed to the gateway", row["id"])
                    continue
                sent += 1
            if len(rows) < BATCH:
                return sent


SMS: web.AppKey[SmsSender] = web.AppKey("sms", SmsSender)


def setup(app: web.Application) -> None:
    """Component: the built-in gateway and the sender job on the app (``app[SMS]``)."""
    from counter.appkeys import DB

    sender = SmsSender(app[DB], BuiltinGateway())
    app[SMS] = sender

    repeat(app, "sms-sender", SEND_EVERY_S, sender.flush)

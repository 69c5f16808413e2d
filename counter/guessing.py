"""Back-off against guessing: staff logins per account and per address, service passwords per line.

A :class:`Guard` counts failures per subject in the database (``guess_counters``), so the count holds
across sessions, nodes and restarts.  After ``free`` failures each further failure locks the subject
for ``base`` seconds, doubled each time, up to ``cap``; a success clears the count.  Subjects are
stored as sha256 digests (a line number or an address is personal data).

* **login, per account** (:data:`LOGIN_ACCOUNT`): every failure counts against the user name tried
  (unknown names too, alike), from whatever address;
* **login, per address** (:data:`LOGIN_ADDRESS`): failures from one address, over all names; the
  lock does not apply to a name that logged in successfully from that address before (a colleague
  behind the same address keeps logging in while a guesser there is held back);
* **service password, per line** (:data:`SERVICE_PASSWORD`): wrong passwords for one line, over
  every session and agent.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from storage import Database
from storage.timeutil import iso, parse_iso, utcnow


@dataclass(frozen=True)
class Policy:
    """``free`` failures allowed, then a lock of ``base_s`` seconds doubled per failure, up to ``cap_s``."""

    name: str
    free: int
    base_s: float
    cap_s: float

    def lock_for(self, failures: int) -> float:
        """How long ``failures`` failures lock the subject (0: not locked)."""
        if failures < self.free:
            return 0.0
        return float(min(self.cap_s, self.base_s * 2 ** min(failures - self.free, 30)))


LOGIN_ACCOUNT = Policy("login_account", free=5, base_s=30, cap_s=900)
LOGIN_ADDRESS = Policy("login_address", free=30, base_s=60, cap_s=3600)
SERVICE_PASSWORD = Policy("service_password", free=5, base_s=60, cap_s=3600)
#: How long a successful login marks a name as known from its address.
KNOWN_FOR = timedelta(days=30)


@dataclass(frozen=True)
class Verdict:
    """After a failure: how many in a row, and how long the subject is locked now (0: not)."""

    failures: int
    locked_for_s: float

    @property
    def retry_after_s(self) -> int:
        return max(1, math.ceil(self.locked_for_s))


def _subject(policy: Policy, key: str) -> str:
    return hashlib.sha256(f"{policy.name}|{key}".encode()).hexdigest()


class Guard:
    """Failure counts and locks in ``guess_counters``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def locked(self, policy: Policy, key: str, now: datetime | None = None) -> float:
        """Seconds ``key`` stays locked under ``policy`` (0 when it may try)."""
        now = now or utcnow()
        until = await self.db.fetchval(
            "SELECT locked_until FROM guess_counters WHERE subject = $1", _subject(policy, key)
        )
        if not until:
            return 0.0
        return max(0.0, (parse_iso(until) - now).total_seconds())

    async def failed(self, policy: Policy, key: str, now: datetime | None = None) -> Verdict:
        """Count one failure; returns the count and the lock it brings."""
        now = now or utcnow()
        subject = _subject(policy, key)
        async with self.db.transaction() as tx:
            if tx.dialect == "postgresql":
                await tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", subject)
            failures = int(await tx.fetchval(
                "SELECT failures FROM guess_counters WHERE subject = $1", subject) or 0) + 1
            lock = policy.lock_for(failures)
            until = iso(now + timedelta(seconds=lock)) if lock else None
            changed = await tx.execute(
                "UPDATE guess_counters SET failures = $2, locked_until = $3, updated_at = $4 WHERE subject = $1",
                subject, failures, until, iso(now),
            )
            if changed == 0:
                await tx.execute(
                    "INSERT INTO guess_counters (subject, failures, locked_until, updated_at) VALUES ($1, $2, $3, $4)",
                    subject, failures, until, iso(now),
                )
        return Verdict(failures, lock)

    async def succeeded(self, policy: Policy, key: str) -> None:
        """Clear ``key``'s count."""
        await self.db.execute("DELETE FROM guess_counters WHERE subject = $1", _subject(policy, key))

    async def remember(self, address: str, username: str, now: datetime | None = None) -> None:
        """``username`` logged in from ``address``: the address lock does not hold it back for a while."""
        now = now or utcnow()
        subject = _subject(LOGIN_ADDRESS, f"known|{address}|{username}")
        until = iso(now + KNOWN_FOR)
        # One upsert: two logins of one name from one address at once (two nodes) must not collide.
        await self.db.execute(
            "INSERT INTO guess_counters (subject, failures, locked_until, updated_at) VALUES ($1, 0, $2, $3)"
            " ON CONFLICT (subject) DO UPDATE SET locked_until = excluded.locked_until,"
            " updated_at = excluded.updated_at",
            subject, until, iso(now),
        )

    async def known(self, address: str, username: str, now: datetime | None = None) -> bool:
        """Whether ``username`` logged in successfully from ``address`` lately."""
        return await self.locked(LOGIN_ADDRESS, f"known|{address}|{username}", now) > 0

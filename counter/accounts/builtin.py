"""The built-in account system on the project's storage (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from counter.accounts.model import (
    HOLDER_FIELDS,
    LINE_FIELDS,
    Account,
    AccountChange,
    AccountError,
    AccountNotFound,
    AccountSystem,
    Bill,
    Holder,
    Invoice,
    LineStatus,
    Payment,
    Sim,
)
from counter.sealed import Sealer, is_sealed, photo_context
from storage import Database, Executor, Row
from storage.timeutil import iso

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

_ACCOUNT_SQL = (
    "SELECT l.*, h.name AS h_name, h.id_number AS h_id_number, h.birth_date AS h_birth_date,"
    " h.id_expires AS h_id_expires, h.photo_sha256 AS h_photo_sha256"
    " FROM acct_lines l JOIN acct_holders h ON h.id = l.holder_id WHERE l.msisdn = $1"
)


async def hash_password(password: str) -> str:
    """An argon2id hash of a service password (computed in an executor)."""
    return await asyncio.get_running_loop().run_in_executor(None, _HASHER.hash, password)


async def check_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (computed in an executor)."""

    def verify() -> bool:
        try:
            return _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.get_running_loop().run_in_executor(None, verify)


def new_iccid() -> str:
    """A random 20-digit ICCID in the 8986 (China) range."""
    return "8986" + "".join(secrets.choice("0123456789") for _ in range(16))


def new_puk() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(8))


async def _read_account(ex: Executor, msisdn: str, lock: bool = False) -> Account | None:
    sql = _ACCOUNT_SQL
    if lock and ex.dialect == "postgresql":
        sql += " FOR UPDATE OF l"
    row = await ex.fetchrow(sql, msisdn)
    if row is None:
        return None
    addons = await ex.fetch("SELECT addon FROM acct_addons WHERE msisdn = $1 ORDER BY addon", msisdn)
    sim = await ex.fetchrow(
        "SELECT iccid, puk, esim, issued_at FROM acct_sims WHERE msisdn = $1 AND active = 1", msisdn
    )
    return _account(row, [a["addon"] for a in addons], sim)


def _account(row: Row, addons: list[str], sim: Row | None) -> Account:
    before = row["status_before_loss"]
    return Account(
        msisdn=row["msisdn"],
        holder=Holder(
            id=int(row["holder_id"]),
            name=row["h_name"],
            id_number=row["h_id_number"],
            birth_date=row["h_birth_date"],
            id_expires=row["h_id_expires"],
            photo_sha256=row["h_photo_sha256"],
        ),
        status=LineStatus(row["status"]),
        status_before_loss=LineStatus(before) if before else None,
        suspended_until=row["suspended_until"],
        emergency_until=row["emergency_until"],
        plan=row["plan"],
        pending_plan=row["pending_plan"],
        pending_plan_from=row["pending_plan_from"],
        roaming=bool(row["roaming"]),
        forwarding=row["forwarding"],
        datacap_mb=row["datacap_mb"],
        spamblock=bool(row["spamblock"]),
        balance_cents=int(row["balance_cents"]),
        credit_limit_cents=int(row["credit_limit_cents"]),
        points=int(row["points"]),
        contact_address=row["contact_address"],
        contact_email=row["contact_email"],
        addons=tuple(addons),
        sim=Sim(sim["iccid"], sim["puk"], bool(sim["esim"]), sim["issued_at"]) if sim else None,
        refund_cents=row["refund_cents"],
        version=int(row["version"]),
    )


def _db_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, LineStatus):
        return value.value
    return value


class _StorageChange(AccountChange):
    def __init__(self, tx: Executor, account: Account) -> None:
        self._tx = tx
        self.account = account

    @property
    def executor(self) -> Executor | None:
        return self._tx

    async def _reload(self) -> Account:
        account = await _read_account(self._tx, self.account.msisdn)
        assert account is not None
        self.account = account
        return account

    async def update_line(self, **fields: Any) -> Account:
        unknown = set(fields) - LINE_FIELDS
        if unknown:
            raise AccountError(f"cannot set line fields {sorted(unknown)}; settable: {sorted(LINE_FIELDS)}")
        names = list(fields)
        sets = "".join(f"{name} = ${i + 2}, " for i, name in enumerate(names))
        n = len(names) + 2
        await self._tx.execute(
            f"UPDATE acct_lines SET {sets}version = version + 1, updated_at = ${n} WHERE msisdn = $1",
            self.account.msisdn,
            *(_db_value(fields[name]) for name in names),
            iso(),
        )
        return await self._reload()

    async def update_holder(self, **fields: Any) -> Account:
        unknown = set(fields) - HOLDER_FIELDS
        if unknown:
            raise AccountError(f"cannot set holder fields {sorted(unknown)}; settable: {sorted(HOLDER_FIELDS)}")
        names = list(fields)
        sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
        await self._tx.execute(
            f"UPDATE acct_holders SET {sets} WHERE id = $1", self.account.holder.id, *(fields[n] for n in names)
        )
        await self._tx.execute("UPDATE acct_lines SET version = version + 1 WHERE msisdn = $1", self.account.msisdn)
        return await self._reload()

    async def transfer_to(self, name: str, id_number: str, birth_date: str, id_expires: str) -> Account:
        holder_id = await self._tx.fetchval(
            "SELECT id FROM acct_holders WHERE id_number = $1 ORDER BY id LIMIT 1", id_number
        )
        if holder_id is None:
            holder_id = await self._tx.fetchval(
                "INSERT INTO acct_holders (name, id_number, birth_date, id_expires, created_at)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING id",
                name,
                id_number,
                birth_date,
                id_expires,
                iso(),
            )
        await self._tx.execute(
            "UPDATE acct_lines SET holder_id = $2, version = version + 1, updated_at = $3 WHERE msisdn = $1",
            self.account.msisdn,
            int(holder_id),
            iso(),
        )
        return await self._reload()

    async def set_password(self, password: str) -> None:
        await self._tx.execute(
            "UPDATE acct_lines SET password_hash = $2, version = version + 1 WHERE msisdn = $1",
            self.account.msisdn,
            await hash_password(password),
        )
        await self._reload()

    async def verify_password(self, password: str) -> bool:
        stored = await self._tx.fetchval("SELECT password_hash FROM acct_lines WHERE msisdn = $1", self.account.msisdn)
        return await check_password(str(stored), password)

    async def add_addon(self, addon: str) -> Account:
        await self._tx.execute(
            "INSERT INTO acct_addons (msisdn, addon, since) VALUES ($1, $2, $3)", self.account.msisdn, addon, iso()
        )
        return await self.update_line()

    async def remove_addon(self, addon: str) -> Account:
        await self._tx.execute("DELETE FROM acct_addons WHERE msisdn = $1 AND addon = $2", self.account.msisdn, addon)
        return await self.update_line()

    async def replace_sim(self, esim: bool) -> Sim:
        await self._tx.execute("UPDATE acct_sims SET active = 0 WHERE msisdn = $1", self.account.msisdn)
        sim = Sim(new_iccid(), new_puk(), esim, iso())
        await self._tx.execute(
            "INSERT INTO acct_sims (iccid, msisdn, puk, esim, active, issued_at) VALUES ($1, $2, $3, $4, 1, $5)",
            sim.iccid,
            self.account.msisdn,
            sim.puk,
            int(esim),
            sim.issued_at,
        )
        await self.update_line()
        return sim

    async def record_emergency(self, started_at: str, until: str) -> None:
        await self._tx.execute(
            "INSERT INTO acct_emergency (msisdn, started_at, until) VALUES ($1, $2, $3)",
            self.account.msisdn,
            started_at,
            until,
        )

    async def last_emergency(self) -> str | None:
        value = await self._tx.fetchval(
            "SELECT MAX(started_at) FROM acct_emergency WHERE msisdn = $1", self.account.msisdn
        )
        return str(value) if value else None

    async def bill(self, month: str) -> Bill | None:
        row = await self._tx.fetchrow(
            "SELECT month, amount_cents, paid, items FROM acct_bills WHERE msisdn = $1 AND month = $2",
            self.account.msisdn,
            month,
        )
        return _bill(row) if row else None

    async def bills(self, months: int = 6) -> list[Bill]:
        return await _bills(self._tx, self.account.msisdn, months)

    async def payments(self, limit: int = 20) -> list[Payment]:
        return await _payments(self._tx, self.account.msisdn, limit)

    async def issue_invoice(self, month: str, amount_cents: int, email: str) -> Invoice:
        issued = iso()
        invoice_id = await self._tx.fetchval(
            "INSERT INTO acct_invoices (msisdn, month, amount_cents, email, issued_at)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id",
            self.account.msisdn,
            month,
            amount_cents,
            email,
            issued,
        )
        return Invoice(int(invoice_id), month, amount_cents, email, issued)

    async def invoice(self, month: str) -> Invoice | None:
        row = await self._tx.fetchrow(
            "SELECT id, month, amount_cents, email, issued_at FROM acct_invoices WHERE msisdn = $1 AND month = $2",
            self.account.msisdn,
            month,
        )
        if row is None:
            return None
        return Invoice(int(row["id"]), row["month"], int(row["amount_cents"]), row["email"], row["issued_at"])


def _bill(row: Row) -> Bill:
    return Bill(row["month"], int(row["amount_cents"]), bool(row["paid"]), tuple(json.loads(row["items"])))


async def _bills(ex: Executor, msisdn: str, months: int) -> list[Bill]:
    rows = await ex.fetch(
        "SELECT month, amount_cents, paid, items FROM acct_bills WHERE msisdn = $1 ORDER BY month DESC LIMIT $2",
        msisdn,
        months,
    )
    return [_bill(r) for r in rows]


async def _payments(ex: Executor, msisdn: str, limit: int) -> list[Payment]:
    rows = await ex.fetch(
        "SELECT paid_at, amount_cents, channel FROM acct_payments WHERE msisdn = $1 ORDER BY paid_at DESC LIMIT $2",
        msisdn,
        limit,
    )
    return [Payment(r["paid_at"], int(r["amount_cents"]), r["channel"]) for r in rows]


class StorageAccountSystem(AccountSystem):
    """Accounts kept in the project's own database (``acct_*`` tables).

    Holders' photos are biometric data: they are stored sealed (:mod:`counter.sealed`) with the
    master key, so storing or reading one needs ``sealer``.
    """

    def __init__(self, db: Database, sealer: Sealer | None = None) -> None:
        self.db = db
        self.sealer = sealer

    async def get(self, msisdn: str) -> Account | None:
        return await _read_account(self.db, msisdn)

    async def holder_photo(self, msisdn: str) -> bytes | None:
        row = await self.db.fetchrow(
            "SELECT h.photo, h.photo_sha256 FROM acct_lines l JOIN acct_holders h ON h.id = l.holder_id"
            " WHERE l.msisdn = $1",
            msisdn,
        )
        if row is None or row["photo"] is None:
            return None
        photo = bytes(row["photo"])
        if not is_sealed(photo):  # stored before sealing, not migrated yet
            return photo
        if self.sealer is None:
            raise AccountError("the holder's photo is sealed: this account system has no master key")
        return await asyncio.to_thread(self.sealer.unseal, photo, photo_context(row["photo_sha256"]))

    async def bills(self, msisdn: str, months: int = 6) -> list[Bill]:
        return await _bills(self.db, msisdn, months)

    async def payments(self, msisdn: str, limit: int = 20) -> list[Payment]:
        return await _payments(self.db, msisdn, limit)

    async def verify_password(self, msisdn: str, password: str) -> bool:
        stored = await self.db.fetchval("SELECT password_hash FROM acct_lines WHERE msisdn = $1", msisdn)
        if stored is None:
            await check_password(await hash_password("x" * 12), password)  # same time either way
            return False
        return await check_password(str(stored), password)

    @asynccontextmanager
    async def change(self, msisdn: str) -> AsyncIterator[AccountChange]:
        async with self.db.transaction() as tx:
            account = await _read_account(tx, msisdn, lock=True)
            if account is None:
                raise AccountNotFound(f"no line {msisdn}: check the number with the customer")
            yield _StorageChange(tx, account)

    async def create(
        self,
        *,
        msisdn: str,
        name: str,
        id_number: str,
        birth_date: str,
        id_expires: str = "2036-01-01",
        photo: bytes | None = None,
        password: str = "123456",
        plan: str = "basic-19",
        status: LineStatus = LineStatus.ACTIVE,
        balance_cents: int = 0,
        credit_limit_cents: int = 0,
        points: int = 0,
        contact_address: str = "",
        contact_email: str = "",
        addons: tuple[str, ...] = (),
        iccid: str | None = None,
        puk: str | None = None,
        holder_id: int | None = None,
    ) -> Account:
        """Create a line (and its holder unless ``holder_id``) with a SIM; for demo data and tests."""
        now = iso()
        password_hash = await hash_password(password)
        photo_sha = hashlib.sha256(photo).hexdigest() if photo else ""
        sealed = None
        if photo:
            if self.sealer is None:
                raise AccountError("photos are stored sealed: give the account system the master key (sealer)")
            sealed = await asyncio.to_thread(self.sealer.seal, photo, photo_context(photo_sha))
        async with self.db.transaction() as tx:
            if holder_id is None:
                holder_id = int(
                    await tx.fetchval(
                        "INSERT INTO acct_holders (name, id_number, birth_date, id_expires, photo, photo_sha256,"
                        " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                        name,
                        id_number,
                        birth_date,
                        id_expires,
                        sealed,
                        photo_sha,
                        now,
                    )
                )
            await tx.execute(
                "INSERT INTO acct_lines (msisdn, holder_id, status, plan, password_hash, balance_cents,"
                " credit_limit_cents, points, contact_address, contact_email, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                msisdn,
                holder_id,
                status.value,
                plan,
                password_hash,
                balance_cents,
                credit_limit_cents,
                points,
                contact_address,
                contact_email,
                now,
            )
            await tx.execute(
                "INSERT INTO acct_sims (iccid, msisdn, puk, esim, active, issued_at) VALUES ($1, $2, $3, 0, 1, $4)",
                iccid or new_iccid(),
                msisdn,
                puk or new_puk(),
                now,
            )
            for addon in addons:
                await tx.execute(
                    "INSERT INTO acct_addons (msisdn, addon, since) VALUES ($1, $2, $3)", msisdn, addon, now
                )
        account = await self.get(msisdn)
        assert account is not None
        return account

    async def add_bill(
        self, msisdn: str, month: str, amount_cents: int, paid: bool, items: list[dict[str, Any]]
    ) -> None:
        """Record a monthly bill (demo data, tests)."""
        await self.db.execute(
            "INSERT INTO acct_bills (msisdn, month, amount_cents, paid, items) VALUES ($1, $2, $3, $4, $5)",
            msisdn,
            month,
            amount_cents,
            int(paid),
            json.dumps(items, ensure_ascii=False),
        )

    async def add_payment(self, msisdn: str, paid_at: str, amount_cents: int, channel: str) -> None:
        """Record a payment (demo data, tests)."""
        await self.db.execute(
            "INSERT INTO acct_payments (msisdn, paid_at, amount_cents, channel) VALUES ($1, $2, $3, $4)",
            msisdn,
            paid_at,
            amount_cents,
            channel,
        )

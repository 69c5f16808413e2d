"""Reading audit entries back: search by filters, one entry, and its personal data checked against its commitment.

What is answered never holds personal data unless asked for by :meth:`EntryReader.personal`, and
that checks the stored values against the salted commitment in the (immutable) entry body.
"""

from __future__ import annotations

import json
from typing import Any

from counter.audit.entry import AuditError, commitment, pseudonym
from storage import Database


class EntryReader:
    """The reading side of :class:`counter.audit.AuditLog` (needs its ``db`` and pseudonym key)."""

    db: Database
    _pseudonym_key: bytes

    def account_pseudonym(self, account: str) -> str:
        """What ``account`` is stored as (to search by it)."""
        return pseudonym(self._pseudonym_key, account)

    async def search(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        actor_id: str | None = None,
        account: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        session_id: str | None = None,
        after_seq: int = -1,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Entries matching every filter given, oldest first, without personal data.

        ``action`` matches the action and, as a dotted prefix, everything under it
        (``transaction.puk`` finds ``transaction.puk.query``).
        """
        where = ["e.seq > $1"]
        args: list[Any] = [after_seq]

        def add(sql: str, value: Any) -> None:
            args.append(value)
            where.append(sql.replace("?", f"${len(args)}"))

        if since:
            add("e.time >= ?", since)
        if until:
            add("e.time < ?", until)
        if actor_id:
            add("e.actor_id = ?", actor_id)
        if account:
            add("e.account = ?", self.account_pseudonym(account))
        if outcome:
            add("e.outcome = ?", outcome)
        if session_id:
            add("e.session_id = ?", session_id)
        if action:
            args.append(action)
            args.append(action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ".%")
            where.append(f"(e.action = ${len(args) - 1} OR e.action LIKE ${len(args)} ESCAPE '\\')")
        args.append(max(1, min(limit, 1000)))
        rows = await self.db.fetch(
            "SELECT e.seq, e.body, e.leaf_hash, p.seq AS personal_seq FROM audit_entries e"
            " LEFT JOIN audit_personal p ON p.seq = e.seq"
            f" WHERE {' AND '.join(where)} ORDER BY e.seq LIMIT ${len(args)}",
            *args,
        )
        return [entry_json(r) for r in rows]

    async def get(self, seq: int) -> dict[str, Any] | None:
        """One entry without its personal data (``personal_stored`` says whether any is kept)."""
        row = await self.db.fetchrow(
            "SELECT e.seq, e.body, e.leaf_hash, p.seq AS personal_seq FROM audit_entries e"
            " LEFT JOIN audit_personal p ON p.seq = e.seq WHERE e.seq = $1",
            seq,
        )
        return entry_json(row) if row else None

    async def personal(self, seq: int) -> dict[str, Any] | None:
        """The personal data of entry ``seq`` (checked against its commitment), or ``None`` if purged.

        Callers showing it to a person must first append an ``auditor.view_record`` entry.
        """
        row = await self.db.fetchrow(
            "SELECT p.salt, p.data, e.body FROM audit_personal p JOIN audit_entries e ON e.seq = p.seq"
            " WHERE p.seq = $1",
            seq,
        )
        if row is None:
            return None
        expected = json.loads(row["body"]).get("personal")
        if commitment(bytes.fromhex(row["salt"]), row["data"].encode("utf-8")) != expected:
            raise AuditError(f"the personal data of entry {seq} does not match its commitment: it was altered")
        data: dict[str, Any] = json.loads(row["data"])
        return data


def entry_json(row: dict[str, Any]) -> dict[str, Any]:
    """An entry row as answered: seq, leaf hash, body, and whether its personal data is kept or purged."""
    body: dict[str, Any] = json.loads(row["body"])
    return {
        "seq": int(row["seq"]),
        "leaf_hash": row["leaf_hash"],
        "entry": body,
        "personal_stored": row["personal_seq"] is not None,
        "personal_purged": body.get("personal") is not None and row["personal_seq"] is None,
    }

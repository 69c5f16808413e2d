"""Audit events, their canonical serialisation, account pseudonyms and personal-data commitments."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from counter.audit.merkle import hash_leaf
from counter.logging import mask

FORMAT_VERSION = 1
ROLES = frozenset({"agent", "customer", "helper", "supervisor", "auditor", "system"})
OUTCOMES = frozenset({"ok", "refused", "failed"})
_HEX = frozenset("0123456789abcdef")


class AuditError(Exception):
    """An audit event or log operation is invalid; the message says what to change."""


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened.  ``account`` is stored pseudonymised, ``personal`` purgeably."""

    action: str
    actor_role: str
    actor_id: str
    outcome: str = "ok"
    session_id: str | None = None
    account: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    personal: Mapping[str, Any] = field(default_factory=dict)
    evidence: Sequence[str] = ()
    reason: str | None = None

    def check(self) -> None:
        """Raise :class:`AuditError` if a field is not acceptable."""
        if not self.action or len(self.action) > 100 or " " in self.action:
            raise AuditError(f"action {self.action!r}: use a dotted name such as 'transaction.puk.query'")
        if self.actor_role not in ROLES:
            raise AuditError(f"actor_role {self.actor_role!r}: use one of {', '.join(sorted(ROLES))}")
        if not self.actor_id:
            raise AuditError("actor_id is empty: use the username, 'session:<id>' or 'system'")
        if self.outcome not in OUTCOMES:
            raise AuditError(f"outcome {self.outcome!r}: use one of {', '.join(sorted(OUTCOMES))}")
        for sha in self.evidence:
            if len(sha) != 64 or not set(sha) <= _HEX:
                raise AuditError(f"evidence {sha!r}: give the lowercase sha256 hex of the image or segment")


@dataclass(frozen=True)
class AuditReceipt:
    """Where an appended entry landed: its sequence number (= leaf index), leaf hash and time."""

    seq: int
    leaf_hash: str
    time: str


def canonical(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8 (the exact bytes that are hashed)."""
    try:
        return json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise AuditError(f"audit data must be plain JSON (str, int, float, bool, list, dict): {exc}") from exc


def pseudonym(key: bytes, account: str) -> str:
    """The keyed pseudonym of an account or phone number (HMAC-SHA-256, hex)."""
    return hmac.new(key, account.strip().encode("utf-8"), hashlib.sha256).hexdigest()


def commitment(salt: bytes, personal_json: bytes) -> str:
    """The salted hash that stands in the entry for its personal data: ``SHA-256(salt || data)``."""
    return hashlib.sha256(salt + personal_json).hexdigest()


@dataclass(frozen=True)
class PreparedEntry:
    """An event turned into everything but its place in the log (seq and time)."""

    event: AuditEvent
    account: str | None
    salt: bytes | None
    personal_json: bytes | None

    def body(self, seq: int, time: str) -> dict[str, Any]:
        e = self.event
        return {
            "v": FORMAT_VERSION,
            "seq": seq,
            "time": time,
            "action": e.action,
            "actor_role": e.actor_role,
            "actor_id": e.actor_id,
            "outcome": e.outcome,
            "session_id": e.session_id,
            "account": self.account,
            "details": dict(e.details),
            "evidence": list(e.evidence),
            "reason": e.reason,
            "personal": None if self.salt is None or self.personal_json is None
            else commitment(self.salt, self.personal_json),
        }

    def row(self, seq: int, time: str) -> tuple[tuple[Any, ...], tuple[Any, ...] | None, str]:
        """The ``audit_entries`` row, the ``audit_personal`` row (or ``None``), and the leaf hash."""
        body = canonical(self.body(seq, time))
        leaf = hash_leaf(body).hex()
        e = self.event
        entry = (seq, time, e.action, e.actor_role, e.actor_id, e.outcome, e.session_id, self.account,
                 body.decode("utf-8"), leaf)
        personal = None
        if self.salt is not None and self.personal_json is not None:
            personal = (seq, self.salt.hex(), self.personal_json.decode("utf-8"))
        return entry, personal, leaf


def scrubbed(value: Any) -> Any:
    """``value`` with every phone number and ID number in its strings masked (``138****8000``)."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {k: scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrubbed(v) for v in value]
    return value


def prepare(event: AuditEvent, pseudonym_key: bytes) -> PreparedEntry:
    """Check the event, pseudonymise its account, seal its personal data, and mask any phone or ID
    number left in its immutable part (``details``, ``reason``): those belong in ``personal``, and the
    immutable body can never be purged."""
    event.check()
    event = replace(event, details=scrubbed(dict(event.details)),
                    reason=mask(event.reason) if event.reason else event.reason)
    canonical(dict(event.details))
    account = pseudonym(pseudonym_key, event.account) if event.account else None
    if event.personal:
        return PreparedEntry(event, account, secrets.token_bytes(32), canonical(dict(event.personal)))
    return PreparedEntry(event, account, None, None)


INSERT_ENTRY = (
    "INSERT INTO audit_entries (seq, time, action, actor_role, actor_id, outcome, session_id, account,"
    " body, leaf_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
)
INSERT_PERSONAL = "INSERT INTO audit_personal (seq, salt, data) VALUES ($1, $2, $3)"


def prepared_rows(
    batch: list[PreparedEntry], first_seq: int, now: str
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[str]]:
    """The entry rows, personal rows and leaf hashes of ``batch`` numbered from ``first_seq``."""
    entries: list[tuple[Any, ...]] = []
    personal: list[tuple[Any, ...]] = []
    leaves: list[str] = []
    for i, prepared in enumerate(batch):
        entry, per, leaf = prepared.row(first_seq + i, now)
        entries.append(entry)
        if per is not None:
            personal.append(per)
        leaves.append(leaf)
    return entries, personal, leaves

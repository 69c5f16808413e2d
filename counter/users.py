"""Staff users (agents, supervisors, auditors) and their logged-in web sessions."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from storage import Database, IntegrityError
from storage.timeutil import iso, parse_iso, utcnow

SESSION_LIFETIME = timedelta(hours=12)


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    display_name: str
    skills: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class WebSession:
    user: User
    csrf_token: str


class UserError(Exception):
    """A user could not be created or found; the message says why."""


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    """Users with argon2 password hashes; web sessions stored by the hash of their token."""

    def __init__(self, db: Database, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        # Lighter than argon2's defaults so that logins stay quick on 2 cores, still OWASP's
        # minimum for argon2id (19 MiB, 2 iterations).
        self.hasher = hasher or PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

    async def create(
        self, username: str, password: str, role: Role, display_name: str, skills: list[str] | None = None
    ) -> User:
        if len(password) < 8:
            raise UserError("password too short: use at least 8 characters")
        try:
            await self.db.execute(
                "INSERT INTO users (username, role, display_name, password_hash, skills, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                username,
                role.value,
                display_name,
                self.hasher.hash(password),
                json.dumps(sorted(skills or [])),
                iso(),
            )
        except IntegrityError as exc:
            raise UserError(f"user {username!r} already exists") from exc
        user = await self.by_username(username)
        assert user is not None
        return user

    async def by_username(self, username: str) -> User | None:
        row = await self.db.fetchrow(
            "SELECT id, username, role, display_name, skills FROM users WHERE username = $1 AND active = 1",
            username,
        )
        return _user(row) if row else None

    async def by_id(self, user_id: int) -> User | None:
        row = await self.db.fetchrow(
            "SELECT id, username, role, display_name, skills FROM users WHERE id = $1 AND active = 1", user_id
        )
        return _user(row) if row else None

    async def list(self, role: Role | None = None) -> list[User]:
        if role is None:
            rows = await self.db.fetch("SELECT id, username, role, display_name, skills FROM users ORDER BY id")
        else:
            rows = await self.db.fetch(
                "SELECT id, username, role, display_name, skills FROM users WHERE role = $1 ORDER BY id",
                role.value,
            )
        return [_user(r) for r in rows]

    async def authenticate(self, username: str, password: str) -> User | None:
        """The user if the password is right, else ``None`` (same time either way)."""
        row = await self.db.fetchrow(
            "SELECT id, username, role, display_name, skills, password_hash FROM users"
            " WHERE username = $1 AND active = 1",
            username,
        )
        stored = row["password_hash"] if row else self._dummy_hash()
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        return _user(row) if row else None

    _dummy: str | None = None

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_hex(16))
        return self._dummy

    async def open_session(self, user: User) -> tuple[str, WebSession]:
        """Start a web session; return its secret token (for the cookie) and the session."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        now = utcnow()
        await self.db.execute(
            "INSERT INTO web_sessions (token_hash, user_id, csrf_token, created_at, expires_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            _hash_token(token),
            user.id,
            csrf,
            iso(now),
            iso(now + SESSION_LIFETIME),
        )
        return token, WebSession(user, csrf)

    async def session(self, token: str) -> WebSession | None:
        row = await self.db.fetchrow(
            "SELECT s.csrf_token, s.expires_at, u.id, u.username, u.role, u.display_name, u.skills"
            " FROM web_sessions s JOIN users u ON u.id = s.user_id"
            " WHERE s.token_hash = $1 AND u.active = 1",
            _hash_token(token),
        )
        if row is None or parse_iso(row["expires_at"]) < utcnow():
            return None
        return WebSession(_user(row), row["csrf_token"])

    async def close_session(self, token: str) -> None:
        await self.db.execute("DELETE FROM web_sessions WHERE token_hash = $1", _hash_token(token))


def _user(row: dict[str, object]) -> User:
    skills = json.loads(str(row["skills"]))
    return User(
        id=int(str(row["id"])),
        username=str(row["username"]),
        role=Role(str(row["role"])),
        display_name=str(row["display_name"]),
        skills=tuple(skills),
    )

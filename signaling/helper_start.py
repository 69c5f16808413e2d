"""A helper (家属) may start: they open the helper page first, then hand the holder a one-time link.

:meth:`HelperStarts.start` picks a fresh call id and gives the helper a helper token for it (``hello`` as
``helper:<call id>``, waiting) and a single-use *holder link*, never the holder's credential.  The holder's
device redeems the link (:meth:`HelperStarts.redeem`) for the holder's own join token bound to the same call
id, says ``hello`` and ``join`` like any customer: the call is queued only then, with the waiting helper on
it (:class:`~signaling.helpers.Helpers` on the ``joined`` call event).  Identity checks and changes wait
until the holder is present and has agreed to the helper (:func:`signaling.helpers.holder_hold`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from signaling.helpers import HelperStore, HelperToken, InviteError
from signaling.store import JoinToken, SignalingStore, new_call_id
from storage import Database

#: How long the holder's link may wait to be opened.
HOLDER_LINK_TTL_S = 600.0


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Started:
    """What the starting helper gets: their own token, and the holder's one-time link code."""

    helper: HelperToken
    holder_code: str
    holder_expires_at: float


class HelperStarts:
    """Helper-started calls: holder links in the database (any node redeems them, once)."""

    def __init__(self, db: Database, tokens: SignalingStore, helpers: HelperStore) -> None:
        self.db = db
        self.tokens = tokens
        self.helpers = helpers

    async def start(self, ttl_s: float = HOLDER_LINK_TTL_S) -> Started:
        """A new call id with a helper token and a one-time holder link to it."""
        now = time.time()
        call_id = new_call_id()
        code = secrets.token_urlsafe(24)
        await self.db.execute(
            "INSERT INTO holder_links (code_hash, call_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            _hash(code), call_id, now, now + ttl_s,
        )
        return Started(await self.helpers.mint_token(call_id), code, now + ttl_s)

    async def redeem(self, code: str, join_ttl_s: float) -> JoinToken:
        """Use a holder link once: the holder's own join token for the call, or :class:`InviteError`."""
        now = time.time()
        if not 0 < len(code) <= 200:
            raise InviteError("invite_unknown", "this link is not valid")
        # One statement: two devices opening the same link at once never both become the holder.
        used = await self.db.execute(
            "UPDATE holder_links SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL AND expires_at >= $2",
            _hash(code), now,
        )
        row = await self.db.fetchrow("SELECT call_id, used_at FROM holder_links WHERE code_hash = $1", _hash(code))
        if row is None:
            raise InviteError("invite_unknown", "this link is not valid")
        if not used:
            if row["used_at"] is not None:
                raise InviteError("invite_used", "this link has been used already")
            raise InviteError("invite_expired", "this link has expired: ask your family member for a new one")
        return await self.tokens.mint_token(join_ttl_s, call_id=str(row["call_id"]))

    async def purge(self) -> int:
        return await self.db.execute("DELETE FROM holder_links WHERE expires_at < $1", time.time() - HOLDER_LINK_TTL_S)

"""The log as C2SP ``tlog-tiles``: Merkle tree tiles and entry bundles, and the latest checkpoint.

Tiles are 256 hashes wide (height 8): the *n*-th tile at level *l* holds
``MTH(D[(n*256 + i) * 256**l : (n*256 + i + 1) * 256**l])`` for ``i`` in 0..255; a partial tile
(``.p/<W>``) the first ``W`` of them.  Entry bundles hold the entries' canonical JSON bodies (the
exact leaf bytes, no personal data: accounts are pseudonyms, personal data only a salted
commitment), each prefixed by its length as a big-endian uint16.  Only what the latest checkpoint
covers is served, so a client can always check what it gets against a signed root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from counter.audit.entry import AuditError
from counter.audit.keys import Checkpoint
from counter.audit.log import AuditLog
from counter.audit.merkle import SubtreeHash

TILE_WIDTH = 256
_ELEMENT = re.compile(r"(x?)([0-9]{3})")


class TileNotFound(AuditError):
    """The tile path is malformed, or names a tile beyond the latest checkpoint."""


@dataclass(frozen=True)
class TileRef:
    """A tile (``level`` 0..63, or ``None`` for an entry bundle), its index and width (256 when full)."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH

    def span(self) -> int:
        """Leaves under one hash of this tile."""
        return 1 << (8 * (self.level or 0))

    def end(self) -> int:
        """The tree size this tile needs (the end of its last hash)."""
        return (self.index * TILE_WIDTH + self.width) * self.span()


def tile_path(level: int | None, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``, ``N`` in 3-digit elements."""
    digits = f"{index:d}"
    digits = "0" * (-len(digits) % 3) + digits
    parts = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    n = "/".join([f"x{p}" for p in parts[:-1]] + [parts[-1]])
    suffix = f".p/{width}" if width < TILE_WIDTH else ""
    return f"tile/{'entries' if level is None else level}/{n}{suffix}"


def parse_tile_path(rest: str) -> TileRef:
    """The tile named by the part of the URL after ``tile/``; raises :class:`TileNotFound`."""
    parts = rest.split("/")
    width = TILE_WIDTH
    if len(parts) >= 3 and parts[-2].endswith(".p"):
        w = parts[-1]
        if not w.isdigit() or w.startswith("0") or not 1 <= int(w) < TILE_WIDTH:
            raise TileNotFound(f"bad partial width {w[:10]!r}")
        width = int(w)
        parts = [*parts[:-2], parts[-2][:-2]]
    if len(parts) < 2 or len(parts) > 9:
        raise TileNotFound("expected tile/<L>/<N> or tile/entries/<N>")
    head, elements = parts[0], parts[1:]
    if head == "entries":
        level = None
    elif head.isdigit() and (head == "0" or not head.startswith("0")) and int(head) <= 63:
        level = int(head)
    else:
        raise TileNotFound(f"bad tile level {head[:10]!r}")
    index = 0
    for i, element in enumerate(elements):
        m = _ELEMENT.fullmatch(element)
        if m is None or bool(m.group(1)) != (i < len(elements) - 1):
            raise TileNotFound(f"bad tile index element {element[:10]!r}")
        index = index * 1000 + int(m.group(2))
    return TileRef(level, index, width)


async def latest_checkpoint(log: AuditLog, quorum: int = 0) -> Checkpoint | None:
    """The newest checkpoint in the database (any node may have signed it) with at least ``quorum``
    witness cosignatures."""
    row = await log.db.fetchrow(
        "SELECT * FROM audit_checkpoints c WHERE $1 = 0 OR (SELECT COUNT(*) FROM audit_cosignatures s"
        " WHERE s.tree_size = c.tree_size) >= $1 ORDER BY tree_size DESC LIMIT 1", quorum,
    )
    return Checkpoint.from_row(row, log.signer.origin) if row else None


async def cosignatures(log: AuditLog, tree_size: int) -> list[str]:
    """The witness cosignature lines kept for the checkpoint of ``tree_size``."""
    rows = await log.db.fetch(
        "SELECT line FROM audit_cosignatures WHERE tree_size = $1 ORDER BY witness", tree_size
    )
    return [str(r["line"]) for r in rows]


async def read_tile(log: AuditLog, ref: TileRef, checkpoint_size: int) -> bytes:
    """The bytes of tile ``ref``, if the checkpoint of ``checkpoint_size`` covers it."""
    if ref.end() > checkpoint_size:
        raise TileNotFound(f"{tile_path(ref.level, ref.index, ref.width)} is beyond the checkpoint")
    first = ref.index * TILE_WIDTH * ref.span()
    if ref.level is None:
        rows = await log.db.fetch(
            "SELECT seq, body FROM audit_entries WHERE seq >= $1 AND seq < $2 ORDER BY seq", first, ref.end()
        )
        _check_rows(rows, first, ref.width)
        out = bytearray()
        for row in rows:
            body = str(row["body"]).encode("utf-8")
            if len(body) >= 1 << 16:
                raise AuditError(f"entry {row['seq']} is longer than an entry bundle can carry")
            out += len(body).to_bytes(2, "big") + body
        return bytes(out)
    if ref.level == 0:
        rows = await log.db.fetch(
            "SELECT seq, leaf_hash FROM audit_entries WHERE seq >= $1 AND seq < $2 ORDER BY seq", first, ref.end()
        )
        _check_rows(rows, first, ref.width)
        return b"".join(bytes.fromhex(str(r["leaf_hash"])) for r in rows)
    if ref.end() > log.size:
        await log.flush()  # another node signed entries this one has not folded in yet
    span = ref.span()
    ranges = [(first + i * span, first + (i + 1) * span) for i in range(ref.width)]

    def lookups(mth: SubtreeHash) -> list[bytes]:
        return [mth(lo, hi) for lo, hi in ranges]

    mth = await log._subtree_fn(lookups, ref.end())
    return b"".join(lookups(mth))


def _check_rows(rows: list[dict[str, Any]], first: int, width: int) -> None:
    if len(rows) != width or any(int(r["seq"]) != first + i for i, r in enumerate(rows)):
        raise AuditError(f"audit entries from {first} are missing; run `counter audit verify`")

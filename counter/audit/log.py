"""The audit log: group-committed appends, an incrementally kept Merkle tree, signed checkpoints.

Every entry gets its sequence number (= its leaf index) when it is inserted, under one lock (the
SQLite write lock; a PostgreSQL advisory transaction lock), so sequence numbers are gap-free and in
commit order whoever writes: the batch writer here, :meth:`AuditLog.append_in` inside a caller's own
transaction, or another node.  The tree is derived from seq order; before each batch the writer
folds in any entries written by others, and checkpoints cover the contiguous prefix it has seen.
Reading entries back (search, personal data) is :class:`counter.audit.records.EntryReader`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from counter.audit.entry import (
    INSERT_ENTRY,
    INSERT_PERSONAL,
    AuditError,
    AuditEvent,
    AuditReceipt,
    PreparedEntry,
    prepare,
    prepared_rows,
)
from counter.audit.keys import Checkpoint, Signer
from counter.audit.merkle import (
    Frontier,
    SubtreeHash,
    consistency_path,
    hash_children,
    inclusion_path,
    split_point,
)
from counter.audit.records import EntryReader
from counter.audit.signing import register_key, release_lease, take_lease
from storage import Database, Executor
from storage.timeutil import iso

log = logging.getLogger("counter.audit")

#: Perfect subtrees this high (64 leaves) and higher are kept in memory; lower ones come from leaves.
TILE_HEIGHT = 6
_LOCK_KEY = 0x41554454  # "AUDT": the PostgreSQL advisory lock that orders audit inserts
_ZERO = bytes(32)
_STOP = object()
INSERT_TILE = "INSERT INTO audit_tiles (idx, hash) VALUES ($1, $2) ON CONFLICT (idx) DO NOTHING"

Nodes = dict[tuple[int, int], bytes]


@dataclass(frozen=True)
class InclusionProof:
    seq: int
    tree_size: int
    leaf_hash: str
    path: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "tree_size": self.tree_size, "leaf_hash": self.leaf_hash, "path": self.path}


async def lock_sequence(tx: Executor) -> int:
    """Take the audit insert lock in ``tx`` and return the next sequence number."""
    if tx.dialect == "postgresql":
        await tx.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
    top = await tx.fetchval("SELECT MAX(seq) FROM audit_entries")
    return 0 if top is None else int(top) + 1


def _subtree(nodes: Nodes, leaf: Callable[[int], bytes]) -> SubtreeHash:
    def mth(lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 1:
            return leaf(lo)
        if n & (n - 1) == 0 and lo % n == 0:
            height = n.bit_length() - 1
            if height >= TILE_HEIGHT:
                cached = nodes.get((height, lo >> height))
                if cached is not None:
                    return cached
        k = split_point(n)
        return hash_children(mth(lo, lo + k), mth(lo + k, hi))

    return mth


def _keep_high(nodes: Nodes) -> Nodes:
    return {k: v for k, v in nodes.items() if k[0] >= TILE_HEIGHT}


class AuditLog(EntryReader):
    """Append-only, tamper-evident audit log.  Create with :meth:`open`; :meth:`close` on shutdown."""

    def __init__(
        self,
        db: Database,
        signer: Signer,
        pseudonym_key: bytes,
        *,
        checkpoint_interval: float = 0.5,
        max_batch: int = 2000,
        node_id: str = "",
        lease_s: float = 5.0,
    ) -> None:
        self.db = db
        self.node_id = node_id or f"pid-{os.getpid()}"
        self.lease_s = lease_s
        self.signer = signer
        self._pseudonym_key = pseudonym_key
        self.checkpoint_interval = checkpoint_interval
        self.max_batch = max_batch
        self._tree = Frontier()
        self._nodes: Nodes = {}
        self._recent: dict[int, bytes] = {}  # leaf hashes of the last tile or two, for proofs at the edge
        self._latest: Checkpoint | None = None
        self._last_cp = 0.0
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._direct = asyncio.Lock()
        #: Called with each checkpoint this node signs (witnessing).
        self.on_checkpoint: list[Callable[[Checkpoint], None]] = []

    @classmethod
    async def open(cls, db: Database, signer: Signer, pseudonym_key: bytes, **options: Any) -> AuditLog:
        """Rebuild the tree from the stored entries and start the batch writer."""
        self = cls(db, signer, pseudonym_key, **options)
        await self._recover()
        await register_key(db, signer, self.node_id, self._latest.key_id if self._latest else None)
        self._writer = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")
        return self

    # Writing ---------------------------------------------------------------------------------------

    async def append(self, event: AuditEvent) -> AuditReceipt:
        """Append ``event``; returns once its batch is committed (durable) with the seq it got."""
        prepared = prepare(event, self._pseudonym_key)
        if self._closed or self._writer is None or self._writer.done():
            async with self._direct:
                return (await self._write([prepared], force_checkpoint=True))[0]
        future: asyncio.Future[AuditReceipt] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((prepared, future))
        return await future

    async def append_in(self, tx: Executor, event: AuditEvent) -> AuditReceipt:
        """Write ``event`` inside the caller's open transaction: it commits or rolls back with it.

        The insert lock is held until ``tx`` ends, so keep such transactions short.  The entry joins
        the tree and a checkpoint within ``checkpoint_interval`` after the caller commits.
        """
        prepared = prepare(event, self._pseudonym_key)
        seq = await lock_sequence(tx)
        now = iso()
        entry, personal, leaf = prepared.row(seq, now)
        await tx.execute(INSERT_ENTRY, *entry)
        if personal is not None:
            await tx.execute(INSERT_PERSONAL, *personal)
        return AuditReceipt(seq, leaf, now)

    async def flush(self) -> Checkpoint | None:
        """Wait until everything queued is written, then until a checkpoint covers all entries seen:
        signed here, or by the node holding the signer lease (waits at most about a lease)."""
        deadline = _time.monotonic() + 2 * self.lease_s + 1
        while True:
            async with self._direct:
                if self._writer is not None and not self._writer.done():
                    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    self._queue.put_nowait(("flush", done))
                    await done
                else:
                    await self._write([], force_checkpoint=True)
            covered = self._latest.tree_size if self._latest else 0
            if covered >= self._tree.size or _time.monotonic() > deadline:
                return self._latest
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        """Write what is queued and a final checkpoint; later appends are written one by one."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None and not self._writer.done():
            self._queue.put_nowait(_STOP)
            with contextlib.suppress(Exception):
                await self._writer
        with contextlib.suppress(Exception):
            await release_lease(self.db, self.node_id)

    async def abandon(self) -> None:
        """Stop the writer without a final checkpoint (a log refused at start must sign nothing more)."""
        self._closed = True
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer

    async def _run(self) -> None:
        tick = max(0.05, min(self.checkpoint_interval, 1.0))
        while True:
            try:
                first = await asyncio.wait_for(self._queue.get(), timeout=tick)
            except TimeoutError:
                first = None
            items = [] if first is None else [first]
            while len(items) < self.max_batch and not self._queue.empty():
                items.append(self._queue.get_nowait())
            stop = any(i is _STOP for i in items)
            flushes = [i[1] for i in items if i is not _STOP and i[0] == "flush"]
            batch = [i for i in items if i is not _STOP and i[0] != "flush"]
            try:
                receipts = await self._write([p for p, _ in batch], force_checkpoint=stop or bool(flushes))
            except Exception as exc:
                log.exception("audit batch of %d entries failed", len(batch))
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(AuditError(f"audit entry not written: {exc}"))
                for fut in flushes:
                    if not fut.done():
                        fut.set_exception(AuditError(f"audit flush failed: {exc}"))
            else:
                for (_, fut), receipt in zip(batch, receipts, strict=True):
                    if not fut.done():
                        fut.set_result(receipt)
                for fut in flushes:
                    if not fut.done():
                        fut.set_result(None)
            if stop:
                return

    async def _write(self, batch: list[PreparedEntry], *, force_checkpoint: bool) -> list[AuditReceipt]:
        due = force_checkpoint or _time.monotonic() - self._last_cp >= self.checkpoint_interval
        nodes: Nodes = {}
        receipts: list[AuditReceipt] = []
        checkpoint: Checkpoint | None = None
        async with self.db.transaction() as tx:
            seq = await lock_sequence(tx)
            tree = self._tree
            fresh: list[bytes] = []
            if seq > tree.size:
                tree, fresh = await self._catch_up(tx, tree, seq, nodes)
            elif seq < tree.size:
                raise AuditError(
                    f"audit entries from seq {seq} on have disappeared; run `counter audit verify`"
                )
            if batch:
                now = iso()
                loop = asyncio.get_running_loop()
                if len(batch) >= 32:
                    rows = await loop.run_in_executor(None, prepared_rows, batch, seq, now)
                else:
                    rows = prepared_rows(batch, seq, now)
                entries, personal, leaves = rows
                await tx.executemany(INSERT_ENTRY, entries)
                if personal:
                    await tx.executemany(INSERT_PERSONAL, personal)
                fresh += [bytes.fromhex(h) for h in leaves]
                tree = tree.extend(fresh[-len(leaves):], nodes)
                receipts = [AuditReceipt(seq + i, h, now) for i, h in enumerate(leaves)]
            tiles = [(i, h.hex()) for (height, i), h in nodes.items() if height == TILE_HEIGHT]
            if tiles:
                await tx.executemany(INSERT_TILE, tiles)
            latest = self._latest.tree_size if self._latest else 0
            if tree.size > latest and due and not await take_lease(tx, self.node_id, self.lease_s):
                row = await tx.fetchrow("SELECT * FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1")
                if row is not None and int(row["tree_size"]) > latest:
                    self._latest = Checkpoint.from_row(row, self.signer.origin)
            elif tree.size > latest and due:
                checkpoint = self.signer.sign(tree.size, tree.root(), iso())
                await tx.execute(
                    "INSERT INTO audit_checkpoints (tree_size, root_hash, time, key_id, signature)"
                    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tree_size) DO NOTHING",
                    checkpoint.tree_size,
                    checkpoint.root_hash,
                    checkpoint.time,
                    checkpoint.key_id,
                    checkpoint.signature,
                )
        self._remember(tree.size - len(fresh), fresh)
        self._tree = tree
        self._nodes.update(_keep_high(nodes))
        if checkpoint is not None:
            self._latest = checkpoint
            self._last_cp = _time.monotonic()
            for hook in self.on_checkpoint:
                hook(checkpoint)
        return receipts

    def _remember(self, first: int, leaves: list[bytes]) -> None:
        self._recent.update(zip(range(first, first + len(leaves)), leaves, strict=True))
        keep_from = max(0, ((first + len(leaves)) >> TILE_HEIGHT) - 1) << TILE_HEIGHT
        for seq in [s for s in self._recent if s < keep_from]:
            del self._recent[seq]

    async def _catch_up(
        self, tx: Executor, tree: Frontier, upto: int, nodes: Nodes
    ) -> tuple[Frontier, list[bytes]]:
        rows = await tx.fetch(
            "SELECT seq, leaf_hash FROM audit_entries WHERE seq >= $1 AND seq < $2 ORDER BY seq",
            tree.size,
            upto,
        )
        for i, row in enumerate(rows):
            if int(row["seq"]) != tree.size + i:
                raise AuditError(f"audit entry seq {tree.size + i} is missing; run `counter audit verify`")
        if len(rows) != upto - tree.size:
            raise AuditError(f"audit entries before seq {upto} are missing; run `counter audit verify`")
        leaves = [bytes.fromhex(r["leaf_hash"]) for r in rows]
        return tree.extend(leaves, nodes), leaves

    async def _recover(self) -> None:
        top = await self.db.fetchval("SELECT MAX(seq) FROM audit_entries")
        stored = 0 if top is None else int(top) + 1
        tiles: list[bytes] = []
        for tile in await self.db.fetch("SELECT idx, hash FROM audit_tiles ORDER BY idx"):
            if int(tile["idx"]) != len(tiles) or (len(tiles) + 1) << TILE_HEIGHT > stored:
                break
            tiles.append(bytes.fromhex(tile["hash"]))
        row = await self.db.fetchrow("SELECT * FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1")
        self._latest = Checkpoint.from_row(row, self.signer.origin) if row else None
        await self._rebuild(tiles)
        if self._latest is None:
            return
        if self._latest.tree_size > self._tree.size:
            raise AuditError(
                f"a checkpoint covers {self._latest.tree_size} entries but only {self._tree.size} are stored;"
                " run `counter audit verify`"
            )
        if (await self.root_at(self._latest.tree_size)).hex() == self._latest.root_hash:
            return
        if tiles:
            log.warning("the audit subtree cache disagrees with the last checkpoint; rebuilding from every entry")
            await self.db.execute("DELETE FROM audit_tiles")
            await self._rebuild([])
            if (await self.root_at(self._latest.tree_size)).hex() == self._latest.root_hash:
                return
        log.error(
            "the stored audit entries do not match the last signed checkpoint (size %d): the log was"
            " tampered with; run `counter audit verify` to locate it",
            self._latest.tree_size,
        )

    async def _rebuild(self, tiles: list[bytes]) -> None:
        """The tree from the cached 64-leaf subtree hashes, then every entry after them."""
        loop = asyncio.get_running_loop()
        nodes: Nodes = {(TILE_HEIGHT, i): h for i, h in enumerate(tiles)}
        part: Nodes = {}
        tree = await loop.run_in_executor(None, Frontier().extend_subtrees, TILE_HEIGHT, tiles, part)
        nodes.update(part)
        self._recent = {}
        while True:
            rows = await self.db.fetch(
                "SELECT seq, leaf_hash FROM audit_entries WHERE seq >= $1 ORDER BY seq LIMIT 20000", tree.size
            )
            if not rows:
                break
            if int(rows[0]["seq"]) != tree.size or int(rows[-1]["seq"]) != tree.size + len(rows) - 1:
                raise AuditError(
                    f"the audit log has a gap after seq {tree.size - 1}; run `counter audit verify` to see it"
                )
            hashes = [bytes.fromhex(r["leaf_hash"]) for r in rows]
            tail = hashes[-(2 << TILE_HEIGHT):]
            self._remember(tree.size + len(hashes) - len(tail), tail)
            part = {}
            tree = await loop.run_in_executor(None, tree.extend, hashes, part)
            nodes.update(_keep_high(part))
            new_tiles = [(i, h.hex()) for (height, i), h in part.items() if height == TILE_HEIGHT]
            if new_tiles:
                await self.db.executemany(INSERT_TILE, new_tiles)
        self._tree, self._nodes = tree, nodes

    # Reading ---------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Entries folded into the in-memory tree."""
        return self._tree.size

    def root(self) -> bytes:
        return self._tree.root()

    def latest_checkpoint(self) -> Checkpoint | None:
        return self._latest

    async def checkpoints(self, since_size: int = 0, limit: int = 1000) -> list[Checkpoint]:
        rows = await self.db.fetch(
            "SELECT * FROM audit_checkpoints WHERE tree_size >= $1 ORDER BY tree_size LIMIT $2",
            since_size,
            limit,
        )
        return [Checkpoint.from_row(r, self.signer.origin) for r in rows]

    async def checkpoint_at(self, tree_size: int) -> Checkpoint | None:
        row = await self.db.fetchrow("SELECT * FROM audit_checkpoints WHERE tree_size = $1", tree_size)
        return Checkpoint.from_row(row, self.signer.origin) if row else None

    async def _subtree_fn(self, lookups: Callable[[SubtreeHash], object], size: int) -> SubtreeHash:
        """A subtree-hash function with the leaves ``lookups`` needs fetched from the database."""
        if size > self._tree.size:
            raise AuditError(f"tree size {size} is not reached yet; the log holds {self._tree.size} entries")
        tiles: set[int] = set()
        recent = self._recent
        leaves: dict[int, bytes] = {}

        def probe(i: int) -> bytes:
            cached = recent.get(i)
            if cached is None:
                tiles.add(i >> TILE_HEIGHT)
                return _ZERO
            leaves[i] = cached
            return cached

        nodes = self._nodes
        lookups(_subtree(nodes, probe))
        if tiles:  # one round trip for every tile needed
            ranges: list[str] = []
            args: list[int] = []
            for tile in sorted(tiles):
                args += [tile << TILE_HEIGHT, min((tile + 1) << TILE_HEIGHT, size)]
                ranges.append(f"(seq >= ${len(args) - 1} AND seq < ${len(args)})")
            rows = await self.db.fetch(
                f"SELECT seq, leaf_hash FROM audit_entries WHERE {' OR '.join(ranges)}", *args
            )
            leaves.update((int(r["seq"]), bytes.fromhex(r["leaf_hash"])) for r in rows)

        def leaf(i: int) -> bytes:
            try:
                return leaves[i]
            except KeyError:
                raise AuditError(f"audit entry {i} is missing; run `counter audit verify`") from None

        return _subtree(nodes, leaf)

    def _default_size(self, size: int | None) -> int:
        if size is not None:
            return size
        if self._latest is None:
            raise AuditError("no checkpoint yet: append an entry first")
        return self._latest.tree_size

    async def inclusion_proof(self, seq: int, tree_size: int | None = None) -> InclusionProof:
        """The audit path of entry ``seq`` in the tree of ``tree_size`` (default: latest checkpoint)."""
        size = self._default_size(tree_size)
        if not 0 <= seq < size:
            raise AuditError(f"entry {seq} is not in the tree of size {size}")
        mth = await self._subtree_fn(lambda f: (f(seq, seq + 1), inclusion_path(seq, size, f)), size)
        path = inclusion_path(seq, size, mth)
        return InclusionProof(seq, size, mth(seq, seq + 1).hex(), [p.hex() for p in path])

    async def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[str]:
        """The consistency proof from ``old_size`` to ``new_size`` (default: latest checkpoint)."""
        size = self._default_size(new_size)
        if not 0 <= old_size <= size:
            raise AuditError(f"no consistency proof from size {old_size} to {size}")
        mth = await self._subtree_fn(lambda f: consistency_path(old_size, size, f), size)
        return [p.hex() for p in consistency_path(old_size, size, mth)]

    async def root_at(self, size: int) -> bytes:
        """The root of the tree of the first ``size`` entries."""
        if size == 0:
            return Frontier().root()
        mth = await self._subtree_fn(lambda f: f(0, size), size)
        return mth(0, size)

    async def purge_personal(self, older_than: datetime) -> int:
        """Delete personal values and salts of entries older than ``older_than`` (and sessions' personal
        fields), audited as ``audit.purge``; return how many entries lost theirs.

        The entries, their commitments and so the tree stay verifiable; without the salt the values
        cannot be recovered by guessing.  Deleted pages are overwritten (SQLite ``secure_delete``)
        or vacuumed (PostgreSQL).  See :mod:`counter.audit.purge`.
        """
        from counter.audit.purge import purge

        return (await purge(self, older_than)).personal_entries

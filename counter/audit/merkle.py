"""RFC 6962 / RFC 9162 Merkle tree hashing: roots, inclusion and consistency proofs, verification.

Leaf hash ``SHA-256(0x00 || leaf)``, interior node ``SHA-256(0x01 || left || right)``, empty tree
``SHA-256("")``.  Every function here is pure: proofs are built from a *subtree hash* function so the
caller decides where hashes come from (a list in memory, a node cache plus database reads).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: ``subtree(lo, hi)`` -> MTH of the leaves ``[lo, hi)``.
SubtreeHash = Callable[[int, int], bytes]


class ProofError(ValueError):
    """A proof does not verify; the message says which check failed."""


def hash_leaf(leaf: bytes) -> bytes:
    """The hash of a leaf: ``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a whole list of leaf hashes (for small trees and tests; use :class:`Frontier` for big ones)."""
    frontier = Frontier()
    for h in leaf_hashes:
        frontier = frontier.append(h)
    return frontier.root()


def list_subtree(leaf_hashes: Sequence[bytes]) -> SubtreeHash:
    """A :data:`SubtreeHash` over leaf hashes held in memory."""

    def mth(lo: int, hi: int) -> bytes:
        if hi - lo == 0:
            return EMPTY_ROOT
        if hi - lo == 1:
            return leaf_hashes[lo]
        k = split_point(hi - lo)
        return hash_children(mth(lo, lo + k), mth(lo + k, hi))

    return mth


def inclusion_path(index: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """The audit path (RFC 6962 2.1.1) of leaf ``index`` in the tree of ``size`` leaves, leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_path(old_size: int, new_size: int, subtree: SubtreeHash) -> list[bytes]:
    """The consistency proof (RFC 6962 2.1.2) between tree sizes ``old_size`` and ``new_size``."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    m, lo, hi, complete = old_size, 0, new_size, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                proof.append(subtree(lo, hi))
            break
        k = split_point(n)
        if m <= k:
            proof.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree(lo, lo + k))
            lo += k
            m -= k
            complete = False
    proof.reverse()
    return proof


def root_from_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 2.1.3.2); raises :class:`ProofError`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf_hash) != HASH_SIZE or any(len(p) != HASH_SIZE for p in proof):
        raise ProofError("every hash must be 32 bytes")
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("proof is longer than the tree is high")
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than the tree is high")
    return r


def verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows leaf ``index`` is in the tree with ``root``."""
    if root_from_inclusion(index, size, leaf_hash, proof) != root:
        raise ProofError(f"inclusion proof of leaf {index} does not lead to the root of size {size}")


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Raise :class:`ProofError` unless the tree ``new_root`` extends ``old_root`` (RFC 9162 2.1.4.2)."""
    if old_size > new_size:
        raise ProofError(f"size {old_size} is larger than {new_size}")
    if any(len(p) != HASH_SIZE for p in proof):
        raise ProofError("every hash must be 32 bytes")
    if old_size == new_size:
        if proof:
            raise ProofError("equal sizes take an empty proof")
        if old_root != new_root:
            raise ProofError("same size, different roots")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("proof is longer than the tree is high")
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than the tree is high")
    if fr != old_root:
        raise ProofError(f"consistency proof does not lead to the old root of size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not lead to the new root of size {new_size}")


@dataclass(frozen=True)
class Frontier:
    """The compact right edge of a tree: one perfect subtree hash per set bit of ``size``.

    ``append`` returns a new frontier (the old one stays valid, so a failed write can be dropped);
    perfect subtrees completed on the way are reported to ``nodes`` as ``(height, index) -> hash``.
    """

    size: int = 0
    stack: tuple[tuple[int, bytes], ...] = field(default=())

    def append(self, leaf_hash: bytes, nodes: dict[tuple[int, int], bytes] | None = None) -> Frontier:
        return self.extend((leaf_hash,), nodes)

    def extend(self, leaf_hashes: Iterable[bytes], nodes: dict[tuple[int, int], bytes] | None = None) -> Frontier:
        stack = list(self.stack)
        size = self.size
        for h in leaf_hashes:
            height, node = 0, h
            index = size
            size += 1
            while stack and stack[-1][0] == height:
                node = hash_children(stack.pop()[1], node)
                height += 1
                index >>= 1
                if nodes is not None:
                    nodes[(height, index)] = node
            stack.append((height, node))
        return Frontier(size, tuple(stack))

    def extend_subtrees(
        self, height: int, hashes: Iterable[bytes], nodes: dict[tuple[int, int], bytes] | None = None
    ) -> Frontier:
        """Append whole perfect subtrees of ``height`` (``size`` must be a multiple of their width)."""
        width = 1 << height
        if self.size % width:
            raise ValueError(f"size {self.size} is not a multiple of {width}")
        stack = list(self.stack)
        size = self.size
        for h in hashes:
            level, node, index = height, h, size >> height
            size += width
            while stack and stack[-1][0] == level:
                node = hash_children(stack.pop()[1], node)
                level += 1
                index >>= 1
                if nodes is not None:
                    nodes[(level, index)] = node
            stack.append((level, node))
        return Frontier(size, tuple(stack))

    def root(self) -> bytes:
        """MTH of the whole tree."""
        if not self.stack:
            return EMPTY_ROOT
        r = self.stack[-1][1]
        for _, h in reversed(self.stack[:-1]):
            r = hash_children(h, r)
        return r

"""Merkle tree hashing against the public RFC 6962 test vectors.

Vectors copied as data from transparency-dev/merkle, ``proof/verify_test.go`` (Apache-2.0), the same
set Certificate Transparency's own implementations test against: ``leaves``, ``roots`` (sizes 1..8),
``inclusionProofs`` (1-based leaf number, tree size, path) and ``consistencyProofs``.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from counter.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    consistency_path,
    hash_leaf,
    inclusion_path,
    list_subtree,
    root_of,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [bytes.fromhex(h) for h in [
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
]]
ROOTS = [bytes.fromhex(h) for h in [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]]
INCLUSION = [  # (1-based leaf, tree size, path)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (2, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
LEAF_HASHES = [hash_leaf(leaf) for leaf in LEAVES]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest() == Frontier().root()
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_for_every_size(size: int) -> None:
    assert root_of(LEAF_HASHES[:size]) == ROOTS[size - 1]
    assert list_subtree(LEAF_HASHES)(0, size) == ROOTS[size - 1]


@pytest.mark.parametrize(("leaf", "size", "path"), INCLUSION)
def test_inclusion_vectors(leaf: int, size: int, path: list[str]) -> None:
    proof = [bytes.fromhex(p) for p in path]
    assert inclusion_path(leaf - 1, size, list_subtree(LEAF_HASHES)) == proof
    verify_inclusion(leaf - 1, size, LEAF_HASHES[leaf - 1], proof, ROOTS[size - 1])
    with pytest.raises(ProofError):
        verify_inclusion(leaf - 1, size, hash_leaf(b"WrongLeaf"), proof, ROOTS[size - 1])
    if size > 1:
        with pytest.raises(ProofError):
            verify_inclusion(leaf % size, size, LEAF_HASHES[leaf - 1], proof, ROOTS[size - 1])
        with pytest.raises(ProofError):
            verify_inclusion(leaf - 1, size, LEAF_HASHES[leaf - 1], [*proof, ROOTS[size - 1]], ROOTS[size - 1])
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        with pytest.raises(ProofError):
            verify_inclusion(leaf - 1, size, LEAF_HASHES[leaf - 1], bad, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_consistency_vectors(old: int, new: int, path: list[str]) -> None:
    proof = [bytes.fromhex(p) for p in path]
    assert consistency_path(old, new, list_subtree(LEAF_HASHES)) == proof
    verify_consistency(old, new, proof, ROOTS[old - 1], ROOTS[new - 1])
    if proof:
        with pytest.raises(ProofError):
            verify_consistency(old, new, proof, ROOTS[new - 1], ROOTS[old - 1])
        with pytest.raises(ProofError):
            verify_consistency(old, new, proof[:-1], ROOTS[old - 1], ROOTS[new - 1])
        with pytest.raises(ProofError):
            verify_consistency(old, new, [], ROOTS[old - 1], ROOTS[new - 1])
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
            with pytest.raises(ProofError):
                verify_consistency(old, new, bad, ROOTS[old - 1], ROOTS[new - 1])


def test_generated_proofs_verify_for_all_pairs_up_to_40() -> None:
    leaves = [hash_leaf(i.to_bytes(4, "big")) for i in range(40)]
    mth = list_subtree(leaves)
    roots = [mth(0, n) for n in range(41)]
    for n in range(1, 41):
        for m in range(n):
            verify_inclusion(m, n, leaves[m], inclusion_path(m, n, mth), roots[n])
        for m in range(0, n + 1):
            verify_consistency(m, n, consistency_path(m, n, mth), roots[m], roots[n])


def test_frontier_reports_perfect_subtrees_and_is_persistent() -> None:
    rng = random.Random(7)
    leaves = [rng.randbytes(32) for _ in range(300)]
    nodes: dict[tuple[int, int], bytes] = {}
    half = Frontier().extend(leaves[:150], nodes)
    full = half.extend(leaves[150:], nodes)
    mth = list_subtree(leaves)
    assert half.root() == mth(0, 150)
    assert full.root() == mth(0, 300)
    assert half.size == 150 and full.size == 300
    for (height, index), h in nodes.items():
        assert h == mth(index << height, (index + 1) << height)
    assert (8, 0) in nodes and (5, 8) in nodes


def test_frontier_from_whole_subtrees_equals_leaf_by_leaf() -> None:
    leaves = [hash_leaf(i.to_bytes(4, "big")) for i in range(64 * 5 + 9)]
    mth = list_subtree(leaves)
    tiles = [mth(i * 64, (i + 1) * 64) for i in range(5)]
    nodes: dict[tuple[int, int], bytes] = {}
    built = Frontier().extend_subtrees(6, tiles, nodes).extend(leaves[320:])
    assert built.root() == mth(0, len(leaves)) == Frontier().extend(leaves).root()
    assert nodes[(7, 0)] == mth(0, 128) and nodes[(8, 0)] == mth(0, 256)
    with pytest.raises(ValueError):
        built.extend_subtrees(6, tiles)

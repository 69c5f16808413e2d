"""Tamper-evident audit log: RFC 6962 Merkle tree, signed checkpoints, group commit."""

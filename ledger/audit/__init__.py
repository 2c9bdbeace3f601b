"""Auditing the ledger from the outside: Merkle tree, checkpoints, export and verification."""

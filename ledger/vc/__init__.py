"""Verifiable credentials: Open Badges 3.0 / W3C VC 2.0, Data Integrity proofs, status lists.

Pure functions over JSON documents; the ledger-facing part (which certificate,
which key, which index) is in ledger/services/credentials.py.
"""

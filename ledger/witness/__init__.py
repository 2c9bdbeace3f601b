"""A standalone C2SP tlog-witness: cosigns a log's checkpoints only when they extend what it saw.

An independent organisation runs it with its own Ed25519 key and storage
(`ledger witness init|serve|status`). Pure protocol rules live in `request`
and `rules`; `state` is the witness's own SQLite file; `witness` ties them to
the key; `app` and `server` are the thin HTTP side.
"""

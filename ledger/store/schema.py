"""Tables of the ledger core, in SQL that SQLite and PostgreSQL both accept.

`ledger_events` is the event store itself: each row is a v1 envelope, and
eventsourcing reads aggregates and the notification log from the same rows
that auditors verify. There is no second copy that could drift.
`tlog_tiles` holds the Merkle tree over it as C2SP tlog-tiles (one row per
tile, widened in place until full), derived from `ledger_events` and
re-derivable from it at any time.

This is migration 1 of the versioned schema (`ledger/store/migrations.py`):
it stays as it is; a table or column added later is a new migration there.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_events (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    type TEXT NOT NULL,
    time TEXT NOT NULL,
    data TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    kid TEXT NOT NULL,
    sig TEXT NOT NULL,
    UNIQUE (stream, version)
);
CREATE INDEX IF NOT EXISTS ledger_events_by_type ON ledger_events (type, seq);
CREATE TABLE IF NOT EXISTS subject_keys (
    subject TEXT PRIMARY KEY,
    wrapped TEXT,
    created TEXT NOT NULL,
    erased TEXT
);
CREATE TABLE IF NOT EXISTS external_ids (
    blind TEXT PRIMARY KEY,
    candidate TEXT NOT NULL,
    subject TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subject_links (
    owner TEXT NOT NULL,
    subject TEXT NOT NULL,
    PRIMARY KEY (owner, subject)
);
CREATE TABLE IF NOT EXISTS api_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    label TEXT NOT NULL,
    created TEXT NOT NULL,
    revoked TEXT
);
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    school TEXT NOT NULL,
    url TEXT NOT NULL,
    created TEXT NOT NULL,
    after_seq BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    webhook TEXT NOT NULL,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt TEXT NOT NULL,
    status TEXT NOT NULL,
    last_error TEXT,
    delivered TEXT,
    PRIMARY KEY (webhook, seq)
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE TABLE IF NOT EXISTS projection_positions (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS projection_schemas (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS projection_stalls (
    name TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    error TEXT NOT NULL,
    since TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    retry_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tlog_checkpoints (
    size BIGINT PRIMARY KEY,
    root TEXT NOT NULL,
    note TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tlog_cosignatures (
    size BIGINT NOT NULL,
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    timestamp BIGINT NOT NULL,
    PRIMARY KEY (size, witness)
);
CREATE TABLE IF NOT EXISTS audit_runs (
    at TEXT NOT NULL,
    ok INTEGER NOT NULL,
    size BIGINT NOT NULL,
    problem TEXT
);
CREATE TABLE IF NOT EXISTS tlog_tiles (
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hashes BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
"""

ANSWER_TYPE = "positioning.AnswerRecorded"
ANSWER_ID = {
    "sqlite": "json_extract(data, '$.answer_id')",
    "postgresql": "((data::json) ->> 'answer_id')",
}
POSITIONING_SCHEMA = {
    kind: f"CREATE INDEX IF NOT EXISTS ledger_answers_by_id ON ledger_events"
    f" (stream, {expression}) WHERE type = '{ANSWER_TYPE}';\n"
    + """CREATE TABLE IF NOT EXISTS positioning_folds (
    candidate TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    hash TEXT NOT NULL,
    state TEXT NOT NULL,
    mac TEXT NOT NULL
);"""
    for kind, expression in ANSWER_ID.items()
}
"""Migration 2: the index that finds a positioning answer by (candidate, answer id)
inside the signed rows (ledger/store/answers.py), spelled per database, and
`positioning_folds`: a candidate's knowledge folded up to a version under a MAC,
so enrolment and course start read only the answers after it
(ledger/store/positioning.py); dropping the table only costs time."""

WEBHOOK_HOST_COLUMN = ("webhooks", "host", "TEXT NOT NULL DEFAULT ''")
WEBHOOK_DUE = dict.fromkeys(
    ("sqlite", "postgresql"),
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries"
    " (status, next_attempt)",
)
"""Migration 3: each webhook's target host, so a round picks a few due deliveries per
host in SQL (ledger/services/webhooks.py) and one school's backlog cannot fill a
round; rows registered before it have '' and are grouped by their URL instead."""

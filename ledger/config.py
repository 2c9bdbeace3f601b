"""Settings from environment variables, with safe defaults: the one place they are read.

Every variable is listed in `SETTINGS` with its default and meaning; README's
configuration table is generated from it (`ledger config`), so the two cannot drift.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ledger.store.db import Timeouts

ROOT = Path(__file__).resolve().parent.parent
PROJECTION_MODES = ("runner", "inline")
LOG_FORMATS = ("json", "text")
METRICS_ACCESS = ("loopback", "token", "open")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

SETTINGS: dict[str, tuple[str, str]] = {
    "LEDGER_DATABASE_URL": (
        "sqlite:///var/ledger.db",
        "Event store and projections. `sqlite:///relative/or/absolute/path.db` or "
        "`postgresql://user@host:port/dbname`.",
    ),
    "LEDGER_DB_CONNECT_TIMEOUT_MS": (
        "800",
        "Longest wait for a new PostgreSQL connection before answering 503 (so within 1 s).",
    ),
    "LEDGER_DB_STATEMENT_TIMEOUT_MS": (
        "10000",
        "PostgreSQL statement timeout (also bounds the wait for the append lock).",
    ),
    "LEDGER_DB_BUSY_TIMEOUT_MS": (
        "5000",
        "Longest wait for SQLite's write lock before answering 503.",
    ),
    "LEDGER_TOKEN_CACHE_S": (
        "2",
        "Seconds a serving process trusts a bearer token it checked before reading it again: "
        "a token revoked by another process is refused within this bound (0 = every request).",
    ),
    "LEDGER_IDEMPOTENCY_CLAIM_TTL_S": (
        "30",
        "Seconds after which an Idempotency-Key claimed by a request that never "
        "finished (a crashed worker) may be taken over by a retry.",
    ),
    "LEDGER_KEYS_DIR": ("keys", "Directory holding the Ed25519 signing keys and the master key."),
    "LEDGER_MASTER_KEY": (
        "",
        "Base64url 32-byte key wrapping per-person data keys; default: `master.key` in the keys dir.",
    ),
    "LEDGER_PUBLIC_URL": (
        "http://127.0.0.1:8000",
        "Public base URL printed in QR codes and links.",
    ),
    "LEDGER_ISSUER_NAME": (
        "Organisme certificateur (démonstration)",
        "Organisation that issues the certificates, named on every verify-site page.",
    ),
    "LEDGER_ISSUER_CONTACT": (
        "",
        "Its contact for questions and erasure requests (an email address or an http(s) URL), "
        "shown on every verify-site page and the legal notice.",
    ),
    "LEDGER_ISSUER_LOGO": (
        "",
        "Path of a local PNG, JPEG or SVG logo the verify site serves in its header (optional).",
    ),
    "LEDGER_ATTESTATION_CERT": (
        "",
        "PEM document-signing certificate (ECDSA P-256) for attestation PDFs; default: "
        "`attestation/signer.pem` in the keys dir, created by `ledger keys init`.",
    ),
    "LEDGER_ATTESTATION_KEY": (
        "",
        "PEM private key of that certificate; default: `attestation/signer.key` in the keys dir.",
    ),
    "LEDGER_ATTESTATION_CA": (
        "",
        "PEM issuing CA of that certificate, published at `/.well-known/attestation-ca.pem`; "
        "default: `attestation/ca.pem` in the keys dir.",
    ),
    "LEDGER_TSA_URL": (
        "",
        "RFC 3161 timestamp authority: when set, attestation PDFs are signed PAdES B-T "
        "instead of B-B.",
    ),
    "LEDGER_LOG_ORIGIN": ("ledger.local/crcn", "Origin line of signed checkpoints."),
    "LEDGER_CHECKPOINT_EVENTS": (
        "1000",
        "A new checkpoint is signed once this many events were appended since the last one.",
    ),
    "LEDGER_CHECKPOINT_SECONDS": (
        "60",
        "…or once this many seconds passed since the last one, if any event was appended.",
    ),
    "LEDGER_CHECKPOINT_MAX_AGE_SECONDS": (
        "300",
        "`/api/v1/ready` reports the log not ready when events are newer than a checkpoint "
        "this old.",
    ),
    "LEDGER_WITNESSES": (
        "",
        "Witnesses each checkpoint is pushed to (C2SP tlog-witness): entries "
        "`<witness vkey> <base URL>`, separated by newlines or `;`.",
    ),
    "LEDGER_WITNESS_QUORUM": (
        "",
        "Witness cosignatures a checkpoint needs to count as witnessed; default: every "
        "configured witness. Certificate histories call a checkpoint witnessed only with "
        "at least one cosignature (0 acts as 1 there), so never without witnesses.",
    ),
    "LEDGER_TRUST_ANCHOR": (
        "",
        "The log's trust anchor (the line `ledger init` prints, or a file holding it); "
        "default: `anchor.json` in the keys dir. Keys count only if endorsed from it.",
    ),
    "LEDGER_MONITOR_TOKEN": (
        "",
        "`audit:read` token `ledger audit watch` sends to the log it follows (or `--token`); "
        "read by the monitor only, never by the service.",
    ),
    "LEDGER_WEBHOOK_INTERVAL_S": (
        "5",
        "Seconds between two webhook dispatches (queue new events, send due deliveries) in "
        "each serving process; 0 = none (then run `ledger webhooks send` from cron).",
    ),
    "LEDGER_WEBHOOK_ALLOW_PRIVATE": (
        "0",
        "1 lets webhooks use http:// and reach loopback or private addresses: development "
        "and tests only; otherwise a webhook URL is https and resolves to public addresses.",
    ),
    "LEDGER_WEBHOOK_MAX_PER_SCHOOL": (
        "5",
        "Most webhooks one school may register (each URL once); it deletes one to add another.",
    ),
    "LEDGER_MAX_LEVEL": ("5", "Highest certifiable level (levels are shown 'sur N')."),
    "LEDGER_CALENDAR": (
        "upper-secondary=01-05:03-31,lower-secondary=03-01:05-31",
        "Certification windows per audience (`audience=MM-DD:MM-DD`, comma-separated); "
        "audiences not listed (adults) have none.",
    ),
    "LEDGER_MAX_BATCH": ("1000", "Largest batch of answers accepted in one request."),
    "LEDGER_MAX_BODY_BYTES": ("4194304", "Largest request body the API reads."),
    "LEDGER_MAX_UPLOAD_BYTES": (
        "5242880",
        "Largest file the verify site's QR upload and the attestation PDF check accept.",
    ),
    "LEDGER_LOOKUP_RATE_LIMIT": (
        "60/minute",
        "Certificate lookups per client (page, JSON, QR image, history) and checkpoint listings, e.g. `60/minute`.",
    ),
    "LEDGER_UPLOAD_RATE_LIMIT": (
        "10/minute",
        "Uploads per client: the verify site's QR and PDF uploads and the API's attestation PDF checks.",
    ),
    "LEDGER_RATELIMIT_STORAGE": (
        "node://",
        "Where rate-limit counters live: `node://` (shared by every worker of this host, "
        "in the runtime dir), `redis://host:6379/0` (shared by several nodes) or `memory://` "
        "(per process: only for a single worker).",
    ),
    "LEDGER_RUNTIME_DIR": (
        "var/run",
        "Directory for this host's runtime files: shared rate-limit counters, gunicorn's "
        "control socket.",
    ),
    "LEDGER_PROXY_HOPS": (
        "0",
        "Reverse proxies in front of the service whose X-Forwarded-For to trust.",
    ),
    "LEDGER_SIGNING_THREADS": (
        "2",
        "Threads that sign a large batch of events in parallel (1 = sign on the writing thread).",
    ),
    "LEDGER_PROJECTIONS": (
        "runner",
        "Who writes the read models: `runner` = only `ledger projections run` (which "
        "`ledger serve` starts alongside), API workers wait for it; `inline` = each API "
        "worker catches them up within the request (a single process, the test client).",
    ),
    "LEDGER_PROJECTION_POLL_MS": (
        "100",
        "How often the projection runner looks for new events when no PostgreSQL "
        "notification woke it (on SQLite: its only way to see them).",
    ),
    "LEDGER_PROJECTION_BATCH": (
        "2000",
        "Events the projection runner applies per transaction (with its position).",
    ),
    "LEDGER_READ_MAX_WAIT_MS": (
        "2000",
        "Runner mode: longest a read waits for the read models to reach the log's head "
        "(or `X-Min-Seq`) before answering 503 with Retry-After.",
    ),
    "LEDGER_HOST": ("127.0.0.1", "Address `ledger serve` binds."),
    "LEDGER_PORT": ("8000", "Port `ledger serve` binds."),
    "LEDGER_WORKERS": ("2", "Gunicorn worker processes for `ledger serve`."),
    "LEDGER_THREADS": (
        "8",
        "Threads per gunicorn worker of `ledger serve`: concurrent requests of a worker share "
        "one commit (group commit).",
    ),
    "LEDGER_LOG_LEVEL": ("info", "Log level (debug, info, warning, error)."),
    "LEDGER_LOG_FORMAT": (
        "json",
        "`json`: one JSON object per log line, with the request id (for a log pipeline); "
        "`text`: plain lines and gunicorn's access log (for a terminal).",
    ),
    "LEDGER_METRICS_ACCESS": (
        "loopback",
        "Who may read `/metrics` without a token of scope `metrics` (or admin): `loopback` "
        "(clients on this host, when LEDGER_PROXY_HOPS is 0 and no forwarding header is sent), "
        "`token` (nobody) or `open` (anybody).",
    ),
    "LEDGER_READY_MAX_LAG_EVENTS": (
        "10000",
        "`/api/v1/ready` fails when a read model is more events than this behind the log.",
    ),
    "LEDGER_READY_MAX_LAG_SECONDS": (
        "30",
        "…or when its oldest unapplied event is older than this many seconds.",
    ),
}

# Read by the test suite only, never by the service: listed so every variable that
# changes a run is documented in one table.
TEST_SETTINGS: dict[str, tuple[str, str]] = {
    "LEDGER_TEST_PG": (
        "postgresql://postgres@127.0.0.1:5432/test",
        "PostgreSQL database the tests run on, each test in a schema of its own.",
    ),
    "LEDGER_TEST_REDIS": (
        "redis://127.0.0.1:6379/15",
        "Redis database the tests of rate limits shared by several nodes use.",
    ),
    "FUZZ_SECONDS": ("30", "How long the schemathesis test runs (`make fuzz`: 600)."),
    "FUZZ_SEED": ("8", "Seed of the schemathesis test, to replay a run."),
}


def setting(name: str) -> str:
    """The value of a documented setting: environment first, then its default."""
    default = SETTINGS[name][0]
    return os.environ.get(name, default) or default


def suite_setting(name: str) -> str:
    """The value of a test-suite setting: environment first, then its default."""
    default = TEST_SETTINGS[name][0]
    return os.environ.get(name, default) or default


def _int_setting(name: str) -> int:
    raw = setting(name)
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _flag(name: str) -> bool:
    raw = setting(name).strip()
    if raw not in ("0", "1"):
        raise ConfigError(f"{name} must be 0 or 1, got {raw!r}")
    return raw == "1"


def _non_negative(name: str) -> int:
    value = _int_setting(name)
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


def _positive(name: str) -> int:
    value = _int_setting(name)
    if value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value}")
    return value


def _choice(name: str, allowed: tuple[str, ...]) -> str:
    value = setting(name).strip().lower()
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _optional_count(name: str) -> int | None:
    """A non-negative integer, or None when unset (the caller's default applies)."""
    if not setting(name).strip():
        return None
    return _non_negative(name)


class ConfigError(ValueError):
    """A setting has a value the service cannot use."""


def _resolve_path(raw: str) -> Path:
    path = Path(raw)
    return path if path.is_absolute() else ROOT / path


def _resolve_db_url(raw: str) -> str:
    if raw.startswith("sqlite:///"):
        path = raw[len("sqlite:///") :]
        if path in ("", ":memory:"):
            raise ConfigError("LEDGER_DATABASE_URL: in-memory SQLite cannot be shared; use a file")
        return "sqlite:///" + str(_resolve_path(path))
    if raw.startswith(("postgresql://", "postgres://")):
        return raw
    raise ConfigError(
        f"LEDGER_DATABASE_URL must start with sqlite:/// or postgresql://, got {raw.split(':')[0]!r}"
    )


def _attestation_files() -> dict[str, Path | None]:
    """The three attestation files, all set or none (a partial set would mix identities)."""
    names = ("LEDGER_ATTESTATION_CERT", "LEDGER_ATTESTATION_KEY", "LEDGER_ATTESTATION_CA")
    values = [setting(name) for name in names]
    if any(values) and not all(values):
        raise ConfigError(f"set all of {', '.join(names)} or none of them")
    fields = ("attestation_cert", "attestation_key", "attestation_ca")
    return {f: _resolve_path(v) if v else None for f, v in zip(fields, values, strict=True)}


def _contact_setting(name: str) -> str:
    """An email address or an http(s) URL: the legal notice links to it."""
    raw = setting(name).strip()
    if raw and not (raw.startswith(("https://", "http://")) or EMAIL.fullmatch(raw)):
        raise ConfigError(f"{name} must be an email address or an http(s) URL")
    return raw


def _optional_path(name: str) -> Path | None:
    raw = setting(name).strip()
    return _resolve_path(raw) if raw else None


def _url_setting(name: str) -> str:
    raw = setting(name).strip()
    if raw and not raw.startswith(("https://", "http://")):
        raise ConfigError(f"{name} must be an http(s) URL")
    return raw


@dataclass(frozen=True)
class Config:
    """Resolved settings for one process."""

    database_url: str
    keys_dir: Path
    master_key: str = field(repr=False)
    public_url: str
    log_origin: str
    trust_anchor: str
    max_level: int
    calendar: str
    max_batch: int
    max_body_bytes: int
    max_upload_bytes: int
    lookup_rate_limit: str
    upload_rate_limit: str
    ratelimit_storage: str
    runtime_dir: Path
    proxy_hops: int
    signing_threads: int
    db_timeouts: Timeouts = field(default_factory=Timeouts)
    idempotency_claim_ttl_s: int = 30
    serve_threads: int = 8
    token_cache_s: int = 2
    attestation_cert: Path | None = None
    attestation_key: Path | None = None
    attestation_ca: Path | None = None
    tsa_url: str = ""
    checkpoint_events: int = 1000
    checkpoint_seconds: int = 60
    checkpoint_max_age_s: int = 300
    witnesses: str = ""
    witness_quorum: int | None = None
    issuer_name: str = "Organisme certificateur (démonstration)"
    issuer_contact: str = ""
    issuer_logo: Path | None = None
    webhook_interval_s: int = 5
    webhook_allow_private: bool = False
    projections: str = "inline"
    projection_poll_ms: int = 100
    projection_batch: int = 2000
    read_max_wait_ms: int = 2000
    log_format: str = "json"
    metrics_access: str = "loopback"
    ready_max_lag_events: int = 10_000
    ready_max_lag_seconds: int = 30
    webhook_max_per_school: int = 5

    @classmethod
    def from_env(cls, **overrides: object) -> Config:
        values: dict[str, object] = {
            "database_url": _resolve_db_url(setting("LEDGER_DATABASE_URL")),
            "keys_dir": _resolve_path(setting("LEDGER_KEYS_DIR")),
            "master_key": os.environ.get("LEDGER_MASTER_KEY", ""),
            "public_url": setting("LEDGER_PUBLIC_URL").rstrip("/"),
            "log_origin": setting("LEDGER_LOG_ORIGIN"),
            "trust_anchor": setting("LEDGER_TRUST_ANCHOR"),
            "max_level": _int_setting("LEDGER_MAX_LEVEL"),
            "calendar": setting("LEDGER_CALENDAR"),
            "max_batch": _int_setting("LEDGER_MAX_BATCH"),
            "max_body_bytes": _int_setting("LEDGER_MAX_BODY_BYTES"),
            "max_upload_bytes": _int_setting("LEDGER_MAX_UPLOAD_BYTES"),
            "lookup_rate_limit": setting("LEDGER_LOOKUP_RATE_LIMIT"),
            "upload_rate_limit": setting("LEDGER_UPLOAD_RATE_LIMIT"),
            "ratelimit_storage": setting("LEDGER_RATELIMIT_STORAGE"),
            "runtime_dir": _resolve_path(setting("LEDGER_RUNTIME_DIR")),
            "proxy_hops": _int_setting("LEDGER_PROXY_HOPS"),
            "signing_threads": max(1, _int_setting("LEDGER_SIGNING_THREADS")),
            "serve_threads": _positive("LEDGER_THREADS"),
            "token_cache_s": _non_negative("LEDGER_TOKEN_CACHE_S"),
            "db_timeouts": Timeouts(
                connect_ms=_positive("LEDGER_DB_CONNECT_TIMEOUT_MS"),
                statement_ms=_positive("LEDGER_DB_STATEMENT_TIMEOUT_MS"),
                busy_ms=_positive("LEDGER_DB_BUSY_TIMEOUT_MS"),
            ),
            "idempotency_claim_ttl_s": _positive("LEDGER_IDEMPOTENCY_CLAIM_TTL_S"),
            **_attestation_files(),
            "tsa_url": _url_setting("LEDGER_TSA_URL"),
            "checkpoint_events": _positive("LEDGER_CHECKPOINT_EVENTS"),
            "checkpoint_seconds": _positive("LEDGER_CHECKPOINT_SECONDS"),
            "checkpoint_max_age_s": _positive("LEDGER_CHECKPOINT_MAX_AGE_SECONDS"),
            "witnesses": setting("LEDGER_WITNESSES"),
            "witness_quorum": _optional_count("LEDGER_WITNESS_QUORUM"),
            "issuer_name": setting("LEDGER_ISSUER_NAME").strip(),
            "issuer_contact": _contact_setting("LEDGER_ISSUER_CONTACT"),
            "issuer_logo": _optional_path("LEDGER_ISSUER_LOGO"),
            "webhook_interval_s": _non_negative("LEDGER_WEBHOOK_INTERVAL_S"),
            "webhook_allow_private": _flag("LEDGER_WEBHOOK_ALLOW_PRIVATE"),
            "projections": _choice("LEDGER_PROJECTIONS", PROJECTION_MODES),
            "projection_poll_ms": _positive("LEDGER_PROJECTION_POLL_MS"),
            "projection_batch": _positive("LEDGER_PROJECTION_BATCH"),
            "read_max_wait_ms": _non_negative("LEDGER_READ_MAX_WAIT_MS"),
            "log_format": _choice("LEDGER_LOG_FORMAT", LOG_FORMATS),
            "metrics_access": _choice("LEDGER_METRICS_ACCESS", METRICS_ACCESS),
            "ready_max_lag_events": _positive("LEDGER_READY_MAX_LAG_EVENTS"),
            "ready_max_lag_seconds": _positive("LEDGER_READY_MAX_LAG_SECONDS"),
            "webhook_max_per_school": _positive("LEDGER_WEBHOOK_MAX_PER_SCHOOL"),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def settings_table() -> str:
    """Markdown tables of every setting, the service's then the tests', for README."""
    return "\n\n".join(
        (
            _table(SETTINGS),
            "Read by the test suite only (never by the service):",
            _table(TEST_SETTINGS),
        )
    )


def _table(settings: dict[str, tuple[str, str]]) -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, (default, meaning) in settings.items():
        rows.append(
            f"| `{name}` | `{default}` | {meaning} |" if default else f"| `{name}` | | {meaning} |"
        )
    return "\n".join(rows)

"""`ledger audit watch` against a real `ledger serve`, on SQLite and PostgreSQL.

The monitor runs as its own process, as from cron, with its state in a directory.
Each attack is made on the database the way an operator could: edit a new event,
re-sign the tail with the log's own key (so every signature still verifies),
restore an older copy of the database.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest

from ledger import crypto, envelope
from ledger.audit import log_client
from ledger.audit.checkpoint import Checkpoint, parse_checkpoint, parse_note, sign_checkpoint
from ledger.audit.cosignature import cosign, witness_vkey
from ledger.audit.log_client import LogClient, LogClientError
from ledger.config import Config
from ledger.domain import clock
from ledger.store.application import Ledger
from ledger.store.checkpoints import CheckpointStore, Cosignature
from ledger.store.mapper import LedgerStoredEvent
from ledger.store.tokens import TokenStore
from tests.served import serve
from tests.witness_process import witness_process

CHECKPOINT_ENV = {"LEDGER_CHECKPOINT_EVENTS": "1", "LEDGER_CHECKPOINT_SECONDS": "1"}


class Log:
    """A ledger on one backend, served on demand, and a monitor following it."""

    def __init__(self, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        self.url, self.tmp = database_url, tmp_path
        monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
        monkeypatch.setenv("LEDGER_KEYS_DIR", str(tmp_path / "keys"))
        self.ledger = Ledger(Config.from_env())
        self.ledger.init()
        self.anchor = self.ledger.trust_anchor().to_string()
        _, self.token = TokenStore(self.ledger.db).create(["audit:read"], "monitor")
        self.state = tmp_path / "monitor"
        self.base = ""

    def append(self, count: int = 300) -> int:
        """`count` more events, signed by the log in one transaction; the new head."""
        now = clock.format_time(clock.now())
        stream = f"notes-{uuid.uuid4()}"
        events = [
            LedgerStoredEvent(
                originator_id=stream,
                originator_version=version,
                topic="test.Noted",
                state=crypto.canonical_json({"n": version}),
                time=now,
                event_id=str(uuid.uuid4()),
            )
            for version in range(1, count + 1)
        ]
        self.ledger.recorder.insert_events(events)
        return self.head()

    def head(self) -> int:
        return self.ledger.recorder.max_notification_id()

    @contextmanager
    def served(self, env: dict[str, str] | None = None) -> Iterator[str]:
        settings = {**CHECKPOINT_ENV, **(env or {})}
        with serve(self.url, self.tmp / "keys", env=settings) as (base, _):
            self.base = base
            _wait_for_checkpoint(base, self.head())  # head read once the server is up
            yield base

    def watch(self, *extra: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "ledger.cli", "audit", "watch", self.base]
        command += ["--state", str(self.state), "--trust-anchor", self.anchor, *extra]
        env = {"PATH": "/usr/bin:/bin", "LEDGER_MONITOR_TOKEN": self.token}
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    def sql(self, statement: str, params: tuple = ()) -> None:
        with self.ledger.db.write() as cur:
            cur.execute(statement, params)


def _wait_for_checkpoint(base: str, size: int, timeout: float = 20, cosigned: bool = False) -> None:
    """Until the log's checkpoint covers `size` events (a checkpointer may lag a moment),
    and carries a cosignature if `cosigned`."""
    deadline = time.monotonic() + timeout
    while True:
        for path in ("/tlog/checkpoint", "/api/v1/log/checkpoint"):
            try:
                with urllib.request.urlopen(base + path, timeout=5) as response:
                    note = response.read().decode()
                signatures = parse_checkpoint(note)[1]
                if parse_checkpoint(note)[0].size >= size and len(signatures) > int(cosigned):
                    return
            except OSError:
                continue
        assert time.monotonic() < deadline, f"no checkpoint of size {size} on {base}"
        time.sleep(0.2)


@pytest.fixture
def log(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Log]:
    instance = Log(database_url, tmp_path, monkeypatch)
    yield instance
    instance.ledger.close()


def _ok(result: subprocess.CompletedProcess, size: int, added: int) -> None:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # cron mails nothing but the summary
    assert result.stdout.startswith("OK: ") and result.stdout.count("\n") == 1
    assert f"size {size} (+{added} events verified)" in result.stdout


def _alarm(result: subprocess.CompletedProcess, kind: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith(f"ALARM: {kind}: "), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    return result.stderr


def test_first_run_resume_and_a_bad_event(log: Log) -> None:
    log.append()
    with log.served():
        first = log.head()  # a starting server may log a fact of its own
        _ok(log.watch(), first, first)
        _ok(log.watch(), first, 0)
        second = log.append()
        _wait_for_checkpoint(log.base, second)
        _ok(log.watch(), second, second - first)
        third = log.append()
        log.sql("UPDATE ledger_events SET data = ? WHERE seq = ?", ('{"n":0}', second + 5))
        _wait_for_checkpoint(log.base, third)
        assert f"seq {second + 5}: hash does not match" in _alarm(log.watch(), "bad event")
        _alarm(log.watch(), "bad event")  # the state did not move: every run says it again
        other = log.ledger.recorder.envelope(second + 4).sig  # well formed, not this event's
        log.sql("UPDATE ledger_events SET sig = ? WHERE seq = ?", (other, second + 3))
        message = _alarm(log.watch(), "bad event")  # the first bad event in seq order
        assert f"seq {second + 3}: signature does not verify" in message
    assert "ALARM: bad event" in (log.state / "alarms.log").read_text()


def test_a_tail_re_signed_with_the_logs_own_key_is_a_rewrite(log: Log) -> None:
    log.append()
    with log.served():
        size = log.head()
        _ok(log.watch(), size, size)
        _resign_tail(log, size - 10, '{"n":0}')  # every signature still verifies
        message = _alarm(log.watch(), "rewrite")
        assert f"event {size} changed since it was seen" in message
        log.append()  # a longer history changes nothing
        _alarm(log.watch(), "rewrite")


def test_restoring_an_older_copy_of_the_database_is_a_rollback(log: Log) -> None:
    with log.served():  # whatever a starting server logs is in the older copy already
        size = log.append()
    snapshot = _snapshot(log)
    with log.served():
        grown = log.append()
        _wait_for_checkpoint(log.base, grown)
        _ok(log.watch(), grown, grown)
    _restore(log, snapshot)
    assert log.head() == size
    with log.served():
        message = _alarm(log.watch(), "rollback")
    assert f"has {size} events, fewer than the {grown}" in message


def test_a_missing_witness_quorum_is_waited_for_and_usage_errors_exit_2(log: Log) -> None:
    log.append()
    witness = str(witness_vkey("witness.example", crypto.SigningKey.generate()))
    with log.served():
        result = log.watch("--witness", witness)  # no checkpoint is cosigned yet: not an alarm
        assert result.returncode == 0 and result.stderr == "", result.stderr
        assert "waiting for witnesses: no checkpoint after size 0 carries" in result.stdout
        bad = log.watch("--witness", "not-a-key")
        assert bad.returncode == 2 and bad.stderr.startswith("error: ")
    down = log.watch()  # nothing listens any more
    assert down.returncode == 2 and down.stderr.startswith("error: cannot reach")


def _cosign_stored(log: Log, size: int, name: str, key: crypto.SigningKey) -> None:
    """Store `name`'s cosignature on the stored checkpoint of `size`, as a witness would."""
    store = CheckpointStore(log.ledger.db)
    stored = store.get(size)
    assert stored is not None
    line = cosign(parse_note(stored.note)[2], name, key, int(time.time()))
    store.add_cosignatures(size, [Cosignature(name, line, int(time.time()))])


def test_a_lagging_witness_is_waited_for_and_the_newest_cosigned_checkpoint_followed(
    log: Log,
) -> None:
    """The log serves its newest checkpoint before the witness (down here) cosigns it."""
    key = crypto.SigningKey.generate()
    vkey = str(witness_vkey("witness.example", key))
    env = {"LEDGER_WITNESSES": f"{vkey} http://127.0.0.1:9"}  # nothing listens there
    first = log.append()
    with log.served(env):
        first = log.head()
        _cosign_stored(log, first, "witness.example", key)
        result = log.watch("--witness", vkey)
        _ok(result, first, first)
        assert "cosigned by witness.example" in result.stdout
        second = log.append()
        _wait_for_checkpoint(log.base, second)
        waiting = log.watch("--witness", vkey)
        assert waiting.returncode == 0 and waiting.stderr == "", waiting.stderr
        assert f"no checkpoint after size {first} carries the witness quorum yet" in waiting.stdout
        assert f"latest is of size {second}" in waiting.stdout
        _cosign_stored(log, second, "witness.example", key)  # the witness catches up
        _ok(log.watch("--witness", vkey), second, second - first)


def test_a_forged_cosignature_is_an_alarm_even_with_a_quorum_of_0(log: Log) -> None:
    """A cosignature line under a configured witness's key that does not verify is forgery."""
    key = crypto.SigningKey.generate()
    vkey = str(witness_vkey("witness.example", key))
    log.append()
    with log.served() as base:
        note = CheckpointStore(log.ledger.db).latest().note
        forged = note + cosign(b"another checkpoint\n", "witness.example", key, 1)
        with _showing(base, forged) as proxy:
            log.base = proxy
            message = _alarm(log.watch("--witness", vkey, "--quorum", "0"), "witness cosignature")
    assert "cosignature of witness.example does not verify" in message
    assert [p.read_text() for p in _evidence(log, "witness-cosignature")] == [forged]


def _evidence(log: Log, kind: str) -> list[Path]:
    return sorted(log.state.glob(f"evidence-*-{kind}-*.txt"))


def test_a_superseded_forked_checkpoint_in_the_listing_is_a_split_view(log: Log) -> None:
    """Between two runs the log signed a checkpoint of another history (shown to a victim),
    then a good one: the monitor checks every listed checkpoint, not only the latest."""
    log.append()
    with log.served() as base:
        first = log.head()
        _ok(log.watch(), first, first)
        forked_size = log.append()
        _wait_for_checkpoint(base, forked_size)
        latest = log.append()
        _wait_for_checkpoint(base, latest)
        origin = log.anchor.split("+")[0]
        forked = Checkpoint(origin, forked_size, crypto.sha256(b"another history"))
        forked_note = sign_checkpoint(forked, log.ledger.signing_key())
        with _showing(base, None, {forked_size: forked_note}) as proxy:
            log.base = proxy
            message = _alarm(log.watch(), "split view")
    assert f"root for size {forked_size} is not the root of the events" in message
    kept = [p.read_text() for p in _evidence(log, "split-view")]
    assert kept[0] == forked_note and kept[1].startswith(origin)  # and the state's checkpoint


# --- attacks ---------------------------------------------------------------------


def _resign_tail(log: Log, first: int, data_json: str) -> None:
    """Change event `first`, then re-hash, re-link and re-sign every later one with the log's key."""
    key = log.ledger.signing_key()
    recorder = log.ledger.recorder
    prev = recorder.envelope(first - 1).hash
    for env in recorder.envelopes(after=first - 1, limit=100_000):
        data = data_json if env.seq == first else env.data_json
        row = (env.seq, env.id, env.stream, env.version, env.type, env.time, data, prev)
        digest = crypto.sha256(envelope.hashed_bytes(*row))
        prev = digest.hex()
        log.sql(
            "UPDATE ledger_events SET data = ?, prev = ?, hash = ?, sig = ? WHERE seq = ?",
            (data, row[-1], prev, crypto.b64url(key.sign(digest)), env.seq),
        )


def _snapshot(log: Log) -> object:
    """A copy of the whole database as it stands (SQLite backup; PostgreSQL: every table)."""
    if log.url.startswith("sqlite:"):
        copy = log.tmp / "snapshot.db"
        _sqlite_copy(Path(log.url.removeprefix("sqlite:///")), copy)
        return copy
    tables = _pg_tables(log)
    with psycopg.connect(log.url, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"CREATE TABLE snap_{table} AS SELECT * FROM {table}")
    return tables


def _restore(log: Log, snapshot: object) -> None:
    if isinstance(snapshot, Path):
        _sqlite_copy(snapshot, Path(log.url.removeprefix("sqlite:///")))
        return
    with psycopg.connect(log.url, autocommit=True) as conn:
        for table in snapshot:  # type: ignore[attr-defined]
            conn.execute(f"DELETE FROM {table}")
            conn.execute(f"INSERT INTO {table} SELECT * FROM snap_{table}")


def _sqlite_copy(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _pg_tables(log: Log) -> list[str]:
    with psycopg.connect(log.url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        ).fetchall()
    return [row[0] for row in rows]


def test_a_checkpoint_the_events_do_not_add_up_to_is_a_split_view(log: Log) -> None:
    """The operator signs, for this monitor only, a checkpoint of another history."""
    log.append()
    with log.served() as base:
        size = log.head()
        _ok(log.watch(), size, size)
        grown = log.append()
        forked = Checkpoint(log.anchor.split("+")[0], grown, crypto.sha256(b"another history"))
        with _showing(base, sign_checkpoint(forked, log.ledger.signing_key())) as proxy:
            log.base = proxy
            message = _alarm(log.watch(), "split view")
    assert f"root for size {grown} is not the root of the events" in message


@contextmanager
def _showing(
    upstream: str, note: str | None, listed: dict[int, str] | None = None
) -> Iterator[str]:
    """An HTTP front for `upstream` that answers checkpoint requests with `note` (if given)
    and lists the notes in `listed` instead of the stored ones of the same size."""

    class Front(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if note is not None and self.path.endswith("/checkpoint"):
                status, body = 200, note.encode()
            else:
                status, body = self._upstream()
            if listed and self.path.startswith("/api/v1/log/checkpoints"):
                body = _replaced(body, listed)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _upstream(self) -> tuple[int, bytes]:
            request = urllib.request.Request(upstream + self.path)
            request.add_header("Authorization", self.headers.get("Authorization", ""))
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()

        def log_message(self, *args: object) -> None:
            pass

    with _server(Front) as url:
        yield url


def _replaced(body: bytes, listed: dict[int, str]) -> bytes:
    page = json.loads(body)
    for entry in page["checkpoints"]:
        entry["note"] = listed.get(entry["size"], entry["note"])
    return json.dumps(page).encode()


@contextmanager
def _server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_monitor_requires_a_real_witness_and_flags_a_history_rewritten_behind_it(
    log: Log,
) -> None:
    """The served log pushes its checkpoints to a witness process; the monitor wants its
    cosignature. Then the operator rewrites the history, rebuilds the tree and forgets
    every checkpoint: the witness refuses to cosign, the monitor raises the alarm."""
    log.append()
    with witness_process([log.anchor]) as (witness, vkey, _):
        env = {"LEDGER_WITNESSES": f"{vkey} {witness}"}
        with log.served(env) as base:
            size = log.head()
            _wait_for_checkpoint(base, size, cosigned=True)
            result = log.watch("--witness", vkey)
            _ok(result, size, size)
            assert "cosigned by witness.test/w1" in result.stdout
        _resign_tail(log, size - 10, '{"n":0}')
        log.sql("DELETE FROM tlog_tiles")
        log.sql("DELETE FROM tlog_checkpoints")
        log.sql("DELETE FROM tlog_cosignatures")
        with log.served(env) as base:
            log.append()
            _wait_for_checkpoint(base, log.head())
            _alarm(log.watch("--witness", vkey), "rewrite")


# --- a hostile log's answers -------------------------------------------------------


def _answering(lines: Iterator[bytes], delay: float = 0.0) -> type[BaseHTTPRequestHandler]:
    """A handler that answers every GET 200 with `lines`, each after `delay` seconds."""

    class Hostile(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            try:
                for line in lines:
                    time.sleep(delay)
                    self.wfile.write(line)
                    self.wfile.flush()
            except OSError:
                pass  # the client went away, as it should

        def log_message(self, *args: object) -> None:
            pass

    return Hostile


def _endless(line: bytes) -> Iterator[bytes]:
    while True:
        yield line


def test_a_deeply_nested_line_is_a_client_error_not_a_traceback() -> None:
    deep = b"[" * 200_000 + b"\n"
    with _server(_answering(iter([deep]))) as base:
        with pytest.raises(LogClientError, match="nests too deeply"):
            LogClient(base, "token").events(0)
        with pytest.raises(LogClientError, match="did not answer JSON"):
            list(LogClient(base, "token").checkpoints(0))


def test_a_page_is_read_only_up_to_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading stops after `limit` lines, and a line beyond `limit` events' size is refused,
    however much the log would send."""
    monkeypatch.setattr(log_client, "MAX_EVENT_BYTES", 1000)
    event = json.dumps({"seq": 1, "pad": "x" * 400}).encode() + b"\n"
    with _server(_answering(_endless(event))) as base:
        assert len(LogClient(base, "token").events(0, 2)) == 2
    huge = b'{"pad": "' + b"x" * 5000
    with (
        _server(_answering(_endless(huge))) as base,
        pytest.raises(LogClientError, match="answered more than 2000 bytes"),
    ):
        LogClient(base, "token").events(0, 2)


def test_a_log_dripping_its_answer_is_cut_at_the_runs_deadline(log: Log) -> None:
    """Every byte comes within the per-read timeout, but the run as a whole ends on time."""
    with _server(_answering(_endless(b"x"), delay=0.1)) as base:
        log.base = base
        started = time.monotonic()
        result = log.watch("--timeout", "2")
        took = time.monotonic() - started
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "did not answer within the run's 2 s" in result.stderr
    assert took < 10

"""`ledger projections run`: the read models' only writer, in its own process.

It follows appends made by several writer processes and ends with the read
models a full rebuild gives; a kill -9 in the middle of a batch loses
nothing (the batch rolls back with its position); it wakes on PostgreSQL's
NOTIFY long before its poll interval; and it catches up after a restart. A
served app in runner mode answers a read right after a write, and answers
503 with Retry-After once the runner stops and the wait bound passes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledger.config import Config
from ledger.domain.candidate import Answer
from ledger.domain.referential import load_referential
from ledger.projections import all_projections
from ledger.projections.lag import projection_lag
from ledger.projections.runner import catch_up, create_tables, dump, head, position, rebuild
from ledger.services.candidates import CandidateService
from ledger.store.application import Ledger
from ledger.store.tokens import TokenStore
from tests.conftest import initialized, make_token
from tests.helpers import IDENTITY, answer, climb, register
from tests.served import serve

WRITERS = 3


def _runner_env(config: Config, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        LEDGER_DATABASE_URL=config.database_url,
        LEDGER_KEYS_DIR=str(config.keys_dir),
        LEDGER_RUNTIME_DIR=str(config.runtime_dir),
        LEDGER_PROJECTIONS="runner",
        LEDGER_PROJECTION_POLL_MS="100",
    )
    return {**env, **extra}


def _start_runner(config: Config, *args: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "projections", "run", *args],
        env=_runner_env(config, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@contextmanager
def _runner(config: Config, *args: str, **extra: str) -> Iterator[subprocess.Popen]:
    process = _start_runner(config, *args, **extra)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)


def _run_once(config: Config, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "projections", "run", "--once", *args],
        env=_runner_env(config), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _projections(config: Config) -> list[Any]:
    return all_projections(config, load_referential())


def _wait_caught_up(ledger: Ledger, config: Config, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (lag := projection_lag(ledger.db, _projections(config)))["events"]:
        assert time.monotonic() < deadline, f"runner still behind: {lag}"
        time.sleep(0.05)


def _same_as_rebuild(ledger: Ledger, config: Config) -> None:
    """The read models the runner left equal those a full replay of the log builds."""
    projections = _projections(config)
    live = dump(ledger.db, projections)
    assert any(live.values())
    rebuild(ledger.db, projections)
    assert dump(ledger.db, projections) == live


def _answers(candidate: str, count: int) -> list[tuple[str, Answer]]:
    """`count` answers of one candidate, climbing competences in turn."""
    bodies = [a for code in ("1.1", "1.2", "2.1", "3.1") for a in climb(candidate, code, 3)]
    bodies += [answer(candidate, "1.1", result="ko") for _ in range(max(0, count - len(bodies)))]
    return [
        (candidate, Answer(**{k: v for k, v in b.items() if k != "candidate"}))
        for b in bodies[:count]
    ]


def _write(config: Config, candidates: int, answers_each: int) -> list[str]:
    """Register candidates and record their answers, one small request at a time."""
    ledger = Ledger(config)
    service = CandidateService(ledger, load_referential())
    ids = []
    try:
        for _ in range(candidates):
            candidate, _seq = service.register(dict(IDENTITY), "adult")
            ids.append(str(candidate.id))
            for one in _answers(str(candidate.id), answers_each):
                service.record_answers([one])
    finally:
        ledger.close()
    return ids


def _writer_process(config: Config, candidates: int, answers_each: int) -> None:
    _write(config, candidates, answers_each)


def test_the_runner_follows_several_writer_processes(ledger: Ledger, config: Config) -> None:
    ctx = multiprocessing.get_context("spawn")
    with _runner(config, "--batch", "25") as runner, _runner(config, "--batch", "7") as second:
        writers = [
            ctx.Process(target=_writer_process, args=(config, 4, 12)) for _ in range(WRITERS)
        ]
        for w in writers:
            w.start()
        for w in writers:
            w.join(timeout=300)
        assert [w.exitcode for w in writers] == [0] * WRITERS
        _wait_caught_up(ledger, config)
        assert runner.poll() is None and second.poll() is None  # both still following
    assert runner.returncode == second.returncode == 0  # SIGTERM: a clean stop
    assert head(ledger.db) >= WRITERS * 4 * 13
    _same_as_rebuild(ledger, config)


def test_the_runner_catches_up_after_a_restart(ledger: Ledger, config: Config) -> None:
    _write(config, 2, 3)
    with _runner(config):
        _wait_caught_up(ledger, config)
    stopped_at = head(ledger.db)
    _write(config, 3, 5)  # appended while no runner runs
    assert projection_lag(ledger.db, _projections(config))["events"] == head(ledger.db) - stopped_at
    with _runner(config):
        _wait_caught_up(ledger, config)
    _same_as_rebuild(ledger, config)


def test_once_applies_up_to_the_head_and_says_where(ledger: Ledger, config: Config) -> None:
    _write(config, 2, 4)
    out = _run_once(config, "--batch", "3")
    assert out.strip() == f"read models at seq {head(ledger.db)}"
    assert projection_lag(ledger.db, _projections(config))["events"] == 0


def _blocked_backends(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]


def test_a_kill_9_mid_batch_converges_to_a_rebuild(pg_schema: str, tmp_path: Path) -> None:
    config = Config.from_env(database_url=pg_schema, keys_dir=tmp_path / "keys", master_key="")
    ledger = Ledger(config)
    ledger.init()
    ids = _write(config, 6, 2)
    _run_once(config)
    before = {p.name: position(ledger.db, p.name) for p in _projections(config)}
    for candidate in ids:
        for one in _answers(candidate, 10)[2:]:
            CandidateService(ledger, load_referential()).record_answers([one])
    # Hold the last candidate's row: the runner's one big batch applies the events
    # before it, then blocks inside its transaction on that candidate's answer.
    with psycopg.connect(pg_schema, autocommit=False) as holder:
        holder.execute("SELECT * FROM proj_candidates WHERE candidate = %s FOR UPDATE", (ids[-1],))
        runner = _start_runner(config, "--batch", "100000")
        deadline = time.monotonic() + 60
        while _blocked_backends(pg_schema) == 0:
            assert time.monotonic() < deadline and runner.poll() is None
            time.sleep(0.05)
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
        holder.rollback()
    after = {p.name: position(ledger.db, p.name) for p in _projections(config)}
    assert after["profiles"] == before["profiles"]  # the killed batch left nothing
    _run_once(config)
    assert projection_lag(ledger.db, _projections(config))["events"] == 0
    _same_as_rebuild(ledger, config)
    ledger.close()


def test_a_notify_wakes_the_runner_long_before_its_poll(pg_schema: str, tmp_path: Path) -> None:
    config = Config.from_env(database_url=pg_schema, keys_dir=tmp_path / "keys", master_key="")
    ledger = Ledger(config)
    ledger.init()
    create_tables(ledger.db, _projections(config))
    with _runner(config, LEDGER_PROJECTION_POLL_MS="30000"):
        _wait_caught_up(ledger, config, timeout=60)
        time.sleep(1)  # the runner is asleep in its 30 s wait now
        seq = _write(config, 1, 0) and head(ledger.db)
        woken = time.monotonic()
        while projection_lag(ledger.db, _projections(config))["events"]:
            assert time.monotonic() - woken < 10, "not woken by NOTIFY (poll is 30 s)"
            time.sleep(0.01)
    assert position(ledger.db, "profiles") == seq
    ledger.close()


# --- a served app in runner mode ---------------------------------------------------


def _request(url: str, token: str, body: dict | None = None, **headers: str) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, (json.loads(error.read()), error.headers)


def _children(pid: int) -> list[int]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())  # each thread lists its own
        return [int(c) for task in tasks for c in (task / "children").read_text().split()]
    except FileNotFoundError:
        return []


def _runner_child(server: subprocess.Popen) -> int:
    """The pid of the projection runner `ledger serve` keeps (under its supervisor)."""
    pending = _children(server.pid)
    while pending:
        pid = pending.pop()
        try:
            if b"projections\x00run" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except FileNotFoundError:
            continue
        pending += _children(pid)
    raise AssertionError("ledger serve started no projection runner")


def _restarted(server: subprocess.Popen, killed: int, timeout: float = 30) -> int:
    """The runner `ledger serve` started in place of `killed`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = _runner_child(server)
            if found != killed and _state(found) != b"Z":
                return found
        except AssertionError:
            pass
        assert time.monotonic() < deadline, "ledger serve did not restart its runner"
        time.sleep(0.1)


def test_a_served_app_reads_its_writes_and_503s_when_the_runner_stops(
    database_url: str, tmp_path: Path
) -> None:
    config = Config.from_env(database_url=database_url, keys_dir=tmp_path / "keys", master_key="")
    ledger = Ledger(config)
    ledger.init()
    _, token = TokenStore(ledger.db).create(["events:append"], "runner test")
    env = {
        "LEDGER_PROJECTIONS": "runner",
        "LEDGER_PROJECTION_POLL_MS": "100",
        "LEDGER_READ_MAX_WAIT_MS": "3000",
    }
    with serve(database_url, tmp_path / "keys", env=env) as (base, server):
        _wait_caught_up(ledger, config, timeout=60)  # the runner is up
        body = {**IDENTITY, "external_id": "INE0123456789"}
        status, written = _request(f"{base}/api/v1/candidates", token, body)
        assert status == 201
        profile = f"{base}/api/v1/candidates/{written['id']}/profile"
        status, found = _request(profile, token, **{"X-Min-Seq": str(written["seq"])})
        assert status == 200 and found["answers"] == 0  # the write is visible at once
        runner = _runner_child(server)
        os.kill(runner, signal.SIGSTOP)
        try:
            status, answered = _request(
                f"{base}/api/v1/answers", token, answer(written["id"], answer_id="a-runner")
            )
            assert status in (200, 201), answered
            status, (problem, headers) = _request(profile, token)
            assert status == 503 and problem["type"] == "/problems/projections-behind"
            assert problem["required_seq"] == head(ledger.db) and headers["Retry-After"]
            status, ready = _request(f"{base}/api/v1/ready", token)
            ready = ready if status == 200 else ready[0]  # 503 only past the lag thresholds
            assert ready["projection_lag"]["events"] >= 1
        finally:
            os.kill(runner, signal.SIGCONT)
        status, found = _request(profile, token)
        assert status == 200 and found["answers"] == 1  # caught up once it runs again
        os.kill(runner, signal.SIGKILL)
        replaced = _restarted(server, runner)
        more = answer(written["id"], answer_id="a-after-kill")
        assert _request(f"{base}/api/v1/answers", token, more)[0] in (200, 201)
        _wait_caught_up(ledger, config, timeout=60)  # the new runner (still starting) applies it
        status, found = _request(profile, token)
        assert status == 200 and found["answers"] == 2
    assert _state(runner) == _state(replaced) == b"Z"  # stopped with the server
    ledger.close()


ORPHANING_PARENT = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-m", "ledger.cli", "projections", "run",
                          "--parent", str(os.getpid())])
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_runner_ends_when_the_server_that_started_it_is_killed(
    ledger: Ledger, config: Config
) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHANING_PARENT],
        env=_runner_env(config), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    runner = int(parent.stdout.readline())  # type: ignore[union-attr]
    _wait_caught_up(ledger, config, timeout=60)  # it runs
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while Path(f"/proc/{runner}").exists() and b"Z" not in _state(runner):
        assert time.monotonic() < deadline, "the orphaned runner kept running"
        time.sleep(0.1)


def _state(pid: int) -> bytes:
    """The process state letter (Z: exited, waiting to be reaped by init)."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[-1].split()[0]
    except FileNotFoundError:
        return b"Z"


# --- API workers in runner mode (no runner: the test applies, as the runner would) ---


@pytest.fixture
def runner_app(config: Config) -> Iterator[Any]:
    from ledger.api import create_app

    initialized(config)
    app = create_app(replace(config, projections="runner", read_max_wait_ms=200))
    yield app
    app.extensions["ledger"].ledger.close()


def test_a_worker_in_runner_mode_never_applies_and_waits_a_bounded_time(runner_app: Any) -> None:
    st = runner_app.extensions["ledger"]
    client = runner_app.test_client()
    token = make_token(runner_app, "events:append")
    written = register(client, token)
    profile = f"/api/v1/candidates/{written['id']}/profile"
    behind = client.get(profile, headers=token)
    assert behind.status_code == 503 and behind.headers["Retry-After"]
    problem = behind.get_json()
    assert problem["type"] == "/problems/projections-behind"
    assert problem["required_seq"] == written["seq"] > problem["applied_seq"]
    assert position(st.ledger.db, "profiles") < written["seq"]  # the worker applied nothing
    catch_up(st.ledger.db, st.projections)  # what the runner does
    assert client.get(profile, headers=token).get_json()["answers"] == 0
    recorded = client.post("/api/v1/answers", json=answer(written["id"]), headers=token)
    assert recorded.status_code in (200, 201)
    seen = {"X-Min-Seq": str(written["seq"])}  # a client that needs only its registration
    assert client.get(profile, headers={**token, **seen}).status_code == 200
    assert client.get(f"{profile}?min_seq={written['seq']}", headers=token).status_code == 200
    assert client.get(profile, headers=token).status_code == 503  # the head: not applied yet
    bad = client.get(profile, headers={**token, "X-Min-Seq": "-1"})
    assert bad.status_code == 400 and bad.get_json()["type"] == "/problems/malformed-request"


def test_ready_reports_the_lag_of_the_runner(runner_app: Any) -> None:
    st = runner_app.extensions["ledger"]
    client = runner_app.test_client()
    register(client, make_token(runner_app, "events:append"))
    lag = client.get("/api/v1/ready").get_json()["projection_lag"]
    assert lag["events"] >= 1 and lag["head"] == head(st.ledger.db)
    assert set(lag["positions"]) == {p.name for p in st.projections}
    catch_up(st.ledger.db, st.projections)
    lag = client.get("/api/v1/ready").get_json()["projection_lag"]
    assert lag["events"] == 0 and lag["seconds"] == 0.0


def test_a_runner_without_a_ledger_fails_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        LEDGER_DATABASE_URL=f"sqlite:///{tmp_path / 'none.db'}", LEDGER_RUNTIME_DIR=str(tmp_path)
    )
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "projections", "run"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1


def test_a_stop_request_ends_a_catch_up_between_pages(ledger: Ledger, config: Config) -> None:
    projections = _projections(config)
    create_tables(ledger.db, projections)  # (a first creation replays the log: before writing)
    _write(config, 2, 4)
    asked: list[bool] = []

    def stop() -> bool:  # true from the second question on: after the first page
        asked.append(True)
        return len(asked) > 1

    catch_up(ledger.db, projections, page=5, stop=stop)
    assert [position(ledger.db, p.name) for p in projections] == [5, 0, 0, 0]
    catch_up(ledger.db, projections, page=5)  # the next round goes on from there
    _same_as_rebuild(ledger, config)


def test_the_runner_logs_in_the_configured_format(ledger: Ledger, config: Config) -> None:
    """`LEDGER_LOG_FORMAT=json`: the runner's lines are JSON like the API's (one log pipeline)."""
    with _runner(config, "--parent", "1", LEDGER_LOG_FORMAT="json") as runner:  # not our parent
        output, _ = runner.communicate(timeout=60)
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]  # every one
    assert any("server that started this runner is gone" in line["message"] for line in lines)

"""One positioning answer per HTTP POST, next to a minimal Flask POST endpoint, in one run.

Starts `ledger serve` (gunicorn, gthread) and the minimal Flask app (bench/minimal_app.py)
under gunicorn with the same workers and threads, both on loopback. A second set of
processes (the load generator: `--clients` keep-alive `http.client` connections spread
over two processes) posts one answer per request to each in turn: many registered
candidates, each answering in turn, every answer with a fresh id, so every request
appends one signed event. Both servers get the same requests: the minimal endpoint
parses the JSON and answers 201. Rounds alternate, so drift of this shared machine hits
both sides alike; rates are per-round medians and the ratio is the median of each
round's ratio. Prints answers/s, p50/p99 latency, the ratio and the 30% target
(issue 13), and the load average.
Run: `python bench/http_answers.py [--database postgresql://…] [--workers 2] [--threads 8]
[--clients 16] [--seconds 3] [--rounds 5] [--candidates 1000]`; without `--database` a
temporary SQLite file is used, with it a throwaway schema.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from audit import scratch
from national_measures import scrape
from servers import ROOT, free_port, started

from ledger.config import Config
from ledger.domain.referential import load_referential
from ledger.services.candidates import CandidateService
from ledger.store.application import Ledger
from ledger.store.tokens import TokenStore

TARGET = 0.30
CLIENT_PROCESSES = 2


def prepare(config: Config, candidates: int) -> tuple[str, list[str], list[str]]:
    """An initialised ledger, a token that may append, registered candidates, challenge ids."""
    ledger = Ledger(config)
    try:
        ledger.init()
        ref = load_referential()
        _, token = TokenStore(ledger.db).create(["events:append"], "bench")
        service = CandidateService(ledger, ref)
        ids = [str(service.register({"first_name": "Inès"})[0].id) for _ in range(candidates)]
    finally:
        ledger.close()
    challenges = [c.id for c in ref.challenges]
    return token, ids, challenges


def serve(command: list[str], port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a server and wait until it answers on `port`."""
    return started(command, f"http://127.0.0.1:{port}/api/v1/health", env, log)


def answer_body(candidate: str, answer_id: str, challenge: str) -> bytes:
    return json.dumps(
        {
            "candidate": candidate,
            "answer_id": answer_id,
            "challenge": challenge,
            "result": "ok",
            "time_spent_ms": 12_000,
            "answered_at": "2026-11-02T09:15:00.000000Z",
        }
    ).encode()


def drive_thread(job: dict, index: int, out: list) -> None:
    """Post answers on one keep-alive connection until the deadline; record latencies."""
    conn = http.client.HTTPConnection("127.0.0.1", job["port"], timeout=30)
    mine = job["candidates"][index :: job["threads"]] or job["candidates"]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {job['token']}"}
    latencies, errors, n = [], 0, 0
    while time.time() < job["until"]:
        candidate = mine[n % len(mine)]
        body = answer_body(
            candidate, f"{job['tag']}-{index}-{n}", job["challenges"][n % len(job["challenges"])]
        )
        start = time.perf_counter()
        conn.request("POST", job["path"], body, headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - start)
        errors += response.status != 201
        n += 1
    conn.close()
    out.append((latencies, errors))


def drive_process(job: dict, pipe: Connection) -> None:
    """One client process: `threads` connections, results sent back through `pipe`."""
    out: list = []
    threads = [
        threading.Thread(target=drive_thread, args=(job, i, out)) for i in range(job["threads"])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pipe.send(([x for lat, _ in out for x in lat], sum(e for _, e in out)))


def load(job: dict, clients: int, seconds: float) -> tuple[float, list[float], int]:
    """(answers/s, latencies, error responses) of one round driven by the client processes."""
    per = [clients // CLIENT_PROCESSES + (i < clients % CLIENT_PROCESSES)
           for i in range(CLIENT_PROCESSES)]  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    procs, pipes = [], []
    until = time.time() + 1.0 + seconds  # the clients start together, after spawning
    for i, threads in enumerate(per):
        if not threads:
            continue
        parent, child = ctx.Pipe(duplex=False)
        cands = job["candidates"][i :: len(per)]
        proc = ctx.Process(
            target=drive_process,
            args=({**job, "threads": threads, "until": until, "candidates": cands,
                   "tag": f"{job['tag']}-{i}"}, child),
        )  # fmt: skip
        proc.start()
        procs.append(proc)
        pipes.append(parent)
    results = [p.recv() for p in pipes]
    for proc in procs:
        proc.join()
    latencies = [x for lat, _ in results for x in lat]
    return len(latencies) / seconds, latencies, sum(e for _, e in results)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="a PostgreSQL URL (a throwaway schema is used)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--candidates", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-http-"))
    with scratch(args.database) as url:
        env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_KEYS_DIR": str(work / "keys"),
               "LEDGER_RUNTIME_DIR": str(work / "run"), "LEDGER_THREADS": str(args.threads),
               "LEDGER_WORKERS": str(args.workers), "PYTHONPATH": str(ROOT)}  # fmt: skip
        os.environ.update(env)
        token, candidates, challenges = prepare(Config.from_env(), args.candidates)
        ledger_port, minimal_port = free_port(), free_port()
        gunicorn = ["--workers", str(args.workers), "--worker-class", "gthread",
                    "--threads", str(args.threads), "--log-level", "warning"]  # fmt: skip
        servers = [
            serve([sys.executable, "-m", "ledger.cli", "serve", "--port", str(ledger_port)],
                  ledger_port, env, work / "ledger.log"),
            serve([sys.executable, "-m", "gunicorn", "bench.minimal_app:app", "--bind",
                   f"127.0.0.1:{minimal_port}", *gunicorn], minimal_port, env, work / "min.log"),
        ]  # fmt: skip
        sides = {
            "minimal": {"port": minimal_port, "path": "/answers"},
            "ledger": {"port": ledger_port, "path": "/api/v1/answers"},
        }
        try:
            runs = measure(args, sides, token, candidates, challenges)
            appends = append_metrics(ledger_port)
        finally:
            for proc in servers:
                proc.terminate()
                proc.wait(timeout=15)
    return report(args, runs, appends)


def append_metrics(port: int) -> dict[str, float]:
    """The ledger's own counters over the run (every worker's): transactions, events, lock wait."""
    wanted = ("ledger_appends_total", "ledger_events_appended_total",
              "ledger_append_lock_wait_seconds_sum", "ledger_append_lock_wait_seconds_count")  # fmt: skip
    samples = scrape(f"http://127.0.0.1:{port}")
    return {
        name: value for (name, labels), value in samples.items() if name in wanted and not labels
    }


def measure(
    args: argparse.Namespace, sides: dict, token: str, candidates: list[str], challenges: list[str]
) -> dict[str, list[tuple[float, list[float], int]]]:
    """Warm up both sides, then alternate rounds; which side goes first alternates too."""
    base = {"token": token, "candidates": candidates, "challenges": challenges}
    runs: dict[str, list[tuple[float, list[float], int]]] = {name: [] for name in sides}
    for name, side in sides.items():
        load({**base, **side, "tag": f"warm-{name}"}, args.clients, 1.0)
    for r in range(args.rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            runs[name].append(
                load({**base, **sides[name], "tag": f"r{r}"}, args.clients, args.seconds)
            )
    return runs


def report(
    args: argparse.Namespace,
    runs: dict[str, list[tuple[float, list[float], int]]],
    appends: dict[str, float],
) -> int:
    db = "PostgreSQL" if args.database else "SQLite"
    print(
        f"{db}; gunicorn {args.workers} workers x {args.threads} threads (gthread); "
        f"{args.clients} keep-alive clients; {args.rounds} alternating rounds of "
        f"{args.seconds:g}s; load average {os.getloadavg()[0]:.2f}"
    )
    for name, rounds in runs.items():
        rates = [rate for rate, _, _ in rounds]
        latencies = [x for _, lat, _ in rounds for x in lat]
        errors = sum(e for _, _, e in rounds)
        print(
            f"  {name:<8} {statistics.median(rates):>8,.0f} answers/s  "
            f"p50 {percentile(latencies, 0.5) * 1000:6.1f} ms  "
            f"p99 {percentile(latencies, 0.99) * 1000:6.1f} ms  errors {errors}  "
            f"rounds: {', '.join(f'{v:,.0f}' for v in rates)}"
        )
    commits = appends.get("ledger_appends_total", 0)
    if commits:
        waits = appends.get("ledger_append_lock_wait_seconds_count") or 1
        print(
            f"  ledger commits: {appends.get('ledger_events_appended_total', 0) / commits:.1f} "
            f"events per transaction (group commit); mean append-lock wait "
            f"{appends.get('ledger_append_lock_wait_seconds_sum', 0) / waits * 1000:.1f} ms"
        )
    ratios = [lr[0] / mr[0] for lr, mr in zip(runs["ledger"], runs["minimal"], strict=True)]
    ratio = statistics.median(ratios)
    ok = ratio >= TARGET and not any(e for rounds in runs.values() for _, _, e in rounds)
    print(f"ledger / minimal: {ratio:.0%} (median of rounds; target >= {TARGET:.0%})")
    print("target met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

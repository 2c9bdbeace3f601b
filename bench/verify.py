"""Verify-site throughput under gunicorn, next to a minimal Flask endpoint, in one run.

Starts two gunicorn servers with the same settings (workers, threads) on local
ports: the ledger app on a small certified history (SQLite), and a minimal Flask
app. Loads each with `wrk` (Debian package) for the same duration and prints
requests/second of `/v/<code>`, of `GET /api/v1/certificates/<code>`, and of the
minimal endpoint, with ratios. Target: both at least 70% of the minimal endpoint.
Endpoints alternate over several short rounds and the medians are compared.
Run: `python bench/verify.py [--rounds 5] [--seconds 3] [--workers 2] [--threads 4]`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from servers import ROOT, free_port, started


def prepare(work: Path, env: dict[str, str]) -> str:
    """A small certified history; returns one certificate's code."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from ledger.config import Config\n"
        "from ledger.store.application import Ledger\n"
        "from ledger.demo import run_demo\n"
        "c = Config.from_env(); Ledger(c).init()\n"
        "print(run_demo(c, candidates=40, echo=lambda *_: None)['sample_codes'][0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


def serve(app: str, port: int, env: dict[str, str], workers: int, threads: int) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads),
        "--log-level", "warning",
    ]  # fmt: skip
    return started(command, f"http://127.0.0.1:{port}/", env, seconds=30)


def rps(url: str, seconds: int, connections: int) -> float:
    urllib.request.urlopen(url, timeout=5).read()  # warm caches
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} error responses")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--connections", type=int, default=0,
        help="wrk connections (default: workers x threads; gthread parks any more keep-alive "
        "connections until a thread frees, which measures the parking, not the app)",
    )  # fmt: skip
    args = parser.parse_args()
    args.connections = args.connections or args.workers * args.threads
    if not shutil.which("wrk"):
        raise SystemExit("error: wrk is needed (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-verify-"))
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": f"sqlite:///{work}/ledger.db",
        "LEDGER_KEYS_DIR": str(work / "keys"),
        "LEDGER_LOOKUP_RATE_LIMIT": "100000000/minute",
        "LEDGER_PROJECTIONS": "inline",  # `gunicorn wsgi:app` alone runs no projection runner
        "PYTHONPATH": str(ROOT),
    }
    code = prepare(work, env)
    ledger_port, minimal_port = free_port(), free_port()
    servers = [
        serve("wsgi:app", ledger_port, env, args.workers, args.threads),
        serve("bench.minimal_app:app", minimal_port, env, args.workers, args.threads),
    ]
    base = f"http://127.0.0.1:{ledger_port}"
    urls = {
        "ceiling": f"http://127.0.0.1:{minimal_port}/ping",
        "page": f"{base}/v/{code}",
        "lookup": f"{base}/api/v1/certificates/{code}",
    }
    runs: dict[str, list[float]] = {name: [] for name in urls}
    try:
        for url in urls.values():  # warm up: every worker loads its caches and read models
            rps(url, 2, args.connections)
        for _ in range(args.rounds):  # alternate, so the machine's drift hits all three alike
            for name, url in urls.items():
                runs[name].append(rps(url, args.seconds, args.connections))
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=10)
    ceiling, page, lookup = (statistics.median(runs[n]) for n in ("ceiling", "page", "lookup"))
    for name, values in runs.items():
        print(f"  {name:<8} rounds: {', '.join(f'{v:,.0f}' for v in values)} req/s")
    print(
        f"gunicorn: {args.workers} workers x {args.threads} threads; wrk -c {args.connections}, "
        f"{args.rounds} alternating rounds of {args.seconds}s per endpoint; medians"
    )
    print(f"{'minimal Flask endpoint (ceiling)':<40} {ceiling:>9,.0f} req/s")
    print(
        f"{'/v/<code> (certificate page)':<40} {page:>9,.0f} req/s  {page / ceiling:.0%} of ceiling"
    )
    print(
        f"{'GET /api/v1/certificates/<code>':<40} {lookup:>9,.0f} req/s  {lookup / ceiling:.0%} of ceiling"
    )
    ok = min(page, lookup) >= 0.7 * ceiling
    print("target met (>= 70%)" if ok else "TARGET MISSED (< 70%)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The national peak over HTTP on loopback: sustained answers/s at p99 < 200 ms, in one run.

Sets up a fresh ledger (bench/national_setup.py, not timed: published certificates
to look up, candidates positioned, enrolled in today's sessions, their courses
started), starts `ledger serve --workers N` on it (which starts the projection runner
beside the workers), then drives the open-loop mix of bench/national_load.py
(certification answers one per POST from many concurrent courses, positioning
batches, verify lookups) at increasing rates, each step `--seconds` long. For each
step: answers/s achieved, p50/p95/p99 latency per kind, errors, projection lag (from
/metrics), CPU in cores of the ledger's processes, the PostgreSQL backends serving it
and the load generator (from /proc), and the load average. A step is sustained when
95% of the answers it offers are recorded, with every p99 under 200 ms and no error; the run stops
after the first step that is not, or when `--budget` seconds are spent. Where the
time goes: the server's own histograms per route and the append-lock wait, and with
`--profile` py-spy's samples of the ledger's processes by package (bench/national_profile.py).
Run: `python bench/national.py [--database postgresql://…] [--workers 2]
[--seconds 20] [--start 250] [--step 250] [--max-rate 2000] [--budget 300]
[--generators 1] [--profile]`;
without `--database` a temporary SQLite file, with it a throwaway schema.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import national_profile as profile
from audit import scratch
from national_load import BATCH, CERT_SHARE
from national_measures import APP, cores, cpu, lag, percentile, scrape, time_spent
from national_setup import build
from servers import ROOT, free_port, started

from ledger.config import Config, setting
from ledger.store.application import Ledger

TARGET = 2_000
P99_MS = 200.0
ACHIEVED = 0.95


# --- set-up ------------------------------------------------------------------------


def environment(url: str, work: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "LEDGER_DATABASE_URL": url,
        "LEDGER_KEYS_DIR": str(work / "keys"),
        "LEDGER_RUNTIME_DIR": str(work / "run"),
        "LEDGER_PORT": str(port),
        "LEDGER_LOOKUP_RATE_LIMIT": "100000000/minute",
        "PYTHONPATH": str(ROOT),
    }


def prepare(env: dict[str, str], courses: int, plan_file: Path) -> dict[str, Any]:
    """Init the ledger and build the plan in this process, its logs silenced."""
    os.environ.update(env)
    logging.disable(logging.WARNING)
    config = Config.from_env()
    ledger = Ledger(config)
    ledger.init()
    ledger.close()
    plan = build(config, courses=courses, positioned=max(20, courses // 10), demo_candidates=12)
    logging.disable(logging.NOTSET)
    plan_file.write_text(json.dumps(plan), encoding="utf-8")
    return plan


def serve(env: dict[str, str], workers: int, log: Path) -> subprocess.Popen:
    """`ledger serve --workers N`, up when /api/v1/health answers."""
    command = [sys.executable, "-m", "ledger.cli", "serve", "--workers", str(workers)]
    log.unlink(missing_ok=True)
    return started(command, f"{base(env)}/api/v1/health", env, log)


def base(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['LEDGER_PORT']}"


# --- the run ---------------------------------------------------------------------------


def run_step(ctx: dict[str, Any], rate: float, seconds: float) -> dict[str, Any]:
    """One step of the load and what the server and the machine did meanwhile."""
    before_cpu, before = cpu(ctx), scrape(ctx["url"])
    spy = (
        None
        if not ctx["profile"]
        else profile.start(ctx["server"].pid, seconds, ctx["work"] / f"spy-{rate:g}.txt")
    )
    for load in ctx["loads"]:
        load.stdin.write(f"{rate / len(ctx['loads'])} {seconds}\n")
        load.stdin.flush()
    result = merged([json.loads(load.stdout.readline()) for load in ctx["loads"]], rate)
    after_cpu, after = cpu(ctx), scrape(ctx["url"])
    result["cores"] = cores(before_cpu, after_cpu, result["elapsed"], 0)
    result["waiting"] = cores(before_cpu, after_cpu, result["elapsed"], 1)
    result["lag"] = lag(after)
    result["spent"] = time_spent(before, after)
    result["loadavg"] = os.getloadavg()[0]
    if spy is not None:
        spy.wait(timeout=60)
        result["profile"] = profile.shares(ctx["work"] / f"spy-{rate:g}.txt")
    answered = sum(result["answers"].values())
    result["answers_per_s"] = answered / result["seconds"]
    result["p99"] = max(percentile(v, 0.99) for v in result["latencies"].values())
    result["sustained"] = (
        answered >= ACHIEVED * result["offered"] and result["p99"] < P99_MS and not result["errors"]
    )
    return result


def merged(parts: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    """One step's result from every generator's share of it."""
    out: dict[str, Any] = {"rate": rate, "seconds": parts[0]["seconds"], "latencies": {},
                           "errors": {}, "answers": {}}  # fmt: skip
    for part in parts:
        for field in ("latencies", "errors", "answers"):
            for key, value in part[field].items():
                out[field][key] = out[field].get(key, 0 * value) + value
    out["offered"] = sum(p["offered"] for p in parts)
    out["elapsed"] = max(p["elapsed"] for p in parts)
    out["late_ms"] = max(p["late_ms"] for p in parts)
    return out


def show(result: dict[str, Any]) -> None:
    """One step's lines."""
    cores = result["cores"]
    print(
        f"step {result['rate']:>6,.0f} answers/s: achieved {result['answers_per_s']:>7,.1f}"
        f"  {'sustained' if result['sustained'] else 'NOT sustained'}"
        f"  | cores: ledger {cores['ledger']:.2f}, PostgreSQL {cores['postgres']:.2f},"
        f" load generator {cores['load']:.2f}  | load average {result['loadavg']:.2f}"
    )
    for kind, values in sorted(result["latencies"].items()):
        print(
            f"    {kind:<14} {len(values):>6} requests  p50 {percentile(values, 0.5):7.1f} ms"
            f"  p95 {percentile(values, 0.95):7.1f} ms  p99 {percentile(values, 0.99):7.1f} ms"
        )
    if result["errors"]:
        print(f"    errors: {result['errors']}")
    events, seconds, worst = result["lag"]
    print(
        f"    projection lag at the step's end: {events:,.0f} events, {seconds:.1f} s ({worst});"
        f" load generator p99 {result['late_ms']:.1f} ms behind its schedule"
    )


def where_time_goes(result: dict[str, Any]) -> None:
    """The server's own view of the heaviest step: time per route and the append-lock wait."""
    ranked = sorted(result["spent"].items(), key=lambda kv: -kv[1][0] * kv[1][1])
    print(f"where the time goes at {result['rate']:,.0f} answers/s (server histograms):")
    for key, (count, mean_ms) in ranked[:6]:
        print(f"    {key:<52} {count:>7,.0f} x {mean_ms:7.2f} ms")
    cores = result["cores"]
    answers = result["answers_per_s"] or 1.0
    print(
        f"    CPU per answer: ledger {1000 * cores['ledger'] / answers:.2f} ms"
        f" ({1000 * cores['runner'] / answers:.2f} of it the projection runner),"
        f" PostgreSQL {1000 * cores['postgres'] / answers:.2f} ms"
        f" (lookups included, {1000 * cores['load'] / answers:.2f} ms in the load generator)"
    )
    per_answer = (cores["ledger"] + cores["postgres"]) / answers
    print(
        f"    CPU-bound ceiling with nothing else on this machine's {os.cpu_count()} cores:"
        f" {os.cpu_count() / per_answer:,.0f} answers/s; cores for {TARGET:,} answers/s:"
        f" {TARGET * per_answer:.1f}"
    )
    if result.get("profile"):
        found = ", ".join(f"{name} {share:.0%}" for name, share in result["profile"])
        print(f"    py-spy, the ledger's samples holding the GIL by package: {found}")
    waiting = result["waiting"]
    print(
        f"    waiting for a CPU (run queue, the machine's other load) per answer: ledger"
        f" {1000 * waiting['ledger'] / answers:.2f} ms, PostgreSQL"
        f" {1000 * waiting['postgres'] / answers:.2f} ms"
    )


def caught_up(url: str, limit_s: float = 600) -> None:
    """Wait for the read models to apply the set-up's events: the steps start from no lag."""
    deadline = time.monotonic() + limit_s
    while lag(scrape(url))[0] > 10:  # a few events: the checkpoints written meanwhile
        if time.monotonic() > deadline:
            raise SystemExit(f"the read models did not catch up with the set-up in {limit_s} s")
        time.sleep(0.5)


def rates(args: argparse.Namespace) -> list[float]:
    count = int((args.max_rate - args.start) // args.step) + 1
    return [args.start + i * args.step for i in range(count)]


def courses_for(args: argparse.Namespace, challenges: int = 21) -> int:
    """Courses enough for every planned step's certification answers, within --courses."""
    answers = sum(r * CERT_SHARE * args.seconds for r in rates(args))
    return min(args.courses, max(50, math.ceil(1.2 * answers / challenges)))


def summary(results: list[dict[str, Any]], args: argparse.Namespace, db: str) -> int:
    sustained = [r for r in results if r["sustained"]]
    best = max(sustained, key=lambda r: r["answers_per_s"], default=None)
    last = results[-1] if results else None
    print(
        f"summary ({db}, ledger serve --workers {args.workers},"
        f" LEDGER_PROJECTIONS={setting('LEDGER_PROJECTIONS')}, {args.generators} load"
        f" generator(s), {args.seconds:g} s steps,"
        f" {CERT_SHARE:.0%} certification answers one per POST, the rest in batches of {BATCH}):"
    )
    if best:
        print(
            f"highest sustained: {best['answers_per_s']:,.0f} answers/s (p99 {best['p99']:.0f} ms"
            f" < {P99_MS:.0f} ms, no errors; load average {best['loadavg']:.2f})"
            f" against the national peak target {TARGET:,}: "
            + ("met" if best["answers_per_s"] >= TARGET else "MISSED")
        )
    else:
        print(
            f"highest sustained: none (no step held p99 < {P99_MS:.0f} ms without errors)"
            f" against the national peak target {TARGET:,}: MISSED"
        )
    if last:
        events, seconds, worst = last["lag"]
        print(
            f"projection lag after the last step: {events:,.0f} events, {seconds:.1f} s ({worst})"
        )
        where_time_goes(best or last)
    return 0 if best and best["answers_per_s"] >= TARGET else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="a PostgreSQL URL (a throwaway schema is used)")
    parser.add_argument("--workers", type=int, default=2, help="ledger serve --workers")
    parser.add_argument("--seconds", type=float, default=20, help="length of a step")
    parser.add_argument("--start", type=float, default=250, help="first rate, answers/s")
    parser.add_argument("--step", type=float, default=250, help="rate increment, answers/s")
    parser.add_argument("--max-rate", type=float, default=2000, help="last rate, answers/s")
    parser.add_argument("--budget", type=float, default=300, help="most seconds of load")
    parser.add_argument("--courses", type=int, default=1500, help="most courses to start")
    parser.add_argument("--generators", type=int, default=1, help="load-generator processes")
    parser.add_argument(
        "--profile", action="store_true", help="sample the ledger with py-spy (if installed)"
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each step shows as it ends, even in a file
    with tempfile.TemporaryDirectory(prefix="ledger-bench-national-") as tmp:
        return measure(args, Path(tmp))


def measure(args: argparse.Namespace, work: Path) -> int:
    """Set up, drive and report, in `work` (keys, runtime dir, plan, server log)."""
    db = "PostgreSQL" if args.database else "SQLite"
    with scratch(args.database) as url:
        url = f"{url}&application_name={APP}" if args.database else url
        env = environment(url, work, free_port())
        started = time.perf_counter()
        plan = prepare(env, courses_for(args), work / "plan.json")
        print(
            f"set-up ({db}, not timed in the steps): {len(plan['courses']):,} courses started,"
            f" {len(plan['codes'])} certificates to look up, {time.perf_counter() - started:.0f} s"
        )
        results = drive(env, args, work)
    return summary(results, args, db)


def drive(env: dict[str, str], args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Serve, load step by step, stop at the first step not sustained or past the budget."""
    server = serve(env, args.workers, work / "server.log")
    loads = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "national_load.py"), str(work / "plan.json"),
             base(env), str(part), str(args.generators)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        for part in range(args.generators)
    ]  # fmt: skip
    ctx = {"server": server, "loads": loads, "url": base(env), "database": args.database,
           "work": work, "profile": args.profile}  # fmt: skip
    results: list[dict[str, Any]] = []
    try:
        caught_up(ctx["url"])
        run_step(ctx, min(50.0, args.start), min(3.0, args.seconds))  # warm-up, not reported
        spent = 0.0
        for rate in rates(args):
            if spent + args.seconds > args.budget:
                break
            results.append(run_step(ctx, rate, args.seconds))
            spent += results[-1]["elapsed"]
            show(results[-1])
            if not results[-1]["sustained"]:
                break
    finally:
        for load in loads:
            load.stdin.close()
            load.wait(timeout=30)
        server.terminate()
        server.wait(timeout=30)
    return results


if __name__ == "__main__":
    sys.exit(main())

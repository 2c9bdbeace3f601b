"""Full-audit throughput against the Ed25519 verify ceiling of this machine, and audit memory.

Builds a signed log of N events (SQLite, temporary), exports it as a bundle, then:
1. audits the bundle with `verify_bundle` on every core (hash, chain, key chain,
   signatures, checkpoint) and reports events/s;
2. verifies the same N signatures, and nothing else, in a process pool of the same
   size started the same way (the ceiling: what the cores can do at best) and
   reports signatures/s;
3. prints the ratio (target: at least 80%);
4. audits bundles of N/4 and N events in fresh processes and prints the peak RSS of
   the auditing process for each (target: the same, memory does not grow with the log).
Run: `python bench/audit_throughput.py [--events 40000] [--workers 0]` (0: every core).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger import crypto  # noqa: E402
from ledger.audit.parallel import BATCH, default_workers  # noqa: E402

CHUNK = 5000  # events per append transaction while building the log


def build_bundle(directory: Path, events: int) -> str:
    """A bundle of `events` signed events (plus the key activation); returns the anchor."""
    from ledger.audit.export import export_bundle
    from ledger.config import Config
    from ledger.domain import clock
    from ledger.store.application import Ledger
    from ledger.store.mapper import LedgerStoredEvent

    config = Config.from_env(
        database_url=f"sqlite:///{directory / 'log.db'}", keys_dir=directory / "keys"
    )
    ledger = Ledger(config)
    ledger.init()
    now = clock.format_time(clock.now())
    for start in range(0, events, CHUNK):
        stream = f"bench-{uuid.uuid4()}"
        ledger.recorder.insert_events(
            [
                LedgerStoredEvent(
                    originator_id=stream,
                    originator_version=n + 1,
                    topic="bench.Noted",
                    state=crypto.canonical_json({"n": start + n, "note": "x" * 64}),
                    time=now,
                    event_id=str(uuid.uuid4()),
                )
                for n in range(min(CHUNK, events - start))
            ]
        )
    export_bundle(ledger, directory / "bundle")
    anchor = ledger.trust_anchor().to_string()
    ledger.close()
    return anchor


def audit_rate(bundle: Path, anchor: str, workers: int) -> tuple[int, float]:
    """(events audited, seconds) of a full audit of the bundle."""
    from ledger.audit.verify import verify_bundle
    from ledger.trust import Anchor

    started = time.perf_counter()
    report = verify_bundle(bundle, Anchor.parse(anchor), workers=workers)
    elapsed = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"the benchmark log does not verify: {report.problem}")
    return report.events, elapsed


def _triples(bundle: Path) -> list[tuple[bytes, bytes, bytes]]:
    jwks = json.loads((bundle / "jwks.json").read_text())
    keys = {k["kid"]: crypto.public_key_from_jwk(k) for k in jwks["keys"]}
    triples = []
    with (bundle / "events.ndjson").open() as handle:
        for line in handle:
            record = json.loads(line)
            triples.append(
                (
                    keys[record["kid"]],
                    crypto.b64url_decode(record["sig"]),
                    bytes.fromhex(record["hash"]),
                )
            )
    return triples


def ceiling_rate(bundle: Path, workers: int) -> tuple[int, float]:
    """(signatures, seconds) to verify the bundle's signatures alone on `workers` processes."""
    triples = _triples(bundle)
    batches = [triples[i : i + BATCH] for i in range(0, len(triples), BATCH)]
    started = time.perf_counter()  # the pool's start counts, as it does in the audit
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        failures = [f for f in pool.map(crypto.verify_batch, batches) if f is not None]
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit("a benchmark signature does not verify")
    return len(triples), elapsed


def peak_rss_mib(bundle: Path, anchor: str, workers: int) -> float:
    """Peak RSS of a fresh process that audits the bundle (the pool's workers excluded)."""
    code = (
        "import resource, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from pathlib import Path\n"
        "from ledger.audit.verify import verify_bundle\n"
        "from ledger.trust import Anchor\n"
        f"r = verify_bundle(Path({str(bundle)!r}), Anchor.parse({anchor!r}), workers={workers})\n"
        "assert r.ok, r.problem\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024


def run(events: int, workers: int = 0) -> None:
    """Print the throughput and memory lines for logs of `events` (and `events // 4`) events."""
    workers = workers or default_workers()
    with tempfile.TemporaryDirectory() as tmp:
        small_dir, large_dir = Path(tmp) / "small", Path(tmp) / "large"
        small_dir.mkdir()
        large_dir.mkdir()
        print(f"building logs of {events // 4} and {events} events…", flush=True)
        small_anchor = build_bundle(small_dir, events // 4)
        anchor = build_bundle(large_dir, events)
        bundle = large_dir / "bundle"
        audited, audit_s = audit_rate(bundle, anchor, workers)
        signatures, ceiling_s = ceiling_rate(bundle, workers)
        audit, ceiling = audited / audit_s, signatures / ceiling_s
        print(
            f"full audit ({workers} workers): {audited} events in {audit_s:.2f} s = {audit:,.0f}/s"
        )
        print(f"Ed25519 verify ceiling ({workers} workers): {ceiling:,.0f} signatures/s")
        verdict = "meets" if audit >= 0.8 * ceiling else "below"
        print(f"audit / ceiling: {audit / ceiling:.0%} ({verdict} the 80% target)")
        small = peak_rss_mib(small_dir / "bundle", small_anchor, workers)
        large = peak_rss_mib(bundle, anchor, workers)
        print(
            f"audit peak RSS: {small:.1f} MiB at {events // 4} events, "
            f"{large:.1f} MiB at {events} events"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--workers", type=int, default=0, help="0: every core")
    args = parser.parse_args(argv)
    run(args.events, args.workers)


if __name__ == "__main__":
    main()

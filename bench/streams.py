"""Cost of one positioning answer against the length of the candidate's history, in one run.

For a candidate's 1st answer, and after 1,000 and 5,000 prior answers (built in
1,000-answer batches, not timed), one answer per save through the candidate
service, as the API records it:
- cached: in this process, with its connections and caches warm;
- cold: a fresh `Ledger` (empty aggregate cache, its connection opened first, not timed).
For reference, the whole-stream replay an answer cost before (loading the candidate
cold). Target: the answer after 5,000 costs at most 1.5 times the 1st, cached and cold.
The cells alternate over the rounds (the 1st answer is a new candidate's each round);
figures are per-cell medians.
Run: `python bench/streams.py [--database postgresql://…] [--rounds N]`; without
`--database` a temporary SQLite file is used, with it a throwaway schema.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from audit import scratch

from ledger.config import Config
from ledger.domain.candidate import Answer
from ledger.domain.referential import Referential, load_referential
from ledger.services.candidates import CandidateService, load_candidate
from ledger.store.application import Ledger

HISTORIES = (1_000, 5_000)
TARGET = 1.5
_ids = itertools.count()


def answers(ref: Referential, count: int) -> list[Answer]:
    """`count` valid answers with fresh ids, cycling over the referential's challenges."""
    challenges = [c for comp in ref.competences for s in ref.skills_of(comp.code)
                  for c in ref.challenges_of(s.id)]  # fmt: skip
    out = []
    for _ in range(count):
        n = next(_ids)
        challenge = challenges[n % len(challenges)]
        out.append(
            Answer(
                answer_id=f"bench-{n}", challenge=challenge.id, skill=challenge.skill,
                competence=ref.competence_of_skill(challenge.skill), result="ok" if n % 3 else "ko",
                time_spent_ms=n % 90_000, answered_at="2026-11-02T09:15:00.000000Z",
            )
        )  # fmt: skip
    return out


def candidate_with(service: CandidateService, ref: Referential, history: int) -> str:
    candidate, _ = service.register({"first_name": "Inès", "last_name": "Morel"})
    cid = str(candidate.id)
    for start in range(0, history, 1_000):
        service.record_answers([(cid, a) for a in answers(ref, min(1_000, history - start))])
    return cid


def timed(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def cold(config: Config, ref: Referential, step: Callable[[CandidateService], object]) -> float:
    """`step` on a fresh Ledger: nothing of this candidate cached, the connection already open."""
    ledger = Ledger(config)
    try:
        ledger.recorder.max_notification_id()
        return timed(lambda: step(CandidateService(ledger, ref)))
    finally:
        ledger.close()


def one_answer(
    config: Config, ref: Referential, service: CandidateService, cid: str
) -> dict[str, float]:
    """Seconds for one answer cached, one cold, and a cold replay of the candidate's stream."""
    cached, fresh = [(cid, *answers(ref, 1))], [(cid, *answers(ref, 1))]
    return {
        "cached": timed(lambda: service.record_answers(cached)),
        "cold": cold(config, ref, lambda s: s.record_answers(fresh)),
        "replay": cold(config, ref, lambda s: load_candidate(s.ledger, cid)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="a PostgreSQL URL (a throwaway schema is used)")
    parser.add_argument("--rounds", type=int, default=15, help="alternating measurement rounds")
    args = parser.parse_args()
    ref = load_referential()
    keys = Path(tempfile.mkdtemp(prefix="ledger-bench-keys-"))
    with scratch(args.database) as url:
        config = Config.from_env(database_url=url, keys_dir=keys, master_key="")
        ledger = Ledger(config)
        ledger.init()
        service = CandidateService(ledger, ref)
        long = {h: candidate_with(service, ref, h) for h in HISTORIES}
        cells: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            first = candidate_with(service, ref, 0)
            for at, cid in (("1st", first), *((f"after {h:,}", long[h]) for h in HISTORIES)):
                for kind, seconds in one_answer(config, ref, service, cid).items():
                    cells.setdefault((kind, at), []).append(seconds)
        ledger.close()
    return report(cells, args, "PostgreSQL" if args.database else "SQLite")


def report(cells: dict[tuple[str, str], list[float]], args: argparse.Namespace, db: str) -> int:
    columns = ["1st", *(f"after {h:,}" for h in HISTORIES)]
    last = columns[-1]
    print(f"{db}; {args.rounds} alternating rounds; per-answer medians in ms")
    print(f"{'':<44}" + "".join(f"{c:>13}" for c in columns) + f"   {last} / 1st")
    ok = True
    labels = {
        "cached": "answer, this process (caches warm)",
        "cold": "answer, fresh Ledger (cold)",
        "replay": "whole-stream replay (the former path, cold)",
    }
    for kind, label in labels.items():
        medians = {c: statistics.median(cells[(kind, c)]) * 1000 for c in columns}
        ratio = medians[last] / medians["1st"]
        note = "" if kind == "replay" else f" (target <= {TARGET})"
        ok &= kind == "replay" or ratio <= TARGET
        row = "".join(f"{medians[c]:>13.2f}" for c in columns)
        print(f"{label:<44}{row}   {ratio:.2f}x{note}")
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

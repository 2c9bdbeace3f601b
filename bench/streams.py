"""Cost of one positioning answer against the length of the candidate's history, in one run.

For a candidate's 1st answer (a new candidate each time, all registered at the
start of the round, so none is measured right after its own commit), and after
1,000 and 5,000 prior answers (built in 1,000-answer batches, not timed), one
answer per save through the candidate service, as the API records it:
- reads: what is read before the append (registration, erasure, head version,
  answer id), without the commit that dominates the rest;
- cached: in this process, with its connections and caches warm;
- cold: a fresh `Ledger` (empty aggregate cache, its connection opened first, not timed).
For reference: the knowledge enrolment and course start read (from the candidate's
kept fold, ledger/store/positioning.py), and the whole-stream replay an answer
cost before (loading the candidate cold). Target: after 1,000 and after 5,000, at
most 1.5 times the 1st answer, for the first three measures. The cells take turns
within each round; ratios are medians over rounds of each round's ratio, so drift
of the machine hits both sides alike.
Run: `python bench/streams.py [--database postgresql://…] [--rounds N] [--per N]`;
without `--database` a temporary SQLite file is used, with it a throwaway schema.
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
from ledger.services.candidates import CandidateService, load_candidate, positioning, registration
from ledger.store.application import Ledger

HISTORIES = (1_000, 5_000)
TARGET = 1.5
_ids = itertools.count()


def answers(ref: Referential, count: int) -> list[Answer]:
    """`count` valid answers with fresh ids, cycling over the referential's challenges."""
    challenges = ref.challenges
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


KINDS = {
    "reads": "reads before the append (head, answer id)",
    "cached": "answer, this process (caches warm)",
    "cold": "answer, fresh Ledger (cold)",
    "knowledge": "knowledge for enrolment / course start (cold)",
    "replay": "whole-stream replay (the former path, cold)",
}
TARGETED = ("reads", "cached", "cold")


def one_answer(
    config: Config, ref: Referential, service: CandidateService, cid: str
) -> dict[str, float]:
    """Seconds for each kind of measure, on candidate `cid`: one new answer each."""
    cached, fresh = [(cid, *answers(ref, 1))], [(cid, *answers(ref, 1))]
    probe = answers(ref, 1)[0].answer_id
    return {
        "reads": timed(lambda: service.answer_stream(cid, [probe])),
        "cached": timed(lambda: service.record_answers(cached)),
        "cold": cold(config, ref, lambda s: s.record_answers(fresh)),
        "knowledge": cold(
            config, ref, lambda s: positioning(s.ledger, ref, registration(s.ledger, cid))
        ),
        "replay": cold(config, ref, lambda s: load_candidate(s.ledger, cid)),
    }


def one_round(
    config: Config, ref: Referential, service: CandidateService, long: dict[str, str], per: int
) -> dict[tuple[str, str], float]:
    """(kind, history) -> median seconds of `per` calls; a 1st answer is a new candidate's."""
    samples: dict[tuple[str, str], list[float]] = {}
    cells = ["1st", *long]
    news = [candidate_with(service, ref, 0) for _ in range(per)]  # registered before, alike
    for call in range(per):  # the cells take turns at coming first
        turn = call % len(cells)
        for at in cells[turn:] + cells[:turn]:
            cid = long[at] if at in long else news[call]
            for kind, seconds in one_answer(config, ref, service, cid).items():
                samples.setdefault((kind, at), []).append(seconds)
    return {cell: statistics.median(values) for cell, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="a PostgreSQL URL (a throwaway schema is used)")
    parser.add_argument("--rounds", type=int, default=15, help="alternating measurement rounds")
    parser.add_argument("--per", type=int, default=5, help="calls per cell and round")
    args = parser.parse_args()
    ref = load_referential()
    keys = Path(tempfile.mkdtemp(prefix="ledger-bench-keys-"))
    with scratch(args.database) as url:
        config = Config.from_env(database_url=url, keys_dir=keys, master_key="")
        ledger = Ledger(config)
        ledger.init()
        service = CandidateService(ledger, ref)
        long = {f"after {h:,}": candidate_with(service, ref, h) for h in HISTORIES}
        rounds = [one_round(config, ref, service, long, args.per) for _ in range(args.rounds)]
        ledger.close()
    return report(rounds, args, "PostgreSQL" if args.database else "SQLite")


def report(rounds: list[dict[tuple[str, str], float]], args: argparse.Namespace, db: str) -> int:
    """Per-cell medians, and the median over rounds of each round's ratio to the 1st answer."""
    columns = ["1st", *(f"after {h:,}" for h in HISTORIES)]
    print(f"{db}; {args.rounds} alternating rounds of {args.per} calls per cell; medians in ms")
    ratios_head = "".join(f"{c + ' / 1st':>19}" for c in columns[1:])
    print(f"{'':<44}" + "".join(f"{c:>12}" for c in columns) + ratios_head)
    ok = True
    for kind, label in KINDS.items():
        ms = "".join(
            f"{statistics.median(r[(kind, c)] for r in rounds) * 1000:>12.2f}" for c in columns
        )
        ratios = [
            statistics.median(r[(kind, c)] / r[(kind, "1st")] for r in rounds) for c in columns[1:]
        ]
        if kind in TARGETED:
            ok &= max(ratios) <= TARGET
        print(f"{label:<44}{ms}" + "".join(f"{x:>18.2f}x" for x in ratios))
    print(f"target: every answer measure (the first three) <= {TARGET}x the 1st answer's")
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

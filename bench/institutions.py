"""Cost of a school's signed documents (livret scolaire) for a school of ~500 pupils.

One school, `--pupils` pupils registered with its UAI (adults, so one session may
hold many), `--certified` of them certified through sessions of 20 and a few of
those certificates cancelled; the rest pending. Measured through the API (Flask
test client, one process): the school's signed JSON document and its CSV, first
with no kept roster fold (the lists folded from the log from the start), then
warm (the fold kept, only later events read). Every pupil's registration and
certificate events are checked each time; aggregates are loaded once per request.
Run: `python bench/institutions.py [--database postgresql://…] [--pupils N]`;
without `--database` a temporary SQLite file is used, with it a throwaway schema.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from audit import scratch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.api import create_app
from ledger.config import Config
from ledger.store.application import Ledger
from tests.certification_flow import Flow
from tests.conftest import make_token
from tests.helpers import climb, register

UAI = "0350022K"
LEVELS = {"1.1": 2, "1.2": 2, "2.1": 3, "3.1": 1, "4.1": 2, "5.1": 1}
PER_SESSION = 20


def fill(flow: Flow, pupils: int, certified: int) -> None:
    """`pupils` pupils of UAI, the first `certified` through sessions, every 10th cancelled."""
    ids = []
    for n in range(pupils):
        pupil = register(flow.client, flow.platform, school=UAI, audience="adult",
                         external_id=f"INE{n:09d}X", first_name=f"Élève{n}")["id"]  # fmt: skip
        if n < certified:
            answers = [a for code, level in LEVELS.items() for a in climb(pupil, code, level)]
            flow.post("/api/v1/answers", {"answers": answers}, flow.platform)
        ids.append(pupil)
    for start in range(0, certified, PER_SESSION):
        session = flow.session()["id"]
        group = ids[start : min(start + PER_SESSION, certified)]
        for pupil in group:
            flow.enrol(session, pupil)
            flow.answer_all(flow.start(session, pupil))
        flow.finalize(session)
        for code in flow.publish(session)[::10]:
            flow.post(f"/api/v1/certificates/{code}/cancellation",
                      {"reason": "Erreur d'inscription", "category": "invalid-session"}, flow.admin)  # fmt: skip


def timed(client: object, url: str, headers: dict[str, str]) -> float:
    start = time.perf_counter()
    response = client.get(url, headers=headers)  # type: ignore[attr-defined]
    seconds = time.perf_counter() - start
    if response.status_code != 200:
        raise SystemExit(f"{url}: {response.status_code} {response.get_data(as_text=True)[:300]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="a PostgreSQL URL (a throwaway schema is used)")
    parser.add_argument("--pupils", type=int, default=500)
    parser.add_argument("--certified", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    keys = Path(tempfile.mkdtemp(prefix="ledger-bench-keys-"))
    with scratch(args.database) as url:
        config = Config.from_env(database_url=url, keys_dir=keys, master_key="")
        Ledger(config).init()
        app = create_app(config)
        client = app.test_client()
        flow = Flow(app, client, make_token(app, "admin"))
        fill(flow, args.pupils, args.certified)
        school = flow.post(f"/api/v1/institutions/{UAI}/tokens", {}, flow.admin)["token"]
        headers = {"Authorization": f"Bearer {school}"}
        document = f"/api/v1/institutions/{UAI}/results"
        cold = timed(client, document, headers)
        warm = [timed(client, document, headers) for _ in range(args.rounds)]
        csv = [timed(client, f"{document}.csv", headers) for _ in range(args.rounds)]
    db = "PostgreSQL" if args.database else "SQLite"
    print(f"{db}; one school of {args.pupils} pupils, {args.certified} certified")
    print(f"signed document, no kept fold: {cold:.2f} s")
    print(f"signed document, fold kept (median of {args.rounds}): {statistics.median(warm):.2f} s")
    print(f"CSV, fold kept (median of {args.rounds}): {statistics.median(csv):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

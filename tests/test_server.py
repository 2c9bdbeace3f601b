"""Scale-out for real: `ledger serve` with several gunicorn workers, concurrent HTTP writers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ledger.audit.export import live_records
from ledger.audit.verify import verify_records
from ledger.config import Config
from ledger.store.application import Ledger
from ledger.store.tokens import TokenStore
from tests.helpers import IDENTITY, climb
from tests.served import serve


def _call(url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_two_workers_and_eight_concurrent_clients_keep_one_valid_chain(
    database_url: str, tmp_path: Path
) -> None:
    config = Config.from_env(database_url=database_url, keys_dir=tmp_path / "keys")
    ledger = Ledger(config)
    ledger.init()
    _, token = TokenStore(ledger.db).create(["events:append"], "server test")
    with serve(database_url, tmp_path / "keys", workers=2) as (root, _):
        base = f"{root}/api/v1"

        def client(n: int) -> list[int]:
            statuses = []
            for _ in range(4):
                status, created = _call(f"{base}/candidates", token, IDENTITY)
                statuses.append(status)
                answers = climb(created["id"], "1.1", 2) + climb(created["id"], "2.1", 1)
                statuses.append(_call(f"{base}/answers", token, {"answers": answers})[0])
            return statuses

        with ThreadPoolExecutor(8) as pool:
            statuses = [s for batch in pool.map(client, range(8)) for s in batch]
    assert statuses == [201] * 64
    seqs = [e.seq for e in ledger.recorder.iter_envelopes()]
    assert seqs == list(range(1, len(seqs) + 1))
    report = verify_records(live_records(ledger), ledger.trust_anchor())
    assert report.ok, report.problem
    ledger.close()

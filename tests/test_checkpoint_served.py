"""A real `ledger serve` signs checkpoints in the background and gets them cosigned over HTTP."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from ledger.audit.checkpoint import parse_checkpoint
from ledger.audit.cosignature import verified_cosigners
from ledger.config import Config
from ledger.store.application import Ledger
from tests.served import serve
from tests.spec_witness import spec_witness
from tests.test_checkpoints import add_events


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def test_the_serving_process_signs_and_gets_cosigned(database_url: str, tmp_path: Path) -> None:
    config = Config.from_env(database_url=database_url, keys_dir=tmp_path / "keys", master_key="")
    ledger = Ledger(config)
    ledger.init()
    add_events(ledger, 3)
    key = ledger.signing_key().public_raw
    with spec_witness("w.example/one", config.log_origin, key) as witness:
        env = {"LEDGER_WITNESSES": witness.config_entry(), "LEDGER_CHECKPOINT_SECONDS": "1"}
        with serve(database_url, tmp_path / "keys", env=env) as (base, _):
            first = _wait_for_cosigned(f"{base}/tlog/checkpoint", witness.vkey, 4)
            add_events(ledger, 2)  # a second later the loop signs a larger tree and pushes it
            second = _wait_for_cosigned(f"{base}/tlog/checkpoint", witness.vkey, first + 2)
            assert witness.requests[-1].startswith(b"old %d\n" % first)
            assert second >= first + 2
    ledger.close()


def _wait_for_cosigned(url: str, vkey: object, size: int, timeout: float = 15) -> int:
    """The size of the first served checkpoint of at least `size` events the witness cosigned."""
    deadline = time.monotonic() + timeout
    while True:
        note = _get(url)
        found = parse_checkpoint(note)[0].size
        if found >= size and verified_cosigners(note, [vkey]):  # type: ignore[list-item]
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no cosigned checkpoint of size {size}: {note!r}")
        time.sleep(0.2)

"""Attestation PDFs on one core: how many are signed per second, next to their bare crypto cost.

- ceiling: ECDSA P-256 signatures per second (the PAdES signature's irreducible cost);
- render: the reportlab page alone; sign: pyHanko signing an already rendered page;
- attestation: the whole download path (re-verify the certificate's signed events,
  issue the QR token, render, sign) per second, and as a ratio of the ceiling;
- session zip: the 30 attestations of one real 30-candidate session, zipped as the
  `/api/v1/sessions/<id>/attestations.zip` endpoint streams them. Target: under
  10 s, the longest a person waits without a progress indicator (Nielsen's limit).
Then the credential half (bench/credential.py): credentials issued and verified per
second next to one RDF canonicalization. Medians over alternating rounds.
Run: `python bench/attestation.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from credential import main as credential_bench
from timing import calls_per_second

from ledger import crypto
from ledger.attestation.pdf import render
from ledger.attestation.service import Attestations, content, verified
from ledger.attestation.signing import sign
from ledger.config import Config
from ledger.demo import Demo
from ledger.domain import clock
from ledger.domain.referential import load_referential
from ledger.projections import all_projections
from ledger.projections.runner import catch_up
from ledger.store.application import Ledger

SESSION_SIZE = 30
WAIT_LIMIT_S = 10.0


def _session(config: Config) -> list[str]:
    """One real session of SESSION_SIZE adults, certified through the API's code paths."""
    demo = Demo(config, seed=7)
    centre = demo.centres()[0]
    when = datetime(2026, 6, 18, 8, tzinfo=UTC)
    demo.session(centre, when.date(), "adult", demo.candidates(SESSION_SIZE, "adult", when))
    return demo.codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="(credential half)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    with tempfile.TemporaryDirectory() as tmp:
        config = Config.from_env(
            database_url=f"sqlite:///{Path(tmp) / 'ledger.db'}",
            keys_dir=Path(tmp) / "keys",
            master_key="",
        )
        ledger = Ledger(config)
        ledger.init()
        with clock.frozen_at(datetime(2026, 11, 23, 10, tzinfo=UTC)):
            codes = _session(config)
        ref = load_referential()
        catch_up(ledger.db, all_projections(config, ref))  # as the API does before a read
        service = Attestations(ledger, ref)
        identity = service.identity()
        cert = verified(ledger, ref, codes[0])
        page = render(content(ledger, cert))
        digest = crypto.sha256(b"attestation")
        rows: dict[str, list[float]] = {"ecdsa": [], "render": [], "sign": [], "pdf": []}
        zips = []
        for _ in range(args.rounds):
            rows["ecdsa"].append(
                calls_per_second(lambda: crypto.ecdsa_p256_sign(identity.key, digest))
            )
            rows["render"].append(calls_per_second(lambda: render(content(ledger, cert))))
            rows["sign"].append(calls_per_second(lambda: sign(page, identity)))
            rows["pdf"].append(
                calls_per_second(lambda: service.pdf(verified(ledger, ref, codes[0])))
            )
            zips.append(_zip_seconds(service, ledger, codes))
        ledger.close()
    _report({k: statistics.median(v) for k, v in rows.items()}, statistics.median(zips), len(codes))
    print()
    credential_bench()  # credentials issued per second, next to one RDF canonicalization


def _zip_seconds(service: Attestations, ledger: Ledger, codes: list[str]) -> float:
    first = verified(service.ledger, service.ref, codes[0]).row
    start = time.perf_counter()
    size = sum(
        len(chunk)
        for chunk in service.session_zip(first["session"], first["centre_id"], codes, "fr")
    )
    elapsed = time.perf_counter() - start
    assert size > 0
    return elapsed


def _report(rates: dict[str, float], zip_s: float, count: int) -> None:
    ceiling = rates["ecdsa"]
    print("| step | per second (one core) | vs one ECDSA P-256 signature |")
    print("|---|---|---|")
    print(f"| ECDSA P-256 signature (ceiling) | {ceiling:,.0f} | |")
    for key, label in (("render", "render the page (reportlab)"),
                       ("sign", "PAdES-sign a rendered page (pyHanko)"),
                       ("pdf", "attestation: verify events, QR token, render, sign")):  # fmt: skip
        print(f"| {label} | {rates[key]:,.1f} | {rates[key] / ceiling:.2%} |")
    verdict = "within" if zip_s < WAIT_LIMIT_S else "OVER"
    print(f"\nsession of {count}: zip of {count} signed attestations in {zip_s:.2f} s "
          f"({verdict} the {WAIT_LIMIT_S:.0f} s limit)")  # fmt: skip


if __name__ == "__main__":
    main()

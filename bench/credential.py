"""Verifiable credentials issued and verified per second on one core, next to their bare costs.

In one process (one core) on a small demo history (SQLite): the bare cost of
one Ed25519 signature and of one RDF canonicalization (pyld, RDFC-1.0) of a
credential, then credentials issued per second from a verified certificate view
(two canonicalizations, one signature), the same including the verified view
(every event of the certificate re-read and checked), and credentials verified
per second (safe-mode canonicalization, one signature check). Each figure is the
median of several rounds; ratios are to the bare canonicalization.
Run: `python bench/credential.py [--rounds 5] [--seconds 1]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.config import Config
from ledger.demo import run_demo
from ledger.domain.referential import load_referential
from ledger.projections import all_projections
from ledger.projections.runner import catch_up, create_tables
from ledger.services.credentials import CredentialIssuer
from ledger.services.verification import public_certificate
from ledger.store.application import Ledger
from ledger.vc import jsonld
from ledger.vc.credential import verify_credential


def rate(work: Callable[[], object], seconds: float, rounds: int) -> float:
    """Median calls per second over `rounds` rounds of about `seconds` each."""
    rates = []
    for _ in range(rounds):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            work()
            count += 1
        rates.append(count / elapsed)
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        config = Config.from_env(
            database_url=f"sqlite:///{Path(work) / 'ledger.db'}",
            keys_dir=Path(work) / "keys",
            master_key="",
        )
        Ledger(config).init()
        code = run_demo(config, candidates=20, echo=lambda *_: None)["sample_codes"][0]
        ledger, ref = Ledger.open_existing(config), load_referential()
        projections = all_projections(config, ref)
        create_tables(ledger.db, projections)
        catch_up(ledger.db, projections)
        issuer = CredentialIssuer(ledger, config.public_url)
        view = public_certificate(ledger, ref, code)
        vc, did_doc = issuer.credential(view), issuer.did_document()
        unsigned = {k: v for k, v in vc.items() if k != "proof"}
        key, message = ledger.signing_key(), b"x" * 64

        figures = {
            "one Ed25519 signature": rate(lambda: key.sign(message), args.seconds, args.rounds),
            "one RDF canonicalization of a credential": rate(
                lambda: jsonld.canonicalize(unsigned, safe=False), args.seconds, args.rounds
            ),
            "credentials issued (from a verified view)": rate(
                lambda: issuer.credential(view), args.seconds, args.rounds
            ),
            "credentials issued (verified view included)": rate(
                lambda: issuer.credential(public_certificate(ledger, ref, code)),
                args.seconds,
                args.rounds,
            ),
            "credentials verified": rate(
                lambda: verify_credential(vc, did_doc), args.seconds, args.rounds
            ),
        }
        ledger.close()
    base = figures["one RDF canonicalization of a credential"]
    print(f"{'measure':48} {'per second':>11} {'vs one canonicalization':>24}")
    for name, value in figures.items():
        print(f"{name:48} {value:11.1f} {value / base:24.2f}")
    print(f"(Ed25519 alone is {figures['one Ed25519 signature'] / base:.0f}x a canonicalization:")
    print(" the RDF canonicalization, not the signature, is what a credential costs)")


if __name__ == "__main__":
    main()

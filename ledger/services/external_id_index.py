"""The national-id (INE) index rebuilt from the log, its only source of truth.

The index lives outside the log (an erasure must be able to delete a row), so
a restore, or registrations written before the table existed, leave it short:
a lookup by INE then finds nobody and the same INE could be registered twice.
Rebuilding opens the sealed ids of the CandidateRegistered events that verify
(hash, trusted signature, chain link), skips erased subjects, and inserts the
rows that are missing. Two candidates holding the same INE are reported, not
resolved: the first registered keeps the row, an operator decides the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.domain.candidate import Candidate
from ledger.services.verification import check_envelope, failed_checks, trusted_keys
from ledger.store.application import Ledger
from ledger.store.external_ids import ExternalIds

REGISTERED = Candidate.Registered.TYPE


@dataclass
class Rebuilt:
    """What a rebuild did; `conflicts` are (candidate, the candidate holding its INE)."""

    inserted: int = 0
    present: int = 0
    erased: int = 0
    unverified: list[int] = field(default_factory=list)
    conflicts: list[tuple[str, str]] = field(default_factory=list)


def rebuild(ledger: Ledger) -> Rebuilt:
    """Insert the index rows the verified registrations call for; never fails on a conflict."""
    index, keys, done = ExternalIds(ledger.db, ledger.keyring), trusted_keys(ledger), Rebuilt()
    for env in ledger.recorder.iter_envelopes_of_type(REGISTERED):
        sealed, subject = env.data.get("external_id"), env.data["subject"]
        if not sealed:
            continue
        check = check_envelope(ledger, env, keys)
        if failed_checks(check):
            done.unverified.append(env.seq)
            continue
        external_id = ledger.vault.open_or_none(sealed)
        if external_id is None:
            done.erased += 1
            continue
        _index(index, done, external_id, env.stream, subject)
    return done


def _index(
    index: ExternalIds, done: Rebuilt, external_id: str, candidate: str, subject: str
) -> None:
    before = index.holder(external_id)
    holder = before[0] if before else index.claim(external_id, candidate, subject)
    if holder != candidate:
        done.conflicts.append((candidate, holder))
    elif before:
        done.present += 1
    else:
        done.inserted += 1


def needs_rebuild(ledger: Ledger) -> bool:
    """An empty index while the log holds registrations with an external id."""
    if not ExternalIds(ledger.db, ledger.keyring).is_empty():
        return False
    registered = ledger.recorder.iter_envelopes_of_type(REGISTERED)
    return any(env.data.get("external_id") for env in registered)

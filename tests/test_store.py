"""Contract suite of the ledger store, run unchanged on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import multiprocessing
import threading
from typing import Any

import pytest
import rfc8785
from eventsourcing.domain import event
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import crypto, envelope
from ledger.audit.export import jwks, live_records
from ledger.audit.verify import verify_records
from ledger.config import Config
from ledger.domain.base import LedgerAggregate
from ledger.store.application import Ledger
from ledger.store.recorder import ConcurrencyConflict


class Counter(LedgerAggregate):
    """A minimal aggregate for store tests."""

    TYPE = "test.Counter"

    class Started(LedgerAggregate.Created):
        TYPE = "test.CounterStarted"
        label: str

    @event(Started)
    def __init__(self, label: str) -> None:
        self.label = label
        self.total = 0

    class Added(LedgerAggregate.Event):
        TYPE = "test.CounterAdded"
        amount: int
        note: str

    @event(Added)
    def add(self, amount: int, note: str = "") -> None:
        self.total += amount


def audit(ledger: Ledger) -> Any:
    return verify_records(live_records(ledger), ledger.trust_anchor())


def all_envelopes(ledger: Ledger) -> list[Any]:
    return list(ledger.recorder.iter_envelopes())


def test_events_become_signed_chained_envelopes(ledger: Ledger) -> None:
    counter = Counter(label="a")
    counter.add(amount=2, note='é"\n\u2028')
    seqs = ledger.save(counter)
    envs = all_envelopes(ledger)
    # seq 1 announces the signing key; the two events follow, gap-free
    assert [e.seq for e in envs] == [1, 2, 3] and seqs == [2, 3]
    assert envs[0].type == "keys.KeyActivated"
    assert envs[1].type == "test.CounterStarted" and envs[2].type == "test.CounterAdded"
    assert envs[0].prev == crypto.ZERO_HASH
    assert envs[1].prev == envs[0].hash and envs[2].prev == envs[1].hash
    assert envs[2].data == {"amount": 2, "note": 'é"\n\u2028'}
    assert envs[1].stream == envs[2].stream == str(counter.id)
    assert (envs[1].version, envs[2].version) == (1, 2)
    assert audit(ledger).ok


def test_aggregates_are_read_back_from_the_envelopes(ledger: Ledger) -> None:
    counter = Counter(label="b")
    for n in range(5):
        counter.add(amount=n)
    ledger.save(counter)
    copy = ledger.app.repository.get(counter.id)
    assert copy.total == 10 and copy.version == 6 and copy.label == "b"


def test_a_large_batch_signed_on_several_threads_verifies(ledger: Ledger) -> None:
    counter = Counter(label="big")
    for n in range(499):
        counter.add(amount=n, note=f"n{n}")
    assert ledger.recorder.signing_threads >= 2
    assert len(ledger.save(counter)) == 500
    report = audit(ledger)
    assert report.ok and report.events == 501, report.problem


def test_stale_write_is_a_conflict_and_writes_nothing(ledger: Ledger) -> None:
    counter = Counter(label="c")
    ledger.save(counter)
    first = ledger.app.repository.get(counter.id)
    second = ledger.app.repository.get(counter.id)
    first.add(amount=1)
    ledger.save(first)
    second.add(amount=100)
    second.add(amount=100)
    before = all_envelopes(ledger)
    with pytest.raises(ConcurrencyConflict):
        ledger.save(second)
    assert all_envelopes(ledger) == before
    assert ledger.app.repository.get(counter.id).total == 1


def test_a_batch_is_atomic(ledger: Ledger) -> None:
    done = Counter(label="d")
    ledger.save(done)
    stale = ledger.app.repository.get(done.id)
    done.add(amount=1)
    ledger.save(done)
    fresh = Counter(label="e")
    stale.add(amount=5)
    count = len(all_envelopes(ledger))
    with pytest.raises(ConcurrencyConflict):
        ledger.save(fresh, stale)  # fresh alone would succeed; together nothing lands
    assert len(all_envelopes(ledger)) == count


def test_cached_aggregates_are_handed_out_as_independent_copies(ledger: Ledger) -> None:
    counter = Counter(label="f")
    counter.add(amount=3, note="kept")
    ledger.save(counter)
    first = ledger.app.repository.get(counter.id)
    first.add(amount=40)  # a command that is never saved
    first.label = "changed in place"
    second = ledger.app.repository.get(counter.id)
    assert second is not first
    assert (second.total, second.label, second.version) == (3, "f", 2)


def test_one_read_sees_one_snapshot_while_another_writer_commits(ledger: Ledger) -> None:
    _filled(ledger, 2)
    count = "SELECT COUNT(*) FROM ledger_events"
    with ledger.db.read() as cur:
        cur.execute(count)
        before = cur.fetchone()[0]
        writer = Ledger(ledger.config)
        try:
            writer.save(Counter(label="committed meanwhile"))
        finally:
            writer.close()
        cur.execute(count)
        assert cur.fetchone()[0] == before
    assert ledger.db.scalar(count) == before + 1


def test_a_write_is_answered_with_the_hash_it_signed_not_the_tables(
    ledger: Ledger, config: Config
) -> None:
    counter = Counter(label="g")
    (seq,) = ledger.save(counter)
    signed = all_envelopes(ledger)[-1].hash
    _sql(ledger, "UPDATE ledger_events SET hash = ? WHERE seq = ?", ("0" * 64, seq))
    assert ledger.recorder.hash_of(seq) == signed  # the writer knows what it committed
    other = Ledger(config)  # another process reads the table
    try:
        assert other.recorder.hash_of(seq) == "0" * 64
        assert other.recorder.hash_of(seq + 1) is None
    finally:
        other.close()


def _writer(config: Config, label: str, n: int, errors: list[Exception]) -> None:
    ledger = Ledger(config)
    try:
        for i in range(n):
            counter = Counter(label=f"{label}-{i}")
            counter.add(amount=i)
            ledger.save(counter)
    except Exception as exc:
        errors.append(exc)
    finally:
        ledger.close()


def _assert_gap_free_valid(ledger: Ledger, expected_events: int) -> None:
    envs = all_envelopes(ledger)
    assert [e.seq for e in envs] == list(range(1, len(envs) + 1))
    assert len(envs) == expected_events
    report = audit(ledger)
    assert report.ok, report.problem


def test_eight_concurrent_threads_never_fork_the_chain(ledger: Ledger, config: Config) -> None:
    errors: list[Exception] = []
    threads = [
        threading.Thread(target=_writer, args=(config, f"t{k}", 15, errors)) for k in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    _assert_gap_free_valid(ledger, 1 + 8 * 15 * 2)


def _process_writer(config: Config, label: str, n: int) -> None:
    errors: list[Exception] = []
    _writer(config, label, n, errors)
    if errors:
        raise SystemExit(f"{label}: {errors[0]!r}")


def test_two_processes_never_fork_the_chain(ledger: Ledger, config: Config) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(config, f"p{k}", 20)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    _assert_gap_free_valid(ledger, 1 + 2 * 20 * 2)


# --- tampering -----------------------------------------------------------------


def _filled(ledger: Ledger, n: int = 6) -> list[Any]:
    for i in range(n):
        c = Counter(label=f"x{i}")
        c.add(amount=i)
        ledger.save(c)
    return all_envelopes(ledger)


def flip(text: str, index: int) -> str:
    """`text` with one base64url character changed: a forgery that differs for sure."""
    return text[:index] + ("B" if text[index] != "B" else "C") + text[index + 1 :]


def _sql(ledger: Ledger, statement: str, params: tuple = ()) -> None:
    with ledger.db.write() as cur:
        cur.execute(statement, params)


def test_changed_data_is_reported_at_its_seq(ledger: Ledger) -> None:
    _filled(ledger)
    _sql(ledger, "UPDATE ledger_events SET data = ? WHERE seq = 5", ('{"amount":999,"note":""}',))
    report = audit(ledger)
    assert not report.ok and report.first_bad_seq == 5 and "altered" in report.problem


def test_a_single_changed_byte_of_whitespace_is_reported(ledger: Ledger) -> None:
    envs = _filled(ledger)
    _sql(ledger, "UPDATE ledger_events SET data = ? WHERE seq = 4", (envs[3].data_json + " ",))
    assert audit(ledger).first_bad_seq == 4


@pytest.mark.parametrize("column", ["time", "type", "stream", "id"])
def test_changed_envelope_member_is_reported(ledger: Ledger, column: str) -> None:
    _filled(ledger)
    _sql(ledger, f"UPDATE ledger_events SET {column} = {column} || 'x' WHERE seq = 3")
    assert audit(ledger).first_bad_seq == 3


def test_forged_signature_is_reported(ledger: Ledger) -> None:
    envs = _filled(ledger)
    _sql(ledger, "UPDATE ledger_events SET sig = ? WHERE seq = 6", (flip(envs[5].sig, 10),))
    report = audit(ledger)
    assert report.first_bad_seq == 6 and "signature" in report.problem


def test_deleted_event_is_reported(ledger: Ledger) -> None:
    _filled(ledger)
    _sql(ledger, "DELETE FROM ledger_events WHERE seq = 4")
    report = audit(ledger)
    assert report.first_bad_seq == 4 and "gap" in report.problem


def test_swapped_events_are_reported_at_the_first(ledger: Ledger) -> None:
    _filled(ledger)
    _sql(ledger, "UPDATE ledger_events SET seq = -1 WHERE seq = 3")
    _sql(ledger, "UPDATE ledger_events SET seq = 3 WHERE seq = 5")
    _sql(ledger, "UPDATE ledger_events SET seq = 5 WHERE seq = -1")
    assert audit(ledger).first_bad_seq == 3


def test_rehashed_but_unsigned_edit_is_reported(ledger: Ledger) -> None:
    """An editor who recomputes the hash still cannot forge the signature."""
    envs = _filled(ledger)
    target = json.loads(envs[2].to_json_line())
    target["data"] = {"amount": 12345, "note": ""}
    body = {k: v for k, v in target.items() if k not in ("hash", "kid", "sig")}
    new_hash = crypto.sha256_hex(rfc8785.dumps(body))
    _sql(
        ledger,
        "UPDATE ledger_events SET data = ?, hash = ? WHERE seq = 3",
        ('{"amount":12345,"note":""}', new_hash),
    )
    report = audit(ledger)
    assert report.first_bad_seq == 3 and "signature" in report.problem


# --- keys ------------------------------------------------------------------------


def test_rotation_signs_new_events_with_new_key_and_old_ones_still_verify(ledger: Ledger) -> None:
    _filled(ledger, 2)
    old = ledger.keyring.active().kid
    new = ledger.keyring.generate().kid
    ledger.recorder.rotate(ledger.keyring.get(new))
    c = Counter(label="after")
    ledger.save(c)
    envs = all_envelopes(ledger)
    assert envs[-1].kid == new and envs[1].kid == old
    assert {k["kid"] for k in jwks(ledger)["keys"]} == {old, new}
    assert audit(ledger).ok


def test_jwks_entries_are_rfc8037_with_rfc7638_kids(ledger: Ledger) -> None:
    _filled(ledger, 1)
    (jwk,) = jwks(ledger)["keys"]
    assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    thumb_input = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": jwk["x"]}, separators=(",", ":"))
    assert jwk["kid"] == crypto.b64url(crypto.sha256(thumb_input.encode()))


# --- envelope canonical form ------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    data=st.dictionaries(st.text(), json_values, max_size=5),
    text=st.text(),
    seq=st.integers(1, 2**40),
)
def test_writer_bytes_equal_rfc8785_of_the_envelope(data: dict, text: str, seq: int) -> None:
    data_json = rfc8785.dumps(data).decode()
    fields = {
        "seq": seq,
        "id": text,
        "stream": text[::-1],
        "version": 3,
        "type": "t." + text,
        "time": "2026-01-01T00:00:00.000000Z",
        "prev": "0" * 64,
    }
    built = envelope.hashed_bytes(data_json=data_json, **fields)
    assert built == rfc8785.dumps({**fields, "data": data})


any_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=16,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(value=any_json)
def test_canonical_json_is_rfc8785_on_any_value(value) -> None:
    """The fast path for plain payloads must give exactly the reference bytes."""
    assert crypto.canonical_json(value) == rfc8785.dumps(value)

"""Answers stay cheap however long a candidate's history: counted in rows read, not in time.

A candidate with 3,000 positioning answers (written in three batches) answers
again through the answer index: the rows the database hands back for one more
answer, a duplicate or a conflict are as many as for a candidate with none, and
the rules still hold (idempotency by answer id, erasure, course answers).
Enrolment and course start read the knowledge from a kept fold, which counts
only while its MAC and the log row it was made from agree.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ledger.audit.export import live_records
from ledger.audit.verify import verify_records
from ledger.domain import clock
from ledger.domain.base import Conflict
from ledger.domain.candidate import Answer, Candidate
from ledger.domain.referential import load_referential
from ledger.services.candidates import CandidateService, load_candidate, registration
from ledger.services.candidates import positioning as positioning_of
from ledger.store.application import Ledger
from ledger.store.schema import ANSWER_TYPE
from tests.certification_flow import MORNING, Flow

HISTORY = 3_000
REF = load_referential()
CHALLENGES = [c for skill in REF.skills_of("1.1") for c in REF.challenges_of(skill.id)]


class RowCounter:
    """Counts the rows every cursor of one database hands back: what a command really read."""

    def __init__(self) -> None:
        self.rows = 0

    def wrap(self, cursor: Any) -> Any:
        counter = self

        class Counting:
            def __getattr__(self, name: str) -> Any:
                return getattr(cursor, name)

            def fetchone(self) -> Any:
                row = cursor.fetchone()
                counter.rows += row is not None
                return row

            def fetchall(self) -> list[Any]:
                rows = cursor.fetchall()
                counter.rows += len(rows)
                return rows

        return Counting()


@contextmanager
def rows_read(ledger: Ledger) -> Iterator[RowCounter]:
    """Count rows fetched through `ledger.db` (reads and the append's own reads) meanwhile."""
    db, counter = ledger.db, RowCounter()
    read, write, statement = db.read, db.write, db.rows

    def counted(open_: Any) -> Any:
        @contextmanager
        def opened(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with open_(*args, **kwargs) as cur:
                yield counter.wrap(cur)

        return opened

    def rows(*args: Any) -> list[Any]:
        found = statement(*args)
        counter.rows += len(found)
        return found

    db.read, db.write, db.rows = counted(read), counted(write), rows  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        db.read, db.write, db.rows = read, write, statement  # type: ignore[method-assign]


def nth(index: int, result: str = "ok") -> Answer:
    challenge = CHALLENGES[index % len(CHALLENGES)]
    return Answer(
        answer_id=f"p-{index}", challenge=challenge.id, skill=challenge.skill, competence="1.1",
        result=result, time_spent_ms=1_000 + index, answered_at="2026-11-02T09:15:00.000000Z",
    )  # fmt: skip


def with_history(service: CandidateService, answers: int) -> str:
    candidate, _ = service.register({"first_name": "Inès", "last_name": "Morel"})
    for start in range(0, answers, 1_000):
        batch = range(start, min(answers, start + 1_000))
        service.record_answers([(str(candidate.id), nth(i)) for i in batch])
    return str(candidate.id)


def cost(ledger: Ledger, command: Any, *args: Any) -> tuple[Any, int]:
    """The command's outcome (or the domain error it raised) and the rows it read."""
    with rows_read(ledger) as counter:
        try:
            outcome = command(*args)
        except Conflict as exc:
            outcome = exc
    return outcome, counter.rows


def test_the_answer_type_indexed_is_the_domain_s() -> None:
    assert ANSWER_TYPE == Candidate.AnswerRecorded.TYPE


def test_a_long_history_answers_as_cheaply_and_as_correctly_as_none(ledger: Ledger) -> None:
    service = CandidateService(ledger, REF)
    fresh, long = with_history(service, 0), with_history(service, HISTORY)
    for candidate in (fresh, long):  # registrations never change: a process remembers them
        service.subjects.of(candidate)
    commands = {
        "new": lambda c: service.record_answers([(c, nth(HISTORY + 1, "ko"))]),
        "duplicate": lambda c: service.record_answers([(c, nth(0))]),
        "conflict": lambda c: service.record_answers([(c, nth(1, "ko"))]),
    }
    for name, command in commands.items():
        if name != "new":  # the fresh candidate needs the same answers first
            service.record_answers([(fresh, nth(int(name == "conflict")))])
        (short_outcome, short_rows), (long_outcome, long_rows) = (
            cost(ledger, command, fresh),
            cost(ledger, command, long),
        )
        assert long_rows == short_rows <= 8, (name, short_rows, long_rows)
        assert type(long_outcome) is type(short_outcome), name
    candidate = load_candidate(ledger, long)
    assert candidate.version == 1 + HISTORY + 1
    assert candidate.answers["p-0"] == nth(0)  # the duplicate wrote nothing
    assert candidate.answers["p-1"] == nth(1)  # the conflict wrote nothing
    assert candidate.answers[f"p-{HISTORY + 1}"].result == "ko"
    assert verify_records(live_records(ledger), ledger.trust_anchor()).ok


def test_a_batch_mixes_new_repeated_and_in_batch_duplicates(ledger: Ledger) -> None:
    service = CandidateService(ledger, REF)
    candidate = with_history(service, 1_200)
    outcomes = service.record_answers(
        [
            (candidate, nth(5)),
            (candidate, nth(2_000)),
            (candidate, nth(2_000)),
        ]
    )
    assert [o.status for o in outcomes] == ["duplicate", "recorded", "duplicate"]
    assert outcomes[1].seq == ledger.recorder.max_notification_id()
    with pytest.raises(Conflict):  # the whole batch is refused: nothing written
        service.record_answers([(candidate, nth(2_001)), (candidate, nth(7, "ko"))])
    assert load_candidate(ledger, candidate).version == 1 + 1_200 + 1


def test_an_answer_id_is_found_by_the_log_not_by_a_copy(ledger: Ledger) -> None:
    """The index is over the signed rows: what it finds is what the log says, content included."""
    service = CandidateService(ledger, REF)
    candidate = with_history(service, 3)
    stream = service.answer_index.stream(candidate, ["p-1", "p-9"])
    assert stream.version == 4 and stream.known == {"p-1": nth(1)}
    with ledger.db.read() as cur:
        cur.execute("SELECT data FROM ledger_events WHERE stream = ? AND version = 3", (candidate,))
        assert json.loads(cur.fetchone()[0])["answer_id"] == "p-1"


def test_an_erased_candidate_with_a_long_history_answers_nothing(ledger: Ledger) -> None:
    service = CandidateService(ledger, REF)
    candidate = with_history(service, 1_000)
    service.erase(load_candidate(ledger, candidate).subject, "data-subject-request")
    with pytest.raises(Conflict, match="erased"):
        service.record_answers([(candidate, nth(1_001))])


def test_a_course_answer_reads_the_course_not_the_candidate_s_history(
    app: Any, client: Any, admin: dict[str, str]
) -> None:
    flow = Flow(app, client, admin)
    st = app.extensions["ledger"]
    long = flow.eligible_candidate()
    short = flow.eligible_candidate()
    padding = [(long, nth(i)) for i in range(2_000)]
    for start in range(0, len(padding), 1_000):
        st.candidates.record_answers(padding[start : start + 1_000])
    session = flow.session()["id"]
    courses, starts = {}, {}
    for candidate in (short, long):
        flow.enrol(session, candidate)  # keeps the long history's fold
        courses[candidate], starts[candidate] = cost(st.ledger, flow.start, session, candidate)
    assert starts[long] <= starts[short] + 10, starts
    rows = {}
    with clock.frozen_at(MORNING.replace(minute=45)):
        for candidate, course in courses.items():
            first = course["challenges"][0]["challenge"]
            answer = (course["id"], first, "ok", 30_000)
            _, rows[candidate] = cost(st.ledger, st.certification.answer, *answer)
            with pytest.raises(Conflict, match="already answered"):
                st.certification.answer(*answer)
    assert rows[long] == rows[short], rows
    assert rows[long] < 2 * len(courses[long]["challenges"]) + 20


def full_fold(ledger: Ledger, candidate: str) -> dict[str, Any]:
    """The positioning from every answer, as the whole Candidate knows it."""
    whole = load_candidate(ledger, candidate)
    return {
        "knowledge": whole.knowledge(REF).to_state(),
        "seen": sorted({a.challenge for a in whole.answers.values()}),
    }


def test_a_fold_continues_exactly_where_the_whole_history_would_be(ledger: Ledger) -> None:
    service = CandidateService(ledger, REF)
    candidate = with_history(service, 150)
    mixed = [(candidate, nth(150 + i, ("ok", "ko", "aband")[i % 3])) for i in range(100)]
    service.record_answers(mixed)
    registered = registration(ledger, candidate)
    first = positioning_of(ledger, REF, registered)  # from the log, then kept
    service.record_answers([(candidate, nth(400 + i, "ko")) for i in range(70)])
    again = positioning_of(ledger, REF, registered)  # from the kept fold on
    expected = full_fold(ledger, candidate)
    assert {"knowledge": again.knowledge.to_state(), "seen": sorted(again.seen)} == expected
    assert again.answers == 320 and first.answers == 250
    assert again.knowledge.to_state() != first.knowledge.to_state()


def test_a_kept_fold_spares_the_history_and_a_tampered_one_is_refused(ledger: Ledger) -> None:
    service = CandidateService(ledger, REF)
    candidate = with_history(service, HISTORY)
    registered = registration(ledger, candidate)
    positioning_of(ledger, REF, registered)
    kept, rows = cost(ledger, positioning_of, ledger, REF, registered)
    assert rows <= 3 and kept.answers == HISTORY
    expected = full_fold(ledger, candidate)

    def tampered(sql: str, *params: Any) -> dict[str, Any]:
        with ledger.db.write(lock=None) as cur:
            cur.execute(sql, params)
        found, rows = cost(ledger, positioning_of, ledger, REF, registered)
        assert rows > HISTORY  # refused: folded again from the log
        assert cost(ledger, positioning_of, ledger, REF, registered)[1] <= 3  # and kept again
        return {"knowledge": found.knowledge.to_state(), "seen": sorted(found.seen)}

    state = kept.to_state()  # every skill invalidated: a profile it never had
    state["knowledge"]["status"] = {
        s: [False, p] for s, (_, p) in state["knowledge"]["status"].items()
    }
    edited = json.dumps(state, sort_keys=True, separators=(",", ":"))
    assert (
        tampered("UPDATE positioning_folds SET state = ? WHERE candidate = ?", edited, candidate)
        == expected
    )
    rewritten = "UPDATE ledger_events SET hash = 'ff' || hash WHERE stream = ? AND version = ?"
    assert tampered(rewritten, candidate, kept.version) == expected


def test_concurrent_writers_of_the_same_answers_record_each_once(ledger: Ledger) -> None:
    """Four threads send the same ten answers: each is recorded once, the others see duplicates."""
    service = CandidateService(ledger, REF)
    candidate = with_history(service, 500)
    statuses: list[str] = []

    def send(index: int) -> str:
        for _ in range(50):  # a 409 "changed concurrently" tells the client to send again
            try:
                return service.record_answers([(candidate, nth(1_000 + index))])[0].status
            except Conflict as exc:
                assert "concurrently" in exc.detail
        return "gave up"

    def client() -> None:
        statuses.extend(send(index) for index in range(10))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses).count("recorded") == 10 and len(statuses) == 40
    whole = load_candidate(ledger, candidate)
    assert whole.version == 1 + 500 + 10 and len(whole.answers) == 510

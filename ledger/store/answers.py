"""A candidate's positioning answers looked up by id in the log, not replayed.

Recording an answer needs the stream's head version and whether its answer id
was already used: two index look-ups on `ledger_events` (the unique stream
version, and `ledger_answers_by_id` over the signed rows' `answer_id`), so their
cost does not grow with the candidate's history. The index is over the log
itself: there is no second copy that could drift from it or be tampered apart.
"""

from __future__ import annotations

import json
from typing import Any

from ledger.domain.candidate import Answer, AnswerStream
from ledger.store.db import Database
from ledger.store.schema import ANSWER_ID, ANSWER_TYPE


class AnswerIndex:
    """Reads what `AnswerStream` needs of one candidate's stream, in one statement."""

    def __init__(self, db: Database):
        self.db = db
        self._by_id = ANSWER_ID[db.kind]

    def stream(self, candidate_id: Any, answer_ids: list[str]) -> AnswerStream:
        """The head version, then the answers already recorded under `answer_ids`."""
        return self.answering(candidate_id, answer_ids)[0]

    def answering(
        self, candidate_id: Any, answer_ids: list[str], subject: str | None = None
    ) -> tuple[AnswerStream, bool]:
        """The stream as `stream` reads it, and whether `subject` was erased: one statement.

        One statement sees one snapshot, and it is one round trip. An answer committed
        after it is read makes the save at the next version fail and the command rerun.
        """
        stream = str(candidate_id)
        ids = sorted(set(answer_ids))
        rows = self.db.rows(
            "SELECT 'v', CAST(MAX(version) AS TEXT) FROM ledger_events WHERE stream = ?"
            " UNION ALL SELECT 'e', erased FROM subject_keys WHERE subject = ?"
            f" UNION ALL SELECT 'a', data FROM ledger_events WHERE type = '{ANSWER_TYPE}'"
            f" AND stream = ? AND {self._by_id} IN ({', '.join('?' * len(ids)) or 'NULL'})",
            (stream, subject or "", stream, *ids),
        )
        version = next((int(value) for kind, value in rows if kind == "v" and value), 0)
        erased = any(kind == "e" and value is not None for kind, value in rows)
        known = {}
        for data in (value for kind, value in rows if kind == "a"):
            answer = Answer.of(json.loads(data))
            known.setdefault(answer.answer_id, answer)
        return AnswerStream(candidate_id, version, known), erased

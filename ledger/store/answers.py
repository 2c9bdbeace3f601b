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
    """Reads what `AnswerStream` needs of one candidate's stream, in one read transaction."""

    def __init__(self, db: Database):
        self.db = db
        self._by_id = ANSWER_ID[db.kind]

    def stream(self, candidate_id: Any, answer_ids: list[str]) -> AnswerStream:
        """The head version, then the answers already recorded under `answer_ids`.

        The head is read first: an answer committed after it is either seen by the
        look-up, or makes the save at the next version fail and the command rerun.
        """
        stream = str(candidate_id)
        ids = sorted(set(answer_ids))
        with self.db.read() as cur:
            cur.execute("SELECT MAX(version) FROM ledger_events WHERE stream = ?", (stream,))
            version = cur.fetchone()[0] or 0
            cur.execute(
                f"SELECT data FROM ledger_events WHERE type = '{ANSWER_TYPE}' AND stream = ?"
                f" AND {self._by_id} IN ({', '.join('?' * len(ids))})",
                (stream, *ids),
            )
            rows = cur.fetchall()
        known = {}
        for (data,) in rows:
            answer = Answer.of(json.loads(data))
            known.setdefault(answer.answer_id, answer)
        return AnswerStream(candidate_id, version, known)

"""The courses read model from envelopes, older CourseScored payloads included (real SQLite)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ledger.envelope import Envelope
from ledger.projections.courses import CoursesProjection, history_of, summaries_of_session

COURSE = "0b5d7c1e-3f7a-4e43-9a51-7c7f2f0d3a10"
STARTED = {"candidate": "k", "session": "s", "centre": "c", "referential": "v1",
           "started_at": "2026-11-24T08:30:00.000000Z",
           "deadline": "2026-11-24T10:15:00.000000Z",
           "challenges": [{"challenge": f"ch{i}"} for i in range(6)], "profile": [],
           "selection_seed": COURSE}  # fmt: skip
# As written before rules were versioned: a per-mille rate, no counts, no sources.
LEGACY_SCORED = {"basis": "finalization", "reason": "examiner report", "neutralized": ["ch0"],
                 "fraud_confirmed": False, "cancelled_by_operator": False,
                 "result": {"status": "validated", "reproducibility_permille": 795,
                            "competences": [{"code": "1.1", "outcome": "validated", "level": 2,
                                             "pix": 16}],
                            "pix_score": 16, "reasons": []}}  # fmt: skip


def envelope(seq: int, kind: str, data: dict[str, Any]) -> Envelope:
    return Envelope(seq=seq, id=f"e{seq}", stream=COURSE, version=seq, type=kind,
                    time="2026-11-24T10:00:00.000000Z", data_json=json.dumps(data), prev="",
                    hash="", kid="", sig="")  # fmt: skip


def test_an_older_scoring_still_projects_with_what_it_recorded() -> None:
    db = sqlite3.connect(":memory:")
    cur = db.cursor()
    projection = CoursesProjection()
    for statement in projection.schema.split(";"):
        cur.execute(statement)
    projection.apply(cur, envelope(1, "certification.CourseStarted", STARTED))
    projection.apply(cur, envelope(2, "certification.CourseScored", LEGACY_SCORED))
    (course,) = history_of(cur, "k")
    assert course["reproducibility_rate"] == 79  # 795 per mille, read as it was floored
    assert course["band"] == "70-79" and course["rules"] == "1"
    assert course["abort_reason"] is None and course["neutralized"] == 1
    scoring = course["scoring"]
    assert scoring["competences"] == [{"code": "1.1", "outcome": "validated", "level": 2,
                                       "pix": 16, "asked": None, "correct": None,
                                       "neutralized": None}]  # fmt: skip
    assert scoring["neutralizations"] == [{"challenge": "ch0", "source": "issue-report",
                                           "report": None, "category": None, "reason": None}]  # fmt: skip
    assert scoring["kept"] == []
    assert summaries_of_session(cur, "s") == [
        {"course": COURSE, "candidate": "k", "state": "in_progress", "result_status": "validated",
         "reproducibility_rate": 79, "band": "70-79", "neutralized": 1, "scoring": scoring}
    ]  # fmt: skip

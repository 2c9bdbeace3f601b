"""Certification courses: each candidate's certification history, with the latest score.

A centre and the platform must see why a result is what it is: per competence the
challenges asked, correct and neutralized, the rate and its band, the rules and
referential versions, the abort reason and every neutralization with its source.
Results recorded before rules were versioned (a per-mille rate, no counts) are read
with `scoring.rate_of` / `rules_of`; what they never recorded is shown as null.
"""

from __future__ import annotations

import json
from typing import Any

from ledger.domain.scoring import BAND_NAMES, band, rate_of, rules_of
from ledger.envelope import Envelope

SCHEMA = """
CREATE TABLE IF NOT EXISTS proj_courses (
    course TEXT PRIMARY KEY,
    candidate TEXT NOT NULL,
    session TEXT NOT NULL,
    centre TEXT NOT NULL,
    referential TEXT NOT NULL,
    started_at TEXT NOT NULL,
    deadline TEXT NOT NULL,
    challenges INTEGER NOT NULL,
    answered INTEGER NOT NULL,
    state TEXT NOT NULL,
    end_reason TEXT,
    result_status TEXT,
    pix_score INTEGER,
    reproducibility_rate INTEGER,
    band TEXT,
    rules TEXT,
    abort_reason TEXT,
    neutralized INTEGER,
    scored_basis TEXT,
    scoring TEXT,
    updated_seq BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS proj_courses_by_candidate ON proj_courses (candidate, started_at);
CREATE INDEX IF NOT EXISTS proj_courses_by_session ON proj_courses (session)
"""
COLUMNS = (
    "course", "candidate", "session", "centre", "referential", "started_at", "deadline",
    "challenges", "answered", "state", "end_reason", "result_status", "pix_score",
    "reproducibility_rate", "band", "rules", "abort_reason", "neutralized", "scored_basis",
    "scoring",
)  # fmt: skip
SUMMARY = ("course", "candidate", "state", "result_status", "reproducibility_rate", "band",
           "neutralized")  # fmt: skip


def band_of(result: dict[str, Any]) -> str | None:
    """The recorded band; a legacy result's is read from its rate (None for an unusable one)."""
    if "band" in result:
        return result["band"]
    return BAND_NAMES[band(rate_of(result))] if result.get("competences") else None


def scoring_view(scored: dict[str, Any]) -> dict[str, Any]:
    """What one CourseScored payload says, older ones included (missing facts are null).

    Operator reasons stay sealed here; whoever serves the view opens them.
    """
    result = scored["result"]
    neutralizations = scored.get("neutralizations")
    if neutralizations is None:  # before sources were recorded: issue reports
        neutralizations = [
            {"challenge": c, "source": "issue-report", "report": None, "category": None,
             "reason": None}
            for c in scored.get("neutralized", [])
        ]  # fmt: skip
    return {
        "basis": scored.get("basis"),
        "status": result["status"],
        "rules": rules_of(result),
        "reproducibility_rate": rate_of(result),
        "band": band_of(result),
        "pix_score": result["pix_score"],
        "reasons": result.get("reasons", []),
        "abort_reason": scored.get("abort_reason"),
        "fraud_confirmed": scored.get("fraud_confirmed", False),
        "cancelled_by_operator": scored.get("cancelled_by_operator", False),
        "competences": [_competence(c) for c in result["competences"]],
        "neutralizations": neutralizations,
        "kept": scored.get("kept", []),
    }


def _competence(item: dict[str, Any]) -> dict[str, Any]:
    keys = ("code", "outcome", "level", "pix", "asked", "correct", "neutralized")
    return {key: item.get(key) for key in keys}


class CoursesProjection:
    name = "courses"
    types = frozenset(
        {
            "certification.CourseStarted",
            "certification.ChallengeAnswered",
            "certification.CourseEnded",
            "certification.CourseScored",
        }
    )
    schema = SCHEMA
    tables = ("proj_courses",)

    def apply(self, cur: Any, env: Envelope) -> None:
        data = env.data
        if env.type == "certification.CourseStarted":
            cur.execute(
                "INSERT INTO proj_courses (course, candidate, session, centre, referential,"
                " started_at, deadline, challenges, answered, state, updated_seq)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 'in_progress', ?)",
                (env.stream, data["candidate"], data["session"], data["centre"],
                 data["referential"], data["started_at"], data["deadline"],
                 len(data["challenges"]), env.seq),
            )  # fmt: skip
        elif env.type == "certification.ChallengeAnswered":
            cur.execute(
                "UPDATE proj_courses SET answered = answered + 1, updated_seq = ? WHERE course = ?",
                (env.seq, env.stream),
            )
        elif env.type == "certification.CourseEnded":
            state = "completed" if data["reason"] == "completed" else "ended"
            cur.execute(
                "UPDATE proj_courses SET state = ?, end_reason = ?, updated_seq = ? WHERE course = ?",
                (state, data["reason"], env.seq, env.stream),
            )
        else:
            self._scored(cur, env)

    @staticmethod
    def _scored(cur: Any, env: Envelope) -> None:
        view = scoring_view(env.data)
        cur.execute(
            "UPDATE proj_courses SET result_status = ?, pix_score = ?, reproducibility_rate = ?,"
            " band = ?, rules = ?, abort_reason = ?, neutralized = ?, scored_basis = ?,"
            " scoring = ?, updated_seq = ? WHERE course = ?",
            (view["status"], view["pix_score"], view["reproducibility_rate"], view["band"],
             view["rules"], view["abort_reason"], len(view["neutralizations"]), view["basis"],
             json.dumps(view, sort_keys=True), env.seq, env.stream),
        )  # fmt: skip


def _course_row(row: Any) -> dict[str, Any]:
    course = dict(zip(COLUMNS, row, strict=True))
    course["scoring"] = json.loads(course["scoring"]) if course["scoring"] else None
    return course


def history_of(cur: Any, candidate: str) -> list[dict[str, Any]]:
    """The candidate's courses, oldest first, each with its latest scoring (sealed reasons as stored)."""
    cur.execute(
        f"SELECT {', '.join(COLUMNS)} FROM proj_courses WHERE candidate = ? ORDER BY started_at",
        (candidate,),
    )
    return [_course_row(r) for r in cur.fetchall()]


def summaries_of_session(cur: Any, session: str) -> list[dict[str, Any]]:
    """Per course of a session: state, status, rate, band, neutralized count and the scoring
    that explains them (per competence asked/correct/neutralized, each neutralization's source
    and reason as stored: sealed reasons are opened by the caller)."""
    columns = (*SUMMARY, "scoring")
    cur.execute(
        f"SELECT {', '.join(columns)} FROM proj_courses WHERE session = ? ORDER BY candidate",
        (session,),
    )
    rows = [dict(zip(columns, r, strict=True)) for r in cur.fetchall()]
    for row in rows:
        row["scoring"] = json.loads(row["scoring"]) if row["scoring"] else None
    return rows

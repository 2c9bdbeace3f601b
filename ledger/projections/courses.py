"""Certification courses: each candidate's certification history, with the latest score."""

from __future__ import annotations

from typing import Any

from ledger.envelope import Envelope

SCHEMA = """
CREATE TABLE IF NOT EXISTS proj_courses (
    course TEXT PRIMARY KEY,
    candidate TEXT NOT NULL,
    session TEXT NOT NULL,
    centre TEXT NOT NULL,
    started_at TEXT NOT NULL,
    deadline TEXT NOT NULL,
    challenges INTEGER NOT NULL,
    answered INTEGER NOT NULL,
    state TEXT NOT NULL,
    end_reason TEXT,
    result_status TEXT,
    pix_score INTEGER,
    reproducibility_permille INTEGER,
    scored_basis TEXT,
    updated_seq BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS proj_courses_by_candidate ON proj_courses (candidate, started_at)
"""
COLUMNS = (
    "course", "candidate", "session", "centre", "started_at", "deadline", "challenges", "answered",
    "state", "end_reason", "result_status", "pix_score", "reproducibility_permille", "scored_basis",
)  # fmt: skip


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
                "INSERT INTO proj_courses (course, candidate, session, centre, started_at, deadline,"
                " challenges, answered, state, updated_seq) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 'in_progress', ?)",
                (env.stream, data["candidate"], data["session"], data["centre"], data["started_at"],
                 data["deadline"], len(data["challenges"]), env.seq),
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
            result = data["result"]
            cur.execute(
                "UPDATE proj_courses SET result_status = ?, pix_score = ?, reproducibility_permille = ?,"
                " scored_basis = ?, updated_seq = ? WHERE course = ?",
                (result["status"], result["pix_score"], result["reproducibility_permille"],
                 data["basis"], env.seq, env.stream),
            )  # fmt: skip


def history_of(cur: Any, candidate: str) -> list[dict[str, Any]]:
    cur.execute(
        f"SELECT {', '.join(COLUMNS)} FROM proj_courses WHERE candidate = ? ORDER BY started_at",
        (candidate,),
    )
    return [dict(zip(COLUMNS, r, strict=True)) for r in cur.fetchall()]

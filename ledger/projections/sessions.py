"""Centres and their sessions, with each session's state and counts.

The counts include the enrolled candidates with extra time or accessibility needs, so a
centre sees what to prepare. A read model built before those columns is rebuilt when
the tables are created (see `runner.create_tables`).
"""

from __future__ import annotations

from typing import Any

from ledger.envelope import Envelope

SCHEMA = """
CREATE TABLE IF NOT EXISTS proj_centres (
    centre TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    city TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS proj_sessions (
    session TEXT PRIMARY KEY,
    centre TEXT NOT NULL,
    audience TEXT NOT NULL,
    date TEXT NOT NULL,
    time TEXT NOT NULL,
    address TEXT NOT NULL,
    room TEXT NOT NULL,
    state TEXT NOT NULL,
    enrolled INTEGER NOT NULL,
    started INTEGER NOT NULL,
    with_extra_time INTEGER NOT NULL DEFAULT 0,
    with_accessibility INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    finalized_at TEXT,
    published_on TEXT,
    updated_seq BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS proj_sessions_by_centre ON proj_sessions (centre, date)
"""

SESSION_COLUMNS = (
    "session", "centre", "audience", "date", "time", "address", "room", "state", "enrolled",
    "started", "with_extra_time", "with_accessibility", "created_at", "finalized_at",
    "published_on",
)  # fmt: skip
STATE_OF = {
    "certification.SessionFinalized": "finalized",
    "certification.SessionReviewStarted": "in_process",
    "certification.SessionPublished": "processed",
}


class SessionsProjection:
    name = "sessions"
    types = frozenset(
        {
            "certification.CentreCreated",
            "certification.SessionCreated",
            "certification.CandidateEnrolled",
            "certification.SessionCourseStarted",
            *STATE_OF,
        }
    )
    schema = SCHEMA
    tables = ("proj_centres", "proj_sessions")

    def apply(self, cur: Any, env: Envelope) -> None:
        data = env.data
        if env.type == "certification.CentreCreated":
            cur.execute(
                "INSERT INTO proj_centres (centre, name, kind, city, created_at) VALUES (?, ?, ?, ?, ?)",
                (env.stream, data["name"], data["kind"], data["city"], env.time),
            )
        elif env.type == "certification.SessionCreated":
            cur.execute(
                "INSERT INTO proj_sessions (session, centre, audience, date, time, address, room,"
                " state, enrolled, started, created_at, updated_seq)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'created', 0, 0, ?, ?)",
                (env.stream, data["centre"], data["audience"], data["date"], data["time"],
                 data["address"], data["room"], env.time, env.seq),
            )  # fmt: skip
        elif env.type == "certification.CandidateEnrolled":
            self._enrolled(cur, env, data)
        elif env.type == "certification.SessionCourseStarted":
            self._bump(cur, env, "started")
        else:
            self._state(cur, env, data)

    @staticmethod
    def _enrolled(cur: Any, env: Envelope, data: dict[str, Any]) -> None:
        """Count the candidate, and the accommodations the centre must provide (older: none)."""
        extra = 1 if data.get("extra_time_percent", 0) > 0 else 0
        accessible = 1 if data.get("accessibility", False) else 0
        cur.execute(
            "UPDATE proj_sessions SET enrolled = enrolled + 1, with_extra_time = with_extra_time + ?,"
            " with_accessibility = with_accessibility + ?, updated_seq = ? WHERE session = ?",
            (extra, accessible, env.seq, env.stream),
        )

    @staticmethod
    def _bump(cur: Any, env: Envelope, column: str) -> None:
        cur.execute(
            f"UPDATE proj_sessions SET {column} = {column} + 1, updated_seq = ? WHERE session = ?",
            (env.seq, env.stream),
        )

    @staticmethod
    def _state(cur: Any, env: Envelope, data: dict[str, Any]) -> None:
        state = STATE_OF[env.type]
        cur.execute(
            "UPDATE proj_sessions SET state = ?, updated_seq = ?,"
            " finalized_at = CASE WHEN ? = 'finalized' THEN ? ELSE finalized_at END,"
            " published_on = COALESCE(?, published_on) WHERE session = ?",
            (state, env.seq, state, env.time, data.get("published_on"), env.stream),
        )


def _row(row: Any) -> dict[str, Any]:
    return dict(zip(SESSION_COLUMNS, row, strict=True))


def sessions_of(cur: Any, centre: str) -> list[dict[str, Any]]:
    cur.execute(
        f"SELECT {', '.join(SESSION_COLUMNS)} FROM proj_sessions WHERE centre = ? ORDER BY date, time",
        (centre,),
    )
    return [_row(r) for r in cur.fetchall()]


def centre_of(cur: Any, centre: str) -> dict[str, Any] | None:
    cur.execute(
        "SELECT centre, name, kind, city, created_at FROM proj_centres WHERE centre = ?", (centre,)
    )
    row = cur.fetchone()
    return (
        dict(zip(("id", "name", "kind", "city", "created_at"), row, strict=True)) if row else None
    )

"""Competence profiles: per candidate, pix and level of the 16 competences, and eligibility.

Built only from `candidates.CandidateRegistered` and `positioning.AnswerRecorded`
envelopes, with the same pure domain rules the certification uses. Identity
stays sealed here; it is opened (or shown as erased) when read.
"""

from __future__ import annotations

import json
from typing import Any

from ledger.domain import profile as rules
from ledger.domain.referential import COMPETENCE_CODES, Referential, load_referential
from ledger.envelope import Envelope

SCHEMA = """
CREATE TABLE IF NOT EXISTS proj_candidates (
    candidate TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    identity TEXT NOT NULL,
    external_id TEXT,
    audience TEXT NOT NULL,
    school TEXT,
    registered_at TEXT NOT NULL,
    registered_seq BIGINT NOT NULL,
    answers INTEGER NOT NULL,
    total_pix INTEGER NOT NULL,
    eligible INTEGER NOT NULL,
    updated_seq BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS proj_candidates_by_school ON proj_candidates (school);
CREATE TABLE IF NOT EXISTS proj_knowledge (
    candidate TEXT NOT NULL,
    skill TEXT NOT NULL,
    competence TEXT NOT NULL,
    validated INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (candidate, skill)
);
CREATE TABLE IF NOT EXISTS proj_competences (
    candidate TEXT NOT NULL,
    competence TEXT NOT NULL,
    pix INTEGER NOT NULL,
    level INTEGER NOT NULL,
    PRIMARY KEY (candidate, competence)
)
"""


class ProfilesProjection:
    name = "profiles"
    types = frozenset({"candidates.CandidateRegistered", "positioning.AnswerRecorded"})
    schema = SCHEMA
    tables = ("proj_candidates", "proj_knowledge", "proj_competences")

    def __init__(self, max_level: int, referential: Referential | None = None):
        self.max_level = max_level
        self.ref = referential or load_referential()

    def apply(self, cur: Any, env: Envelope) -> None:
        data = env.data
        if env.type == "candidates.CandidateRegistered":
            self._register(cur, env, data)
        else:
            self._answer(cur, env, data)

    def _register(self, cur: Any, env: Envelope, data: dict[str, Any]) -> None:
        external = data.get("external_id")
        cur.execute(
            "INSERT INTO proj_candidates (candidate, subject, identity, external_id, audience,"
            " school, registered_at, registered_seq, answers, total_pix, eligible, updated_seq)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?)",
            (
                env.stream,
                data["subject"],
                json.dumps(data["identity"]),
                json.dumps(external) if external else None,
                data["audience"],
                data.get("school"),  # older registrations have none
                env.time,
                env.seq,
                env.seq,
            ),
        )
        cur.executemany(
            "INSERT INTO proj_competences (candidate, competence, pix, level) VALUES (?, ?, 0, 0)",
            [(env.stream, code) for code in COMPETENCE_CODES],
        )

    def _answer(self, cur: Any, env: Envelope, data: dict[str, Any]) -> None:
        ref = load_referential(data.get("referential")) if data.get("referential") else self.ref
        inferred = rules.inferred_knowledge(ref, data["skill"], data["result"])
        competence = data["competence"]
        cur.executemany(
            "INSERT INTO proj_knowledge (candidate, skill, competence, validated, seq)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (candidate, skill) DO UPDATE SET"
            " validated = excluded.validated, seq = excluded.seq",
            [(env.stream, skill, competence, int(ok), env.seq) for skill, ok in inferred.items()],
        )
        cur.execute(
            "SELECT skill FROM proj_knowledge WHERE candidate = ? AND competence = ? AND validated = 1",
            (env.stream, competence),
        )
        validated = [r[0] for r in cur.fetchall()]
        pix = rules.competence_pix(ref, competence, validated, self.max_level)
        level = rules.level_from_pix(pix, self.max_level)
        cur.execute(
            "UPDATE proj_competences SET pix = ?, level = ? WHERE candidate = ? AND competence = ?",
            (pix, level, env.stream, competence),
        )
        cur.execute("SELECT pix, level FROM proj_competences WHERE candidate = ?", (env.stream,))
        rows = cur.fetchall()
        cur.execute(
            "UPDATE proj_candidates SET answers = answers + 1, total_pix = ?, eligible = ?,"
            " updated_seq = ? WHERE candidate = ?",
            (
                sum(r[0] for r in rows),
                int(rules.is_eligible(r[1] for r in rows)),
                env.seq,
                env.stream,
            ),
        )


def read_profile(cur: Any, candidate: str) -> dict[str, Any] | None:
    """The stored profile of one candidate (identity still sealed)."""
    cur.execute(
        "SELECT candidate, subject, identity, external_id, audience, registered_at, answers,"
        " total_pix, eligible, updated_seq FROM proj_candidates WHERE candidate = ?",
        (candidate,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    cur.execute(
        "SELECT competence, pix, level FROM proj_competences WHERE candidate = ?", (candidate,)
    )
    levels = {r[0]: {"pix": r[1], "level": r[2]} for r in cur.fetchall()}
    return {
        "candidate": row[0],
        "subject": row[1],
        "identity": json.loads(row[2]),
        "external_id": json.loads(row[3]) if row[3] else None,
        "audience": row[4],
        "registered_at": row[5],
        "answers": row[6],
        "total_pix": row[7],
        "eligible": bool(row[8]),
        "as_of_seq": row[9],
        "competences": [{"code": code, **levels[code]} for code in COMPETENCE_CODES],
    }


def pupils_of(cur: Any, school: str) -> list[tuple[str, str, dict[str, Any], Any, int]]:
    """(candidate, subject, sealed identity, sealed external id, registered seq) of a school."""
    cur.execute(
        "SELECT candidate, subject, identity, external_id, registered_seq FROM proj_candidates"
        " WHERE school = ? ORDER BY registered_seq",
        (school,),
    )
    return [
        (r[0], r[1], json.loads(r[2]), json.loads(r[3]) if r[3] else None, r[4])
        for r in cur.fetchall()
    ]


def registration_of(cur: Any, candidate: str) -> tuple[str, str, dict[str, Any], Any, int] | None:
    """One candidate's registration, in the shape of `pupils_of`."""
    cur.execute(
        "SELECT candidate, subject, identity, external_id, registered_seq FROM proj_candidates"
        " WHERE candidate = ?",
        (candidate,),
    )
    r = cur.fetchone()
    return (r[0], r[1], json.loads(r[2]), json.loads(r[3]) if r[3] else None, r[4]) if r else None

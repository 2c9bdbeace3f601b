"""Builders of realistic requests from the shipped referential."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from ledger.domain.profile import Knowledge
from ledger.domain.referential import load_referential

_ids = itertools.count(1)
IDENTITY = {
    "first_name": "Camille",
    "last_name": "Lefèvre",
    "birth_date": "2007-03-14",
    "birth_place": "Rennes",
    "audience": "upper-secondary",
}


def register(client: Any, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """Register a candidate; each gets its own national id (INE), as they are unique."""
    body = {**IDENTITY, "external_id": f"INE{uuid.uuid4().hex[:12].upper()}", **overrides}
    response = client.post("/api/v1/candidates", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def answer(
    candidate: str,
    competence: str = "1.1",
    difficulty: int = 1,
    result: str = "ok",
    answer_id: str | None = None,
    skill_id: str | None = None,
) -> dict[str, Any]:
    """An answer on `skill_id`, or on the first skill of `competence` at `difficulty`."""
    ref = load_referential()
    if skill_id is None:
        skill_id = min(
            (s for s in ref.skills_of(competence) if s.difficulty == difficulty),
            key=lambda s: s.tube,
        ).id
    return {
        "candidate": candidate,
        "answer_id": answer_id or f"a-{next(_ids)}",
        "challenge": ref.challenges_of(skill_id)[0].id,
        "skill": skill_id,
        "competence": competence,
        "result": result,
        "time_spent_ms": 42_000,
        "answered_at": "2026-11-02T09:15:00.000000Z",
    }


def climb(candidate: str, competence: str, level: int) -> list[dict[str, Any]]:
    """Correct answers on every tube of `competence` at its highest difficulty <= `level`.

    By inference that validates every skill up to `level`: the competence reaches it.
    """
    ref = load_referential()
    tubes: dict[str, list[Any]] = {}
    for skill in ref.skills_of(competence):
        tubes.setdefault(skill.tube, []).append(skill)
    out = []
    for skills in tubes.values():
        below = [s for s in skills if s.difficulty <= level]
        if below:
            top = max(below, key=lambda s: s.difficulty)
            out.append(answer(candidate, competence, result="ok", skill_id=top.id))
    return out


def event_count(client: Any, headers: dict[str, str]) -> int:
    body = client.get("/api/v1/events?after=0&limit=10000", headers=headers).get_data(as_text=True)
    return len([line for line in body.splitlines() if line.strip()])


def climbed_knowledge(levels: dict[str, int]) -> Knowledge:
    """The knowledge `climb` gives: the top skill of each tube up to the level, directly."""
    ref = load_referential()
    answers = [a for code, level in levels.items() for a in climb("k", code, level)]
    return Knowledge.of(ref, ((item["skill"], item["result"]) for item in answers))

"""Builders of realistic requests from the shipped referential."""

from __future__ import annotations

import itertools
from typing import Any

from ledger.domain.referential import load_referential

_ids = itertools.count(1)
IDENTITY = {
    "first_name": "Camille",
    "last_name": "Lefèvre",
    "birth_date": "2007-03-14",
    "birth_place": "Rennes",
    "external_id": "INE123456789",
    "audience": "upper-secondary",
}


def register(client: Any, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/candidates", json={**IDENTITY, **overrides}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def answer(
    candidate: str,
    competence: str = "1.1",
    difficulty: int = 1,
    result: str = "ok",
    answer_id: str | None = None,
    tube_index: int = 0,
) -> dict[str, Any]:
    """An answer on the `tube_index`-th tube of `competence` at `difficulty`."""
    ref = load_referential()
    tubes = sorted({s.tube for s in ref.skills_of(competence)})
    skill = next(
        s
        for s in ref.skills_of(competence)
        if s.tube == tubes[tube_index] and s.difficulty == difficulty
    )
    return {
        "candidate": candidate,
        "answer_id": answer_id or f"a-{next(_ids)}",
        "challenge": ref.challenges_of(skill.id)[0].id,
        "skill": skill.id,
        "competence": competence,
        "result": result,
        "time_spent_ms": 42_000,
        "answered_at": "2026-11-02T09:15:00.000000Z",
    }


def climb(candidate: str, competence: str, level: int) -> list[dict[str, Any]]:
    """Correct answers on every tube of `competence` up to difficulty `level`."""
    ref = load_referential()
    tubes = sorted({s.tube for s in ref.skills_of(competence)})
    out = []
    for index, tube in enumerate(tubes):
        difficulties = {s.difficulty for s in ref.skills_of(competence) if s.tube == tube}
        top = max((d for d in difficulties if d <= level), default=None)
        if top is not None:
            out.append(answer(candidate, competence, top, "ok", tube_index=index))
    return out


def event_count(client: Any, headers: dict[str, str]) -> int:
    body = client.get("/api/v1/events?after=0&limit=10000", headers=headers).get_data(as_text=True)
    return len([line for line in body.splitlines() if line.strip()])

"""A realistic demo history, appended through the HTTP API's own code paths.

Candidates get a hidden "true level" per competence; a simple adaptive test
asks challenges around that level, so profiles spread like real ones (most
candidates eligible, some not). Same seed, same shape of history.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ledger.config import Config
from ledger.domain import clock
from ledger.domain.referential import Referential

FIRST_NAMES = (
    "Camille",
    "Léa",
    "Hugo",
    "Louis",
    "Chloé",
    "Inès",
    "Lucas",
    "Manon",
    "Nathan",
    "Zoé",
    "Jules",
    "Emma",
    "Adam",
    "Sarah",
    "Gabriel",
    "Jade",
    "Raphaël",
    "Lina",
    "Arthur",
    "Maël",
)
LAST_NAMES = (
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefèvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
)
PLACES = ("Lyon", "Marseille", "Lille", "Nantes", "Rennes", "Bordeaux", "Toulouse", "Dijon")
AUDIENCES = ("upper-secondary", "upper-secondary", "lower-secondary", "adult")
BATCH = 500


class DemoError(RuntimeError):
    """The API refused a demo request: a bug, since the demo only sends valid data."""


def _client(config: Config) -> tuple[Any, dict[str, str], Referential]:
    from ledger.api import create_app
    from ledger.api.state import ApiState

    app = create_app(config)
    st: ApiState = app.extensions["ledger"]
    _, token = st.tokens.create(["admin"], label="demo (single use)")
    return app.test_client(), {"Authorization": f"Bearer {token}"}, st.referential


def _post(client: Any, headers: dict[str, str], path: str, body: Any) -> Any:
    response = client.post(path, json=body, headers=headers)
    if response.status_code >= 300:
        raise DemoError(f"{path}: {response.status_code} {response.get_data(as_text=True)[:300]}")
    return response.get_json()


def _identity(rng: random.Random) -> dict[str, Any]:
    year = rng.choice((2006, 2007, 2008, 2009, 1985, 1992, 2000))
    return {
        "first_name": rng.choice(FIRST_NAMES),
        "last_name": rng.choice(LAST_NAMES),
        "birth_date": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "birth_place": rng.choice(PLACES),
        "audience": rng.choice(AUDIENCES),
        "external_id": f"INE{rng.randrange(10**9):09d}",
    }


def positioning_answers(
    rng: random.Random, ref: Referential, candidate: str, true_levels: dict[str, int]
) -> list[dict[str, Any]]:
    """An adaptive-looking positioning: climb each tube until the first failure."""
    answers = []
    moment = clock.now() - timedelta(days=rng.randint(30, 400))
    for code, true_level in true_levels.items():
        tubes: dict[str, list[Any]] = {}
        for skill in ref.skills_of(code):
            tubes.setdefault(skill.tube, []).append(skill)
        for skills in tubes.values():
            for skill in sorted(skills, key=lambda s: s.difficulty):
                noise = rng.random() < 0.1
                ok = (skill.difficulty <= true_level) != noise
                challenge = rng.choice(ref.challenges_of(skill.id))
                moment += timedelta(seconds=rng.randint(20, 180))
                answers.append(
                    {
                        "candidate": candidate,
                        "answer_id": f"ans-{candidate[:8]}-{len(answers):04d}",
                        "challenge": challenge.id,
                        "skill": skill.id,
                        "competence": code,
                        "result": "ok" if ok else rng.choice(("ko", "ko", "partially", "aband")),
                        "time_spent_ms": rng.randint(15_000, 240_000),
                        "answered_at": clock.format_time(moment),
                    }
                )
                if not ok:
                    break
    return answers


def run_demo(
    config: Config, candidates: int = 300, seed: int = 2026, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    rng = random.Random(seed)
    client, headers, ref = _client(config)
    codes = [c.code for c in ref.competences]
    pending: list[dict[str, Any]] = []
    totals = {"candidates": 0, "answers": 0}
    for _ in range(candidates):
        created = _post(client, headers, "/api/v1/candidates", _identity(rng))
        tested = rng.sample(codes, rng.randint(4, 12))
        levels = {code: max(0, min(6, round(rng.gauss(2.5, 1.3)))) for code in tested}
        pending.extend(positioning_answers(rng, ref, created["id"], levels))
        totals["candidates"] += 1
        while len(pending) >= BATCH:
            _post(client, headers, "/api/v1/answers", {"answers": pending[:BATCH]})
            totals["answers"] += BATCH
            del pending[:BATCH]
    if pending:
        _post(client, headers, "/api/v1/answers", {"answers": pending})
        totals["answers"] += len(pending)
    echo(f"demo: {totals['candidates']} candidates, {totals['answers']} answers")
    return totals

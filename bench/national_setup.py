"""The national bench's starting state, built in-process before the server starts (not timed).

A fresh ledger gets: a platform token (events:append) for the load, a few published
certificates to look up (the demo history), and for the run itself adult candidates
registered and positioned (eligible), enrolled in today's sessions, their courses
started, so the load only answers. Everything goes through the API's own code paths
(the Flask test client), as `ledger demo` does; batches are used where they exist.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from ledger.config import Config
from ledger.demo import Demo, positioning_answers, run_demo

PER_SESSION = 200  # candidates enrolled in one session
LEVELS = {"1.1": 3, "1.2": 2, "2.1": 3, "3.1": 2, "4.1": 3, "5.1": 2, "5.2": 2}


def certified_codes(config: Config, candidates: int) -> list[str]:
    """Codes of published certificates, for the verify-page lookups."""
    summary = run_demo(config, candidates=candidates, echo=lambda *_: None)
    return list(summary["sample_codes"])


def _eligible(demo: Demo, count: int) -> list[str]:
    """`count` adult candidates, each positioned at level >= 1 on enough competences."""
    ids: list[str] = []
    pending: list[dict[str, Any]] = []
    for start in range(0, count, 100):
        group = [
            demo.post("/api/v1/candidates", {**_identity(demo.rng)}, demo.platform)["id"]
            for _ in range(min(100, count - start))
        ]
        for cid in group:
            pending.extend(_positioning(demo, cid))
        for at in range(0, len(pending), 1_000):
            demo.post("/api/v1/answers", {"answers": pending[at : at + 1_000]}, demo.platform)
        pending.clear()
        ids.extend(group)
    return ids


def _identity(rng: random.Random) -> dict[str, Any]:
    return {
        "first_name": "Camille",
        "last_name": "Lefèvre",
        "birth_date": f"{rng.randint(1970, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "birth_place": "Rennes",
        "audience": "adult",
        "external_id": f"INE{rng.randrange(10**10):010d}",
    }


def _positioning(demo: Demo, candidate: str) -> list[dict[str, Any]]:
    return positioning_answers(demo.rng, demo.ref, candidate, LEVELS)


def started_courses(demo: Demo, centre: str, candidates: list[str]) -> list[dict[str, Any]]:
    """Enrol `candidates` in today's sessions and start their courses: [{id, challenges}]."""
    staff = demo.staff[centre]
    today = datetime.now(UTC).date().isoformat()
    courses = []
    for start in range(0, len(candidates), PER_SESSION):
        body = {"date": today, "time": "23:59", "address": "Salle des examens", "room": "B1",
                "examiner": "Mme Laurent", "audience": "adult"}  # fmt: skip
        session = demo.post(f"/api/v1/centres/{centre}/sessions", body, staff)["id"]
        for cid in candidates[start : start + PER_SESSION]:
            demo.post(f"/api/v1/sessions/{session}/candidates", {"candidate": cid}, staff)
            course = demo.post(f"/api/v1/sessions/{session}/courses", {"candidate": cid})
            courses.append(
                {"id": course["id"], "challenges": [c["challenge"] for c in course["challenges"]]}
            )
    return courses


def platform_token(demo: Demo) -> str:
    """A bearer token of scope events:append, as the national platform holds."""
    st = demo.client.application.extensions["ledger"]
    _, token = st.tokens.create(["events:append"], label="national bench platform")
    return token


def build(config: Config, courses: int, positioned: int, demo_candidates: int) -> dict[str, Any]:
    """The plan the load generator follows: token, courses, positioned candidates, codes."""
    codes = certified_codes(config, demo_candidates)
    demo = Demo(config, seed=13)
    centre = demo.centres()[0]
    candidates = _eligible(demo, courses + positioned)
    started = started_courses(demo, centre, candidates[:courses])
    return {
        "token": platform_token(demo),
        "courses": started,
        "positioned": candidates[courses:],
        "challenges": _challenges(demo),
        "codes": codes,
    }


def _challenges(demo: Demo) -> list[str]:
    """(challenge id) of every challenge, for positioning answers sent during the load."""
    return [c.id for c in demo.ref.challenges]

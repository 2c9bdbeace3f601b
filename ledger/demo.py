"""A realistic demo history, appended through the HTTP API's own code paths.

Candidates get a hidden "true level" per competence; a simple adaptive test
asks challenges around that level, so profiles spread like real ones (most
candidates eligible, some not). Same seed, same shape of history.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ledger.config import Config
from ledger.domain import clock
from ledger.domain.referential import Referential
from ledger.domain.session import TIERS_TEMPS

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

    app = create_app(replace(config, projections="inline"))  # in-process: nobody else applies
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


CENTRES = (
    ("Lycée Victor Hugo", "school", "Rennes"),
    ("Collège Jean Moulin", "school", "Lyon"),
    ("Université de Bordeaux", "university", "Bordeaux"),
    ("Centre de formation Numérique Pour Tous", "organisation", "Lille"),
)
# (session day, audience): upper-secondary in Jan-Mar, lower-secondary in Mar-May, adults any time
SESSION_PLAN = (
    ("01-20", "upper-secondary"), ("02-14", "upper-secondary"), ("03-10", "lower-secondary"),
    ("04-15", "lower-secondary"), ("06-18", "adult"), ("10-07", "adult"),
)  # fmt: skip
YEARS = (2022, 2023, 2024, 2025, 2026)


class Demo:
    """The demo's state: an HTTP client with operator, platform and staff tokens."""

    def __init__(self, config: Config, seed: int):
        self.rng = random.Random(seed)
        self.client, self.admin, self.ref = _client(config)
        self.platform = self.admin
        self.totals = {"candidates": 0, "answers": 0, "centres": 0, "sessions": 0, "courses": 0,
                       "certificates": 0, "cancelled": 0}  # fmt: skip
        self.codes: list[str] = []
        self.staff: dict[str, dict[str, str]] = {}

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return _post(self.client, headers or self.admin, path, body)

    def at(self, moment: datetime) -> Any:
        return clock.frozen_at(moment)

    def centres(self) -> list[str]:
        ids = []
        with self.at(datetime(YEARS[0], 1, 3, 9, tzinfo=UTC)):
            for name, kind, city in CENTRES:
                centre = self.post("/api/v1/centres", {"name": name, "kind": kind, "city": city})[
                    "id"
                ]
                token = self.post(f"/api/v1/centres/{centre}/tokens", {"label": f"staff {name}"})[
                    "token"
                ]
                self.staff[centre] = {"Authorization": f"Bearer {token}"}
                ids.append(centre)
        self.totals["centres"] = len(ids)
        return ids

    def candidates(self, count: int, audience: str, when: datetime) -> list[str]:
        """Register and position `count` candidates a few weeks before `when`."""
        codes = [c.code for c in self.ref.competences]
        ids, pending = [], []
        with self.at(when - timedelta(days=21)):
            for _ in range(count):
                identity = {**_identity(self.rng), "audience": audience}
                created = self.post("/api/v1/candidates", identity, self.platform)["id"]
                tested = self.rng.sample(codes, self.rng.randint(5, 12))
                levels = {c: max(0, min(6, round(self.rng.gauss(2.6, 1.2)))) for c in tested}
                pending.extend(positioning_answers(self.rng, self.ref, created, levels))
                ids.append(created)
            for start in range(0, len(pending), BATCH):
                self.post(
                    "/api/v1/answers", {"answers": pending[start : start + BATCH]}, self.platform
                )
        self.totals["candidates"] += count
        self.totals["answers"] += len(pending)
        return ids

    def session(self, centre: str, day: date, audience: str, candidates: list[str]) -> None:
        staff = self.staff[centre]
        morning = datetime(day.year, day.month, day.day, 8, 0, tzinfo=UTC)
        with self.at(morning - timedelta(days=14)):
            body = {"date": day.isoformat(), "time": "09:00", "address": "Salle des examens",
                    "room": f"B{self.rng.randint(1, 30)}", "examiner": self.rng.choice(LAST_NAMES),
                    "audience": audience}  # fmt: skip
            session = self.post(f"/api/v1/centres/{centre}/sessions", body, staff)["id"]
            first = self.totals["sessions"]
            enrolled = [
                c
                for i, c in enumerate(candidates, start=first)
                if self._enrol(session, c, staff, _needs(i))
            ]
        self.totals["sessions"] += 1
        if not enrolled:
            return
        absent = enrolled[-1:] if len(enrolled) > 3 and self.rng.random() < 0.3 else []
        report: dict[str, Any] = {"absent": absent, "aborts": [], "issue_reports": []}
        with self.at(morning + timedelta(minutes=30)):
            courses = [
                self.post(f"/api/v1/sessions/{session}/courses", {"candidate": c}, self.platform)
                for c in enrolled if c not in absent
            ]  # fmt: skip
        with self.at(morning + timedelta(minutes=90)):
            for course in courses:
                self._take(course, report)
        with self.at(morning + timedelta(hours=3)):
            self.post(f"/api/v1/sessions/{session}/finalization", report, staff)
        self.totals["courses"] += len(courses)
        with self.at(morning + timedelta(days=7)):
            self.post(f"/api/v1/sessions/{session}/review", {})
            self._review(courses)
            codes = self.post(f"/api/v1/sessions/{session}/publication", {})["codes"]
        self.codes.extend(codes)
        self.totals["certificates"] += len(codes)
        if codes and self.rng.random() < 0.15:
            with self.at(morning + timedelta(days=40)):
                self.post(
                    f"/api/v1/certificates/{codes[0]}/cancellation",
                    {"reason": "fraude constatée après publication"},
                )
            self.totals["cancelled"] += 1

    def _enrol(
        self, session: str, candidate: str, staff: dict[str, str], needs: dict[str, Any]
    ) -> bool:
        response = self.client.post(
            f"/api/v1/sessions/{session}/candidates",
            json={"candidate": candidate, **needs},
            headers=staff,
        )
        if response.status_code == 422:  # not eligible: the centre is told why and moves on
            return False
        if response.status_code >= 300:
            raise DemoError(
                f"enrol: {response.status_code} {response.get_data(as_text=True)[:300]}"
            )
        return True

    def _take(self, course: dict[str, Any], report: dict[str, Any]) -> None:
        skill = self.rng.uniform(0.55, 0.98)
        challenges = course["challenges"]
        stop, abort = self._interruption(len(challenges))
        if abort:  # a test interrupted: the examiner reports why
            report["aborts"].append({"candidate": course["candidate"], "reason": abort})
        answered = []
        for item in challenges[:stop]:
            result = (
                "ok"
                if self.rng.random() < skill
                else self.rng.choice(("ko", "ko", "aband", "timedout"))
            )
            self.post(f"/api/v1/courses/{course['id']}/answers",
                      {"challenge": item["challenge"], "result": result,
                       "time_spent_ms": self.rng.randint(20_000, 150_000)}, self.platform)  # fmt: skip
            self.totals["answers"] += 1
            answered.append((item["challenge"], result))
        if stop == len(challenges):
            self._issue_report(course["candidate"], answered, report)

    def _interruption(self, size: int) -> tuple[int, str | None]:
        """Where a test stops and why (the showcase session has each reason for sure)."""
        if self.rng.random() < 0.05:
            stop = self.rng.randint(1, size - 1) if size > 1 else 1
            return stop, self.rng.choice(("candidate", "technical"))
        return size, None

    def _issue_report(
        self, candidate: str, answered: list[tuple[str, str]], report: dict[str, Any]
    ) -> None:
        """Now and then a report asking to neutralize: granted only if the answer was not correct."""
        if self.rng.random() < 0.1:
            report["issue_reports"].append(
                {"candidate": candidate, "category": "in-challenge", "neutralize": True,
                 "challenge": answered[0][0], "description": "l'image ne s'affichait pas"}
            )  # fmt: skip

    def _review(self, courses: list[dict[str, Any]]) -> None:
        """The operator's review: a scoring error (no pix certified) is cancelled."""
        for course in courses:
            path = f"/api/v1/courses/{course['id']}"
            if self.client.get(path, headers=self.admin).get_json()["result"]["status"] == "error":
                body = {"decision": "cancel", "reason": "aucun pix certifié : à repasser"}
                self.post(f"{path}/decision", body)


SHOWCASE_DAYS_AGO = 21  # the showcase session, its review (+7 days) and late report (+14) all past
SHOWCASE_LEVELS = {"1.1": 4, "1.2": 3, "2.1": 4, "3.1": 3, "4.1": 4, "4.2": 3, "5.1": 3}


class Showcase:
    """One scripted adult session where each certification rule applies at least once.

    Four candidates: a tiers-temps candidate who answers after the usual 105
    minutes; a test aborted for a technical reason, mostly wrong (cancelled, not
    rejected); an issue report on a wrong answer (neutralized) with an operator
    neutralization during review; an issue report on a correct answer (kept) in a
    test the candidate abandoned (unanswered challenges counted wrong).
    """

    def __init__(self, demo: Demo, centre: str):
        self.demo, self.centre, self.staff = demo, centre, demo.staff[centre]
        day = clock.now().date() - timedelta(days=SHOWCASE_DAYS_AGO)
        self.day = day
        self.morning = datetime(day.year, day.month, day.day, 8, tzinfo=UTC)

    def run(self) -> None:
        demo, morning = self.demo, self.morning
        people = self._candidates(4)
        with demo.at(morning - timedelta(days=14)):
            body = {"date": self.day.isoformat(), "time": "09:00", "address": "Salle des examens",
                    "room": "A1", "examiner": "Laurent", "audience": "adult"}  # fmt: skip
            session = demo.post(f"/api/v1/centres/{self.centre}/sessions", body, self.staff)["id"]
            for index, candidate in enumerate(people):
                needs = {"extra_time_percent": TIERS_TEMPS} if index == 0 else {}
                demo.post(f"/api/v1/sessions/{session}/candidates",
                          {"candidate": candidate, **needs}, self.staff)  # fmt: skip
        with demo.at(morning + timedelta(minutes=30)):
            tiers, technical, wrong, kept = (
                demo.post(f"/api/v1/sessions/{session}/courses", {"candidate": c}, demo.platform)
                for c in people
            )
        self._answer(technical, ["ok", "ko", "ko"], share=0.7, minutes=80)
        self._answer(wrong, ["ko"] + ["ok"] * 47, share=1.0, minutes=80)
        self._answer(kept, ["ok"], share=0.85, minutes=80)
        self._answer(tiers, ["ok"], share=1.0, minutes=150)  # past 105 min: 33% extra time
        report = {"absent": [], "aborts": [
            {"candidate": technical["candidate"], "reason": "technical"},
            {"candidate": kept["candidate"], "reason": "candidate"},
        ], "issue_reports": [
            {"candidate": c["candidate"], "category": "in-challenge", "neutralize": True,
             "challenge": c["challenges"][0]["challenge"], "description": "l'image ne s'affichait pas"}
            for c in (wrong, kept)
        ]}  # fmt: skip
        with demo.at(morning + timedelta(hours=3)):
            demo.post(f"/api/v1/sessions/{session}/finalization", report, self.staff)
        with demo.at(morning + timedelta(days=7)):
            demo.post(f"/api/v1/sessions/{session}/review", {})
            demo.post(f"/api/v1/courses/{wrong['id']}/neutralizations",
                      {"challenge": wrong["challenges"][1]["challenge"],
                       "reason": "épreuve signalée défectueuse par l'éditeur"})  # fmt: skip
            codes = demo.post(f"/api/v1/sessions/{session}/publication", {})["codes"]
        with demo.at(morning + timedelta(days=14)):  # an issue reported after publication
            self._late_report(kept, "problème signalé après la publication")
        demo.codes.extend(codes)
        demo.totals["sessions"] += 1
        demo.totals["courses"] += len(people)
        demo.totals["certificates"] += len(codes)

    def _late_report(self, course: dict[str, Any], reason: str) -> None:
        """Neutralizes the first unanswered challenge of a published course (counted wrong)."""
        demo = self.demo
        path = f"/api/v1/candidates/{course['candidate']}/certifications"
        mine = demo.client.get(path, headers=demo.admin).get_json()["certificates"]
        (code,) = (c["code"] for c in mine if c["course"] == course["id"])
        answered = demo.client.get(f"/api/v1/courses/{course['id']}", headers=demo.admin).get_json()
        unanswered = [c["challenge"] for c in course["challenges"]
                      if c["challenge"] not in answered["answered"]]  # fmt: skip
        body = {"neutralize": unanswered[:1], "reason": reason}
        demo.post(f"/api/v1/certificates/{code}/rescoring", body)

    def _candidates(self, count: int) -> list[str]:
        demo, ids, answers = self.demo, [], []
        with demo.at(self.morning - timedelta(days=21)):
            for _ in range(count):
                identity = {**_identity(demo.rng), "audience": "adult"}
                created = demo.post("/api/v1/candidates", identity, demo.platform)["id"]
                answers += positioning_answers(demo.rng, demo.ref, created, SHOWCASE_LEVELS)
                ids.append(created)
            demo.post("/api/v1/answers", {"answers": answers}, demo.platform)
        demo.totals["candidates"] += count
        demo.totals["answers"] += len(answers)
        return ids

    def _answer(
        self, course: dict[str, Any], results: list[str], share: float, minutes: int
    ) -> None:
        """Answer the first `share` of the challenges, cycling through `results`."""
        challenges = course["challenges"]
        count = max(1, -(-len(challenges) * int(share * 100) // 100))
        with self.demo.at(self.morning + timedelta(minutes=minutes)):
            for index, item in enumerate(challenges[:count]):
                self.demo.post(f"/api/v1/courses/{course['id']}/answers",
                               {"challenge": item["challenge"], "result": results[index % len(results)],
                                "time_spent_ms": 60_000}, self.demo.platform)  # fmt: skip
        self.demo.totals["answers"] += count


def _needs(index: int) -> dict[str, Any]:
    """Accommodations without drawing from the PRNG (same seed, same history otherwise)."""
    needs: dict[str, Any] = {"extra_time_percent": TIERS_TEMPS} if index % 5 == 1 else {}
    return {**needs, "accessibility": True} if index % 7 == 3 else needs


def run_demo(
    config: Config, candidates: int = 300, seed: int = 2026, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    """Several years of certification across a few centres; returns counts and sample codes."""
    demo = Demo(config, seed)
    centres = demo.centres()
    slots = [(year, day, audience) for year in YEARS for day, audience in SESSION_PLAN]
    slots = [s for s in slots if date(s[0], *map(int, s[1].split("-"))) < clock.now().date()]
    per_slot = max(1, candidates // len(slots))
    for index, (year, day, audience) in enumerate(slots):
        when = datetime(year, *map(int, day.split("-")), 8, tzinfo=UTC)
        remaining = candidates - demo.totals["candidates"]
        count = remaining if index == len(slots) - 1 else min(per_slot, remaining)
        if count <= 0:
            break
        group = demo.candidates(count, audience, when)
        demo.session(centres[index % len(centres)], when.date(), audience, group)
    Showcase(demo, centres[-1]).run()
    echo(
        f"demo: {demo.totals['centres']} centres, {demo.totals['sessions']} sessions, "
        f"{demo.totals['candidates']} candidates, {demo.totals['answers']} answers, "
        f"{demo.totals['courses']} courses, {demo.totals['certificates']} certificates "
        f"({demo.totals['cancelled']} cancelled)"
    )
    for code in demo.codes[-3:] + demo.codes[:2]:
        echo(f"  verification code: {code}  ->  {config.public_url}/v/{code}")
    return {**demo.totals, "sample_codes": demo.codes[-3:] + demo.codes[:2]}

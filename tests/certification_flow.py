"""Drive the certification lifecycle through HTTP, step by step, for tests and checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.domain import clock
from tests.conftest import make_token
from tests.helpers import climb, register

SESSION_DAY = "2026-11-24"
MORNING = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)  # 09:30 in Paris


class Flow:
    """One centre, its staff token, and helpers to move sessions along."""

    def __init__(self, app: Any, client: Any, admin: dict[str, str]):
        self.app, self.client, self.admin = app, client, admin
        self.platform = make_token(app, "events:append")
        centre = self.post(
            "/api/v1/centres",
            {"name": "Lycée Victor Hugo", "kind": "school", "city": "Rennes"},
            admin,
        )
        self.centre = centre["id"]
        self.staff = {
            "Authorization": f"Bearer {self.post(f'/api/v1/centres/{self.centre}/tokens', {}, admin)['token']}"
        }

    def post(self, path: str, body: Any, headers: dict[str, str], status: int = 201) -> Any:
        response = self.client.post(path, json=body, headers=headers)
        assert response.status_code == status, (path, response.get_data(as_text=True))
        return response.get_json()

    def eligible_candidate(
        self, levels: dict[str, int] | None = None, audience: str = "adult"
    ) -> str:
        levels = levels or {"1.1": 2, "1.2": 2, "2.1": 3, "3.1": 1, "4.1": 2, "5.1": 1}
        candidate = register(self.client, self.platform, audience=audience)["id"]
        answers = [a for code, level in levels.items() for a in climb(candidate, code, level)]
        self.post("/api/v1/answers", {"answers": answers}, self.platform)
        return candidate

    def session(self, day: str = SESSION_DAY, audience: str = "adult", status: int = 201) -> Any:
        body = {"date": day, "time": "09:00", "address": "2 rue de Brest, Rennes", "room": "B12",
                "examiner": "Mme Laurent", "audience": audience}  # fmt: skip
        with clock.frozen_at(MORNING - timedelta(days=14)):  # scheduled ahead, whatever today is
            return self.post(f"/api/v1/centres/{self.centre}/sessions", body, self.staff, status)

    def enrol(self, session: str, candidate: str, status: int = 201) -> Any:
        return self.post(
            f"/api/v1/sessions/{session}/candidates", {"candidate": candidate}, self.staff, status
        )

    def start(self, session: str, candidate: str, status: int = 201) -> Any:
        with clock.frozen_at(MORNING):
            return self.post(
                f"/api/v1/sessions/{session}/courses",
                {"candidate": candidate},
                self.platform,
                status,
            )

    def answer_all(self, course: dict[str, Any], wrong: int = 0, result: str = "ok") -> None:
        """Answer every challenge; the first `wrong` ones incorrectly."""
        with clock.frozen_at(MORNING.replace(minute=45)):
            for index, item in enumerate(course["challenges"]):
                self.post(
                    f"/api/v1/courses/{course['id']}/answers",
                    {"challenge": item["challenge"], "result": "ko" if index < wrong else result,
                     "time_spent_ms": 30_000},
                    self.platform,
                )  # fmt: skip

    def finalize(
        self, session: str, report: dict[str, Any] | None = None, status: int = 201
    ) -> Any:
        return self.post(
            f"/api/v1/sessions/{session}/finalization", report or {}, self.staff, status
        )

    def publish(self, session: str) -> list[str]:
        self.post(f"/api/v1/sessions/{session}/review", {}, self.admin)
        with clock.frozen_at(datetime(2026, 12, 1, 10, tzinfo=UTC)):
            return self.post(f"/api/v1/sessions/{session}/publication", {}, self.admin)["codes"]

    def started(self, levels: dict[str, int] | None = None) -> tuple[str, str, dict[str, Any]]:
        """An eligible candidate enrolled in a new session, course started: (candidate, session, course)."""
        candidate = self.eligible_candidate(levels)
        session = self.session()["id"]
        self.enrol(session, candidate)
        return candidate, session, self.start(session, candidate)

    def certified(self) -> tuple[str, str, dict[str, Any]]:
        """A candidate through the whole lifecycle: returns (candidate, code, course)."""
        candidate, session, course = self.started()
        self.answer_all(course)
        self.finalize(session)
        (code,) = self.publish(session)
        return candidate, code, course

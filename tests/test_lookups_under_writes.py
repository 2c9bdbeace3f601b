"""In runner mode a certificate lookup does not wait for the runner to reach the log's head.

The public view is folded from the certificate's own signed events, read from the log
and checked against the read model only up to the model's position; waiting for the
head would make every lookup wait for the runner's next page while answers are being
written (bench/national.py measured 503s and half-second lookups). A client that needs
its own write still sends `X-Min-Seq` and waits for it, bounded.
"""

from __future__ import annotations

from dataclasses import replace

from ledger.api import create_app
from ledger.config import Config
from ledger.demo import run_demo
from ledger.projections.runner import head, position
from tests.conftest import initialized, make_token


def test_a_lookup_answers_while_the_runner_is_behind(config: Config) -> None:
    initialized(config)
    code = run_demo(config, candidates=8, echo=lambda *_: None)["sample_codes"][0]
    app = create_app(replace(config, projections="runner", read_max_wait_ms=200))
    try:
        client = app.test_client()
        token = make_token(app, "events:append")
        registered = client.post(
            "/api/v1/candidates", json={"first_name": "Inès", "last_name": "Morel",
            "birth_date": "1990-01-02", "birth_place": "Lyon"}, headers=token,
        )  # fmt: skip
        assert registered.status_code == 201
        db = app.extensions["ledger"].ledger.db
        assert position(db, "certificates") < head(db)  # nobody applied the registration
        for path in (f"/api/v1/certificates/{code}", f"/v/{code}"):
            found = client.get(path)
            assert found.status_code == 200, found.get_data(as_text=True)[:300]
        page = client.get(f"/api/v1/certificates/{code}").get_json()
        assert page["code"] == code and page["integrity"]["verified"] is True
        assert position(db, "certificates") < head(db)  # and the worker applied nothing
    finally:
        app.extensions["ledger"].ledger.close()

"""schemathesis over the whole OpenAPI document, every check enabled, against the WSGI app.

A bounded run in the suite (FUZZ_SECONDS, default 30); `make fuzz` runs it
longer. The run must end with no server error, no response outside the
document (status, media type, schema, headers) and no accepted invalid input;
the number of cases run is printed in the terminal summary.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.engine import events, from_schema
from schemathesis.transport.wsgi import WSGITransport

from ledger.config import Config, suite_setting
from tests.conftest import SUMMARY, initialized

# Schema-valid requests a domain rule refuses (a blank name, a tree size the log
# has not reached, a float where an integer is meant) are 422 by design.
ACCEPTED = ["2XX", "401", "403", "404", "409", "410", "422", "429"]
SOCKET_ONLY = ("max_redirects", "verify", "cert", "proxies")


@pytest.fixture
def in_process_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """schemathesis 4.32 hands socket-only options to werkzeug on its auth probes; drop them."""
    send = WSGITransport.send

    def without_socket_options(self: Any, case: Any, *, session: Any = None, **kwargs: Any) -> Any:
        if session is None:
            for name in SOCKET_ONLY:
                kwargs.pop(name, None)
        return send(self, case, session=session, **kwargs)

    monkeypatch.setattr(WSGITransport, "send", without_socket_options)


def test_schemathesis_finds_no_server_error_and_no_violation(
    tmp_path: Path, request: pytest.FixtureRequest, in_process_probes: None
) -> None:
    from ledger.api import create_app

    config = Config.from_env(
        database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        keys_dir=tmp_path / "keys",
        master_key="",
    )
    initialized(config)
    app = create_app(config)
    _, token = app.extensions["ledger"].tokens.create(["admin"], label="fuzz")
    budget = int(suite_setting("FUZZ_SECONDS"))
    settings = schemathesis.Config.from_dict(
        {
            "checks": {
                "enabled": True,
                "positive_data_acceptance": {"expected-statuses": ACCEPTED},
            },
            "generation": {"mode": "all"},
            "cache": {"enabled": False},  # every run starts afresh, nothing left in the tree
            "headers": {"Authorization": f"Bearer {token}"},
            "max-time": budget,
            "seed": int(suite_setting("FUZZ_SEED")),
        }
    )
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=settings)
    started = time.monotonic()
    cases, server_errors, operations = 0, 0, set()
    failures: collections.Counter[tuple[str, str]] = collections.Counter()
    examples: dict[tuple[str, str], str] = {}
    crashes: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            operations.add(recorder.label)
            cases += len(recorder.cases)
            for interaction in recorder.interactions.values():
                if interaction.response is not None and interaction.response.status_code >= 500:
                    server_errors += 1
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.status.value == "failure":
                        key = (recorder.label, check.name)
                        failures[key] += 1
                        interaction = recorder.interactions.get(case_id)
                        examples.setdefault(key, _describe(check, interaction))
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            crashes.append(repr(getattr(event, "value", None) or event.exception)[:300])
    app.extensions["ledger"].ledger.close()
    elapsed = time.monotonic() - started
    request.config.stash.setdefault(SUMMARY, []).append(
        f"schemathesis: {cases} cases on {len(operations)} operations in {elapsed:.0f} s, "
        f"{server_errors} server errors, {sum(failures.values())} check failures"
    )
    assert cases > 0
    assert server_errors == 0
    assert crashes == [], crashes[:3]
    assert not failures, "\n".join(f"{n} × {k}: {examples[k]}" for k, n in failures.items())


def _describe(check: Any, interaction: Any) -> str:
    response = getattr(interaction, "response", None)
    reason = str(check.failure_info.failure)[:300] if check.failure_info else ""
    if response is None:
        return reason
    return f"{reason} -> {response.status_code} {(response.content or b'')[:200]!r}"

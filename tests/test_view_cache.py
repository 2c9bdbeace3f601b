"""A certificate's cached public view survives the log's moves that cannot change it.

Under the national write load the head moves every few milliseconds; clearing every
view at each move made every lookup recompute its view. Events no view reads
(registrations, answers, courses) now drop nothing; a certificate's own event drops
that certificate alone; a key, an erasure or a type the cache does not know drops
everything. Writes come from another `Ledger`, as from another node.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ledger.api import create_app
from ledger.config import Config
from ledger.demo import run_demo
from ledger.domain.referential import load_referential
from ledger.services import verification
from ledger.services.candidates import CandidateService
from ledger.services.certification import CertificationService
from ledger.services.verification import PublicViews
from ledger.store.application import Ledger
from tests.conftest import initialized


@pytest.fixture
def served(config: Config, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[str]]]:
    monkeypatch.setattr(PublicViews, "FRESHNESS_S", 0.0)  # read the head at every lookup
    initialized(config)
    codes = run_demo(config, candidates=2, echo=lambda *_: None)["sample_codes"]  # 5 valid
    app = create_app(config)
    yield app, codes
    app.extensions["ledger"].ledger.close()


@pytest.fixture
def elsewhere(config: Config) -> Iterator[Ledger]:
    other = Ledger(config)
    yield other
    other.close()


def _views(app: Any) -> PublicViews:
    return app.extensions["ledger"].views


def _registered(ledger: Ledger) -> str:
    candidate, _ = CandidateService(ledger, load_referential()).register({"first_name": "Inès"})
    return candidate.subject


def test_events_no_view_reads_keep_every_view(served: Any, elsewhere: Ledger) -> None:
    app, codes = served
    with app.test_request_context():
        before = {code: _views(app).get(code) for code in codes}
        _registered(elsewhere)
        assert all(_views(app).get(code) is view for code, view in before.items())
        assert _views(app)._seen_head == elsewhere.recorder.max_notification_id()


def test_a_cancellation_elsewhere_drops_that_certificate_alone(
    served: Any, elsewhere: Ledger, config: Config
) -> None:
    app, codes = served
    cancelled, kept = codes[0], codes[1]
    with app.test_request_context():
        views = _views(app)
        before = views.get(kept)
        assert views.get(cancelled)["status"] == "valid"
        certification = CertificationService(elsewhere, load_referential(), config)
        certification.cancel_certificate(cancelled, "Fraude constatée", "fraud")
        assert views.get(cancelled)["status"] == "cancelled"
        assert views.get(kept) is before


def test_an_erasure_drops_every_view(served: Any, elsewhere: Ledger) -> None:
    app, codes = served
    with app.test_request_context():
        before = _views(app).get(codes[0])
        subject = _registered(elsewhere)
        CandidateService(elsewhere, load_referential()).erase(subject, "consent-withdrawn")
        after = _views(app).get(codes[0])
        assert after is not before and after == before


def test_a_head_that_went_back_drops_every_view(served: Any, elsewhere: Ledger) -> None:
    app, codes = served
    with app.test_request_context():
        before = _views(app).get(codes[0])
        _registered(elsewhere)
        assert _views(app).get(codes[0]) is before
        latest = elsewhere.recorder.max_notification_id()
        with elsewhere.db.write() as cur:  # an operator deletes the last event
            cur.execute("DELETE FROM ledger_events WHERE seq = ?", (latest,))
        assert _views(app).get(codes[0]) is not before


def test_a_view_computed_while_its_certificate_changed_is_not_kept(
    served: Any, elsewhere: Ledger, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lookup computes a view; meanwhile the certificate is cancelled and another lookup
    (another thread) notices: the view computed before must not be cached as current."""
    app, codes = served
    code = codes[0]
    computed = verification.public_certificate

    def racing(*args: Any, **kwargs: Any) -> Any:
        view = computed(*args, **kwargs)  # from the events before the cancellation
        certification = CertificationService(elsewhere, load_referential(), config)
        certification.cancel_certificate(code, "Fraude constatée", "fraud")
        monkeypatch.setattr(verification, "public_certificate", computed)
        _views(app).get(codes[1])  # another lookup sees the cancellation first
        return view

    monkeypatch.setattr(verification, "public_certificate", racing)
    with app.test_request_context():
        assert _views(app).get(code)["status"] == "valid"  # what that lookup computed
        assert _views(app).get(code)["status"] == "cancelled"

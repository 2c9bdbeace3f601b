"""After publication: late issue reports, rescoring under new rules, the certificate's honest history.

A legacy history is built as older code wrote it: the course's answers, end and
`CourseScored` (a per-mille result naming no rules) are appended through the
recorder with exactly their old payloads, so nothing of today's code shapes them.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger import crypto
from ledger.cli import main
from ledger.domain import clock
from ledger.domain.scoring import LEGACY_RULES, RULES, RULES_VERSION, score
from ledger.projections.runner import dump, rebuild
from ledger.services import certification
from ledger.store.mapper import LedgerStoredEvent
from tests.certification_flow import MORNING, Flow

LATER = datetime(2027, 1, 10, 9, tzinfo=UTC)
RESCORED = "certification.CertificateRescored"


@pytest.fixture
def flow(app, client, admin) -> Flow:
    return Flow(app, client, admin)


def _published(flow: Flow, wrong: int = 0) -> tuple[str, str, dict[str, Any]]:
    """A certified candidate whose first `wrong` answers were wrong: (candidate, code, course)."""
    candidate, session, course = flow.started()
    flow.answer_all(course, wrong=wrong)
    flow.finalize(session)
    (code,) = flow.publish(session)
    return candidate, code, course


def _ledger(flow: Flow) -> Any:
    return flow.app.extensions["ledger"].ledger


def _events(flow: Flow, type_name: str) -> list[Any]:
    return _ledger(flow).recorder.iter_envelopes_of_type(type_name)


def _lines(flow: Flow) -> list[str]:
    return [env.to_json_line() for env in _ledger(flow).recorder.iter_envelopes()]


def _public(flow: Flow, code: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    with clock.frozen_at(LATER):
        return flow.client.get(f"/api/v1/certificates/{code}", headers=headers or {}).get_json()


def _page(flow: Flow, code: str, lang: str, headers: dict[str, str] | None = None) -> str:
    with clock.frozen_at(LATER):
        return flow.client.get(f"/v/{code}?lang={lang}", headers=headers or {}).get_data(
            as_text=True
        )


def _late_report(flow: Flow, code: str, challenges: list[str], status: int = 201) -> Any:
    body = {"neutralize": challenges, "reason": "écran figé pendant l'épreuve"}
    with clock.frozen_at(LATER):
        return flow.post(f"/api/v1/certificates/{code}/rescoring", body, flow.admin, status)


# --- late issue reports ----------------------------------------------------------------


def test_a_late_report_on_a_correct_answer_keeps_it_and_leaves_the_certificate(
    flow: Flow,
) -> None:
    _, code, course = _published(flow)
    before = _public(flow, code)
    correct = course["challenges"][0]["challenge"]
    answer = _late_report(flow, code, [correct])
    assert answer["kept"] == [correct] and answer["neutralized"] == []
    assert answer["certificate_action"] == "unchanged" and answer["unchanged"] is True
    assert answer["result"]["pix_score"] == before["pix_score"]
    assert _events(flow, RESCORED) == []
    after = _public(flow, code)
    assert [h["event"] for h in after["history"]] == ["issued"]
    assert after["pix_score"] == before["pix_score"]
    (scored,) = [e for e in _events(flow, "certification.CourseScored") if e.data["kept"]]
    assert [k["challenge"] for k in scored.data["kept"]] == [correct]
    assert scored.data["neutralized"] == []  # the report is on record, the answer counts
    count = len(_lines(flow))
    again = _late_report(flow, code, [correct])  # the same report again: nothing new recorded
    assert again["unchanged"] is True and again["kept"] == [correct]
    assert len(_lines(flow)) == count


def test_a_late_report_on_a_wrong_answer_neutralizes_it_and_the_history_says_why(
    flow: Flow,
) -> None:
    candidate, code, course = _published(flow, wrong=2)
    before = _public(flow, code)
    wrong, correct = course["challenges"][0]["challenge"], course["challenges"][2]["challenge"]
    answer = _late_report(flow, code, [wrong, correct])
    assert answer["neutralized"] == [wrong] and answer["kept"] == [correct]
    assert answer["certificate_action"] == "rescored" and answer["unchanged"] is False
    assert answer["result"]["rules"] == RULES_VERSION
    count = len(_lines(flow))
    assert _late_report(flow, code, [wrong, correct]) == answer  # the same report again
    assert len(_lines(flow)) == count
    (event,) = _events(flow, RESCORED)
    assert (event.data["cause"], event.data["rules"]) == ("late-issue-report", RULES_VERSION)
    after = _public(flow, code, flow.admin)
    entry = after["history"][-1]
    assert entry == {
        "event": "rescored", "seq": event.seq, "on": "2027-01-10",
        "reason": "écran figé pendant l'épreuve", "cause": "late-issue-report",
        "category": "late-issue-report",
        "rules": RULES_VERSION, "rules_description": RULES[RULES_VERSION],
        "previous_pix_score": before["pix_score"], "pix_score": after["pix_score"],
    }  # fmt: skip
    public = {k: v for k, v in entry.items() if k != "reason"}
    assert _public(flow, code)["history"][-1] == public  # the text stays private
    french = _page(flow, code, "fr")
    assert "signalement tardif d&#39;un problème pendant l&#39;épreuve" in french
    assert f"Score : {before['pix_score']} → {after['pix_score']} pix" in french
    assert f"Règles de calcul v{RULES_VERSION} — arithmétique nationale" in french
    assert "écran figé" not in french
    assert "écran figé pendant l&#39;épreuve" in _page(flow, code, "fr", flow.admin)
    english = _page(flow, code, "en")
    assert "rescored: late report of an issue during the test" in english
    assert f"Score: {before['pix_score']} → {after['pix_score']} pix" in english
    assert f"Scoring rules v{RULES_VERSION} — {RULES[RULES_VERSION]}" in english
    with clock.frozen_at(LATER):
        mine = flow.client.get(
            f"/api/v1/candidates/{candidate}/certifications", headers=flow.admin
        ).get_json()
    assert mine["certificates"][0]["history"] == after["history"]  # the page's entries
    st = flow.app.extensions["ledger"]
    live = dump(st.ledger.db, st.projections)
    rebuild(st.ledger.db, st.projections)
    assert dump(st.ledger.db, st.projections) == live  # the read model is the log's, replayed


def test_a_late_report_that_leaves_too_few_challenges_cancels(flow: Flow) -> None:
    _, session, course = flow.started()
    wrong = len(course["challenges"]) * 2 // 5  # a 60% rate: validated until they are neutralized
    flow.answer_all(course, wrong=wrong)
    flow.finalize(session)
    (code,) = flow.publish(session)
    answer = _late_report(flow, code, [c["challenge"] for c in course["challenges"][:wrong]])
    assert answer["result"]["status"] == "cancelled" and answer["certificate_action"] == "cancelled"
    after = _public(flow, code)
    assert after["status"] == "cancelled" and after["integrity"]["verified"]
    assert [h["event"] for h in after["history"]] == ["issued", "cancelled"]


def test_late_reports_refuse_unknown_challenges_and_cancelled_certificates(flow: Flow) -> None:
    _, code, _ = _published(flow)
    body = _late_report(flow, code, ["no-such-challenge"], status=422)
    assert body["type"] == "/problems/unassigned-challenge"
    body = _late_report(flow, code, [""], status=422)
    assert "neutralize" in json.dumps(body)
    flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude"}, flow.admin)
    body = _late_report(flow, code, ["x"], status=409)
    assert body["type"] == "/problems/conflict"


# --- rescoring under new rules -------------------------------------------------------------


def _legacy_stored(course: dict[str, Any], version: int, type_name: str, payload: dict) -> Any:
    return LedgerStoredEvent(
        originator_id=uuid.UUID(course["id"]), originator_version=version, topic=type_name,
        state=crypto.canonical_json(payload),
        time=clock.format_time(clock.now()), event_id=str(uuid.uuid4()),
    )  # fmt: skip


def _legacy_result(flow: Flow, course_id: str, downgrade: bool) -> dict[str, Any]:
    """What the legacy rules recorded: per-mille rate, no rules, no counts.

    Here they validated one competence a level lower than today's rules do
    (the floored per-mille rate read 79.5% in the lower band), or, with
    `downgrade` false, a validated result of 0 pix, which the current rules
    never give.
    """
    loaded = flow.app.extensions["ledger"].certification.course(course_id)
    today = score(loaded.evidence(set()), max_level=5).to_dict()
    competences = [
        {k: c[k] for k in ("code", "outcome", "level", "pix")} for c in today["competences"]
    ]
    if downgrade:
        competences[0].update(outcome="downgraded", level=competences[0]["level"] - 1,
                              pix=competences[0]["pix"] - 8)  # fmt: skip
    else:
        competences = [{**c, "outcome": "uncertified", "level": 0, "pix": 0} for c in competences]
    return {
        "status": "validated", "reproducibility_permille": 795 if downgrade else 500,
        "competences": competences, "pix_score": sum(c["pix"] for c in competences),
        "reasons": [],
    }  # fmt: skip


def _legacy_course(
    flow: Flow,
    result: str = "ok",
    downgrade: bool = True,
    *,
    answered: int | None = None,
    legacy_result: dict[str, Any] | None = None,
    neutralize_first: bool = False,
    abort: str | None = None,
    publish: bool = True,
) -> tuple[str, str | None, str]:
    """A course answered, ended and scored by the legacy code: (course, code, session).

    `answered`: only the first ones are answered and the test was aborted, the
    examiner report (also written by the legacy code) giving `abort` as the reason.
    `neutralize_first`: an issue report neutralized the first challenge (answered).
    Published as the older code did, unless `publish` is false.
    """
    candidate, session, course = flow.started()
    ledger = _ledger(flow)
    challenges = course["challenges"][: answered if answered is not None else None]
    events, version = [], 1
    with clock.frozen_at(MORNING + timedelta(minutes=20)):
        for item in challenges:
            version += 1
            events.append(_legacy_stored(course, version, "certification.ChallengeAnswered", {
                "challenge": item["challenge"], "result": result, "time_spent_ms": 30_000,
                "answered_at": clock.format_time(clock.now()),
            }))  # fmt: skip
        end = "completed" if answered is None else "aborted"
        events.append(
            _legacy_stored(course, version + 1, "certification.CourseEnded", {"reason": end})
        )
        ledger.recorder.insert_events(events)
        scored = {
            "basis": "completion", "reason": "all challenges answered",
            "neutralized": [c["challenge"] for c in challenges[:1] if neutralize_first],
            "fraud_confirmed": False,
            "cancelled_by_operator": False,
            "result": legacy_result or _legacy_result(flow, course["id"], downgrade),
        }  # fmt: skip
        ledger.recorder.insert_events(
            [_legacy_stored(course, version + 2, "certification.CourseScored", scored)]
        )
        if abort is not None:
            finalized = {"absent": [], "incidents": None, "issue_reports": [],
                         "aborts": [{"candidate": candidate, "reason": abort}]}  # fmt: skip
            stream = {"id": session}
            at = len(ledger.recorder.stream_envelopes(session)) + 1
            ledger.recorder.insert_events(
                [_legacy_stored(stream, at, "certification.SessionFinalized", finalized)]
            )
    if abort is None:
        flow.finalize(session)
    if not publish:
        return course["id"], None, session
    with pytest.MonkeyPatch.context() as older_code:  # published before the rules changed
        older_code.setattr(certification, "RULES_VERSION", LEGACY_RULES)
        codes = flow.publish(session)
    return course["id"], (codes or [None])[0], session


def _rescored(flow: Flow, course: str, status: int = 201) -> dict[str, Any]:
    with clock.frozen_at(LATER):
        return flow.post(
            f"/api/v1/courses/{course}/rescoring", {"reason": "règles v2"}, flow.admin, status
        )


def _latest_scored(flow: Flow, course: str) -> dict[str, Any]:
    return [e for e in _events(flow, "certification.CourseScored") if e.stream == course][-1].data


def test_publication_refuses_results_scored_under_older_rules(flow: Flow) -> None:
    course, _, session = _legacy_course(flow, publish=False)
    flow.post(f"/api/v1/sessions/{session}/review", {}, flow.admin)
    refused = flow.post(f"/api/v1/sessions/{session}/publication", {}, flow.admin, 409)
    assert refused["outdated"] == [course]
    assert _rescored(flow, course)["result"]["rules"] == RULES_VERSION
    with clock.frozen_at(LATER):
        assert (
            len(
                flow.post(f"/api/v1/sessions/{session}/publication", {}, flow.admin)["certificates"]
            )
            == 1
        )


def test_a_rules_rescore_keeps_a_correct_answer_an_older_report_neutralized(flow: Flow) -> None:
    """Rules 1 let an issue report neutralize a correct answer; rules 2 keep the answer."""
    course, code, _ = _legacy_course(flow, neutralize_first=True)
    first = _latest_scored(flow, course)["neutralized"][0]
    answer = _rescored(flow, course)
    scored = _latest_scored(flow, course)
    assert scored["neutralized"] == [] and [k["challenge"] for k in scored["kept"]] == [first]
    assert sum(c["neutralized"] for c in answer["result"]["competences"]) == 0
    assert answer["certificate"] == code


def test_a_rules_rescore_reads_the_examiner_report_abort_reason(flow: Flow) -> None:
    """A technical abort scored by rules 1 counted the unanswered challenges wrong (rejected)."""
    legacy = {"status": "rejected", "reproducibility_permille": 300, "competences": [],
              "pix_score": 0, "reasons": ["reproducibility rate 300 per mille, below 500"]}  # fmt: skip
    course, code, _ = _legacy_course(
        flow, result="ko", answered=4, legacy_result=legacy, abort="technical"
    )
    assert code is None
    answer = _rescored(flow, course)
    assert answer["result"]["status"] == "cancelled", answer["result"]
    scored = _latest_scored(flow, course)
    assert scored["abort_reason"] == "technical" and scored["basis"] == "rules"
    assert {n["source"] for n in scored["neutralizations"]} == {"technical-abort"}


def test_a_course_the_current_rules_validate_gets_its_certificate_after_publication(
    flow: Flow,
) -> None:
    legacy = {"status": "rejected", "reproducibility_permille": 495, "competences": [],
              "pix_score": 0, "reasons": ["reproducibility rate 495 per mille, below 500"]}  # fmt: skip
    course, code, _ = _legacy_course(flow, legacy_result=legacy)
    assert code is None  # rejected, so published without a certificate
    answer = _rescored(flow, course)
    assert answer["result"]["status"] == "validated"
    assert answer["certificate_action"] == "issued"
    count = len(_lines(flow))
    assert _rescored(flow, course) == answer and len(_lines(flow)) == count
    public = _public(flow, answer["certificate"])
    assert public["status"] == "valid" and public["integrity"]["verified"]


def test_a_late_report_on_a_result_of_older_rules_asks_for_a_rules_rescore_first(
    flow: Flow,
) -> None:
    course, code, _ = _legacy_course(flow)
    view = flow.client.get(f"/api/v1/courses/{course}", headers=flow.admin).get_json()
    challenge = view["challenges"][0]["challenge"]
    problem = _late_report(flow, code, [challenge], status=409)
    assert "rescore it under the current rules first" in problem["detail"]


def test_a_legacy_result_is_rescored_under_the_current_rules_once(
    flow: Flow, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    course, code, _ = _legacy_course(flow)
    issued = _public(flow, code)
    past = _lines(flow)
    body = {"reason": "règles de calcul nationales"}
    with clock.frozen_at(LATER):
        first = flow.post(f"/api/v1/courses/{course}/rescoring", body, flow.admin)
    assert first["rescored"] and first["previous_rules"] == "1"
    assert first["result"]["rules"] == RULES_VERSION and first["result"]["status"] == "validated"
    assert (first["certificate"], first["certificate_action"]) == (code, "rescored")
    assert _lines(flow)[: len(past)] == past  # past events byte-identical
    added = [json.loads(line) for line in _lines(flow)[len(past) :]]
    assert [e["type"] for e in added] == ["certification.CourseScored", RESCORED]
    assert added[0]["data"]["basis"] == "rules"
    assert added[0]["data"]["result"]["rules"] == RULES_VERSION
    assert (added[1]["data"]["cause"], added[1]["data"]["rules"]) == ("rules-change", "2")
    with clock.frozen_at(LATER):
        again = flow.post(f"/api/v1/courses/{course}/rescoring", body, flow.admin)
    assert again == first  # idempotent: the same answer, read back from the log
    assert len(_lines(flow)) == len(past) + 2  # and nothing more recorded
    after = _public(flow, code)
    assert after["integrity"]["verified"] and after["pix_score"] == issued["pix_score"] + 8
    entry = after["history"][-1]
    assert (entry["cause"], entry["rules"], entry["previous_pix_score"], entry["pix_score"]) == (
        "rules-change", "2", issued["pix_score"], after["pix_score"],
    )  # fmt: skip
    assert "nouvelles règles de calcul" in _page(flow, code, "fr")
    assert "rescored: new scoring rules" in _page(flow, code, "en")
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(tmp_path / "keys"))
    audit = CliRunner().invoke(main, ["audit", "verify"], catch_exceptions=False)
    assert audit.exit_code == 0 and audit.stdout.startswith("OK:"), audit.output


def _restarted(config: Any) -> Any:
    """A second application on the same database: nothing of the first one's memory."""
    from ledger.api import create_app

    app = create_app(config)
    app.config["TESTING"] = True
    return app


def test_a_repeated_rescoring_answers_the_same_after_a_restart(flow: Flow, config: Any) -> None:
    course, _, _ = _legacy_course(flow)
    first = _rescored(flow, course)
    wrong_code, wrong_course = _published(flow, wrong=2)[1:]
    wrong = wrong_course["challenges"][0]["challenge"]
    report = _late_report(flow, wrong_code, [wrong])
    assert report["neutralized"] == [wrong] and first["rescored"]
    count = len(_lines(flow))
    app = _restarted(config)
    try:
        client = app.test_client()
        with clock.frozen_at(LATER):
            again = client.post(
                f"/api/v1/courses/{course}/rescoring", json={"reason": "autre"}, headers=flow.admin
            )
            late = client.post(
                f"/api/v1/certificates/{wrong_code}/rescoring",
                json={"neutralize": [wrong], "reason": "écran figé pendant l'épreuve"},
                headers=flow.admin,
            )
    finally:
        app.extensions["ledger"].ledger.close()
    assert (again.status_code, again.get_json()) == (201, first)
    assert (late.status_code, late.get_json()) == (201, report)
    assert len(_lines(flow)) == count


def test_a_report_asking_something_else_is_not_taken_for_a_repeat(flow: Flow) -> None:
    _, code, course = _published(flow, wrong=2)
    first, second = (c["challenge"] for c in course["challenges"][:2])
    _late_report(flow, code, [first])
    count = len(_lines(flow))
    answer = _late_report(flow, code, [second])
    assert answer["neutralized"] == [second] and len(_lines(flow)) == count + 2
    both = _late_report(flow, code, [first, second])  # first was granted by an earlier report
    assert both["neutralized"] == [] and both["unchanged"] is True
    assert len(_lines(flow)) == count + 2


def test_a_legacy_result_the_current_rules_refuse_cancels_its_certificate(flow: Flow) -> None:
    course, code, _ = _legacy_course(flow, result="ko", downgrade=False)
    assert _public(flow, code)["pix_score"] == 0  # validated with 0 pix: what v2 forbids
    with clock.frozen_at(LATER):
        answer = flow.post(
            f"/api/v1/courses/{course}/rescoring", {"reason": "règles v2"}, flow.admin
        )
    assert (
        answer["result"]["status"] == "rejected" and answer["result"]["reproducibility_rate"] == 0
    )
    assert answer["certificate_action"] == "cancelled"
    count = len(_lines(flow))
    assert _rescored(flow, course) == answer and len(_lines(flow)) == count
    after = _public(flow, code)
    assert after["status"] == "cancelled" and after["integrity"]["verified"]
    assert after["status_reason"] is None and after["status_category"] == "rescoring"
    private = _public(flow, code, flow.admin)["status_reason"]
    assert private.startswith(f"rescored under scoring rules {RULES_VERSION} as ")


def test_a_course_scored_under_the_current_rules_is_left_alone(flow: Flow) -> None:
    _, _, course = _published(flow)
    count = len(_lines(flow))
    answer = flow.post(
        f"/api/v1/courses/{course['id']}/rescoring", {"reason": "x"}, flow.admin, status=200
    )
    assert not answer["rescored"] and answer["certificate"] is None
    assert len(_lines(flow)) == count
    flow.post(f"/api/v1/courses/{uuid.uuid4()}/rescoring", {"reason": "x"}, flow.admin, 404)
    flow.post(f"/api/v1/courses/{course['id']}/rescoring", {"reason": ""}, flow.admin, 422)
    flow.post(f"/api/v1/courses/{course['id']}/rescoring", {"reason": "x"}, flow.staff, 403)


def test_the_cli_rescores_every_outdated_course(
    flow: Flow, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _legacy_course(flow)
    _published(flow)  # already under the current rules
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(tmp_path / "keys"))
    runner = CliRunner()

    def run(*args: str) -> Any:
        with clock.frozen_at(LATER):
            return runner.invoke(main, list(args), catch_exceptions=False)

    count = len(_lines(flow))
    dry = run("rescore", "--all-outdated", "--dry-run")
    assert dry.exit_code == 0 and len(_lines(flow)) == count, dry.output
    assert dry.stdout.startswith(f"would rescore 1 course(s) under scoring rules {RULES_VERSION}")
    assert "1 certificate(s) rescored" in dry.stdout
    done = run("rescore", "--all-outdated")
    assert done.exit_code == 0 and done.stdout.startswith("rescored 1 course(s)"), done.output
    assert len(_lines(flow)) == count + 2 and len(done.stdout.splitlines()) == 1
    assert run("rescore", "--all-outdated").stdout.startswith("rescored 0 course(s)")
    assert len(_lines(flow)) == count + 2
    missing = run("rescore")
    assert missing.exit_code == 2 and "--all-outdated" in missing.output
    assert run("audit", "verify").stdout.startswith("OK:")


def test_an_older_rescoring_without_rules_or_cause_reads_as_a_late_report(flow: Flow) -> None:
    """Rescorings written before causes and rules were recorded: late reports under rules 1."""
    _, code, _ = _published(flow)
    issued = _public(flow, code)
    certificate = flow.app.extensions["ledger"].certification.certificate(code)
    older = {"reason": "ancien motif", "rescored_on": "2027-01-02", "pix_score": 400,
             "competences": certificate.competences}  # fmt: skip
    stored = LedgerStoredEvent(
        originator_id=certificate.id, originator_version=certificate.version + 1, topic=RESCORED,
        state=crypto.canonical_json(older), time=clock.format_time(clock.now()),
        event_id=str(uuid.uuid4()),
    )  # fmt: skip
    _ledger(flow).recorder.insert_events([stored])
    reloaded = flow.app.extensions["ledger"].certification.certificate(code)
    assert reloaded.pix_score == 400
    after = _public(flow, code)
    assert after["integrity"]["verified"]
    assert {k: after["history"][-1][k] for k in ("cause", "rules", "previous_pix_score")} == {
        "cause": "late-issue-report", "rules": "1", "previous_pix_score": issued["pix_score"],
    }  # fmt: skip
    assert "Règles de calcul v1 — taux de reproductibilité en pour mille" in _page(flow, code, "fr")
    assert f"Scoring rules v1 — {RULES['1']}" in _page(flow, code, "en")

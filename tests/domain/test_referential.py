"""The shipped referential loads, round-trips, and bad referentials are refused."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest

from ledger.domain.data.generate_referential import generate
from ledger.domain.referential import (
    COMPETENCE_CODES,
    LATEST,
    Referential,
    ReferentialError,
    UnknownChallenge,
    UnknownCompetence,
    UnknownSkill,
    load_referential,
)


def shipped_json() -> dict[str, Any]:
    text = resources.files("ledger.domain.data").joinpath("referential-v1.json").read_text("utf-8")
    return json.loads(text)


@pytest.fixture(scope="module")
def ref() -> Referential:
    return load_referential()


def test_latest_version_is_shipped_and_cached(ref: Referential) -> None:
    assert ref.version == LATEST == "crcn-2026.1"
    assert load_referential("crcn-2026.1") is ref


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ReferentialError, match="crcn-1999"):
        load_referential("crcn-1999")


def test_round_trip_is_exact() -> None:
    data = shipped_json()
    assert Referential.from_dict(data).to_dict() == data
    assert json.dumps(Referential.from_dict(data).to_dict()) == json.dumps(data)


def test_generator_is_deterministic_and_matches_the_shipped_file() -> None:
    assert generate() == generate() == shipped_json()


def test_domains_and_competences_are_the_crcn_ones(ref: Referential) -> None:
    assert [d.code for d in ref.domains] == ["1", "2", "3", "4", "5"]
    assert tuple(c.code for c in ref.competences) == COMPETENCE_CODES
    assert ref.domains[2].title == "Création de contenu"
    assert ref.competence("1.1").title == "Mener une recherche et une veille d'information"
    assert ref.competence("4.3").title == "Protéger la santé, le bien-être et l'environnement"
    assert ref.competence("5.2").title == "Construire un environnement numérique"
    assert [c.code for c in ref.competences_of("2")] == ["2.1", "2.2", "2.3", "2.4"]
    assert all(c.code.startswith(c.domain + ".") for c in ref.competences)


def test_every_competence_has_two_to_four_tubes_and_difficulties_one_to_six(
    ref: Referential,
) -> None:
    for competence in ref.competences:
        tubes = {s.tube for s in ref.skills_of(competence.code)}
        assert 2 <= len(tubes) <= 4
        assert {s.difficulty for s in ref.skills_of(competence.code)} >= set(range(1, 7))


def test_some_tubes_have_gaps(ref: Referential) -> None:
    tops = {t.name: max(s.difficulty for s in ref.tube_skills(t.name)) for t in ref.tubes}
    assert min(tops.values()) < 8 and max(tops.values()) == 8
    assert ref.tube_skills("@moteur")[0].difficulty == 2


def test_each_skill_has_two_to_four_challenges(ref: Referential) -> None:
    data = shipped_json()
    for row in data["skills"]:
        challenges = ref.challenges_of(row["id"])
        assert 2 <= len(challenges) <= 4
        assert all(c.id.startswith("rec") and len(c.id) == 13 for c in challenges)
    assert len(json.dumps(data, ensure_ascii=False).encode()) < 200_000


def test_lookups(ref: Referential) -> None:
    skill = ref.skill("@recherche3")
    assert (skill.tube, skill.difficulty) == ("@recherche", 3)
    assert ref.competence_of_skill("@recherche3") == "1.1"
    assert [s.difficulty for s in ref.tube_skills("@recherche")] == list(range(1, 9))
    challenge = ref.challenges_of("@recherche3")[0]
    assert ref.challenge(challenge.id).skill == "@recherche3"
    assert skill in ref.skills_of("1.1") and skill not in ref.skills_of("1.2")


@pytest.mark.parametrize(
    ("lookup", "error", "arg"),
    [
        ("competence", UnknownCompetence, "6.1"),
        ("skill", UnknownSkill, "@recherche9"),
        ("challenge", UnknownChallenge, "recnothere000"),
        ("skills_of", UnknownCompetence, "1.4"),
        ("challenges_of", UnknownSkill, "@nope1"),
    ],
)
def test_unknown_ids_raise_referential_errors(
    ref: Referential, lookup: str, error: type[Exception], arg: str
) -> None:
    with pytest.raises(error, match=arg) as raised:
        getattr(ref, lookup)(arg)
    assert isinstance(raised.value, ReferentialError)
    assert not isinstance(raised.value, KeyError)


def broken(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(shipped_json())
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["skills"].append(dict(d["skills"][0])), "duplicate skill"),
        (lambda d: d["challenges"].append(dict(d["challenges"][0])), "duplicate challenge"),
        (
            lambda d: d["tubes"].append({"name": "@recherche", "competence": "1.2"}),
            "duplicate tube",
        ),
        (lambda d: d["competences"][0].update(domain="9"), "unknown domain"),
        (lambda d: d["tubes"][0].update(competence="1.9"), "unknown competence"),
        (lambda d: d["skills"][0].update(tube="@ailleurs"), "unknown tube"),
        (lambda d: d["challenges"][0].update(skill="@recherche42"), "unknown skill"),
        (
            lambda d: d["skills"].append(
                {"id": "@recherche9", "tube": "@recherche", "difficulty": 9}
            ),
            "not in 1..8",
        ),
        (
            lambda d: d["skills"].append(
                {"id": "@recherche0", "tube": "@recherche", "difficulty": 0}
            ),
            "not in 1..8",
        ),
        (lambda d: d["skills"][0].update(difficulty="1"), "not in 1..8"),
        (
            lambda d: d["skills"].append({"id": "@rech8", "tube": "@recherche", "difficulty": 8}),
            "should be named",
        ),
        (lambda d: d["domains"][0].pop("title"), "malformed"),
        (lambda d: d.pop("challenges"), "malformed"),
        (lambda d: d.update(version=""), "version"),
        (lambda d: d["competences"][0].update(code="un"), "malformed code"),
    ],
)
def test_inconsistent_referentials_are_refused(change: Any, message: str) -> None:
    with pytest.raises(ReferentialError, match=message):
        Referential.from_dict(broken(change))


def test_lookups_return_immutable_sequences(ref: Referential) -> None:
    assert isinstance(ref.skills_of("1.1"), tuple)
    assert isinstance(ref.tube_skills("@veille"), tuple)
    assert isinstance(ref.challenges_of("@veille1"), tuple)

"""The CRCN referential: domains, competences, tubes, skills and challenges, versioned.

Loaded from the JSON shipped in `ledger/domain/data/`, validated once, and
published into the log (`referential.ReferentialPublished`) so which version
a test used is part of the audited history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

COMPETENCE_CODES = (
    "1.1",
    "1.2",
    "1.3",
    "2.1",
    "2.2",
    "2.3",
    "2.4",
    "3.1",
    "3.2",
    "3.3",
    "3.4",
    "4.1",
    "4.2",
    "4.3",
    "5.1",
    "5.2",
)
SHIPPED = {"crcn-2026.1": "referential-v1.json"}
LATEST = "crcn-2026.1"


class ReferentialError(ValueError):
    """The referential is inconsistent, or an id is not in it."""


class UnknownCompetence(ReferentialError):
    pass


class UnknownSkill(ReferentialError):
    pass


class UnknownChallenge(ReferentialError):
    pass


@dataclass(frozen=True)
class Domain:
    code: str
    title: str


@dataclass(frozen=True)
class Competence:
    code: str
    domain: str
    title: str


@dataclass(frozen=True)
class Tube:
    name: str
    competence: str


@dataclass(frozen=True)
class Skill:
    id: str
    tube: str
    difficulty: int


@dataclass(frozen=True)
class Challenge:
    id: str
    skill: str


def _index(items: list[Any], key: str, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in items:
        ident = getattr(item, key)
        if ident in found:
            raise ReferentialError(f"duplicate {kind} {ident}")
        found[ident] = item
    return found


class Referential:
    """One version of the referential, with the lookups the domain needs."""

    def __init__(
        self,
        version: str,
        domains: list[Domain],
        competences: list[Competence],
        tubes: list[Tube],
        skills: list[Skill],
        challenges: list[Challenge],
    ):
        self.version = version
        self._domains = _index(domains, "code", "domain")
        self._competences = _index(competences, "code", "competence")
        self._tubes = _index(tubes, "name", "tube")
        self._skills = _index(skills, "id", "skill")
        self._challenges = _index(challenges, "id", "challenge")
        self._check()
        self._skills_of: dict[str, list[Skill]] = {c: [] for c in self._competences}
        for skill in skills:
            self._skills_of[self._tubes[skill.tube].competence].append(skill)
        self._tube_skills: dict[str, list[Skill]] = {t: [] for t in self._tubes}
        for skill in sorted(skills, key=lambda s: s.difficulty):
            self._tube_skills[skill.tube].append(skill)
        self._challenges_of: dict[str, list[Challenge]] = {s: [] for s in self._skills}
        for challenge in challenges:
            self._challenges_of[challenge.skill].append(challenge)

    def _check(self) -> None:
        for comp in self._competences.values():
            if comp.domain not in self._domains:
                raise ReferentialError(f"competence {comp.code} names unknown domain {comp.domain}")
        for tube in self._tubes.values():
            if tube.competence not in self._competences:
                raise ReferentialError(
                    f"tube {tube.name} names unknown competence {tube.competence}"
                )
        for skill in self._skills.values():
            if skill.tube not in self._tubes:
                raise ReferentialError(f"skill {skill.id} names unknown tube {skill.tube}")
            if not 1 <= skill.difficulty <= 8:
                raise ReferentialError(
                    f"skill {skill.id} difficulty {skill.difficulty} not in 1..8"
                )
        for challenge in self._challenges.values():
            if challenge.skill not in self._skills:
                raise ReferentialError(
                    f"challenge {challenge.id} names unknown skill {challenge.skill}"
                )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Referential:
        try:
            return cls(
                version=data["version"],
                domains=[Domain(**d) for d in data["domains"]],
                competences=[Competence(**c) for c in data["competences"]],
                tubes=[Tube(**t) for t in data["tubes"]],
                skills=[Skill(**s) for s in data["skills"]],
                challenges=[Challenge(**c) for c in data["challenges"]],
            )
        except (KeyError, TypeError) as exc:
            raise ReferentialError(f"malformed referential: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        def rows(items: dict[str, Any]) -> list[dict[str, Any]]:
            return [dict(vars(i)) for i in items.values()]

        return {
            "version": self.version,
            "domains": rows(self._domains),
            "competences": rows(self._competences),
            "tubes": rows(self._tubes),
            "skills": rows(self._skills),
            "challenges": rows(self._challenges),
        }

    @property
    def domains(self) -> list[Domain]:
        return list(self._domains.values())

    @property
    def competences(self) -> list[Competence]:
        return sorted(self._competences.values(), key=lambda c: tuple(map(int, c.code.split("."))))

    def competences_of(self, domain_code: str) -> list[Competence]:
        return [c for c in self.competences if c.domain == domain_code]

    def competence(self, code: str) -> Competence:
        try:
            return self._competences[code]
        except KeyError:
            raise UnknownCompetence(f"unknown competence {code!r}") from None

    def tube(self, name: str) -> Tube:
        try:
            return self._tubes[name]
        except KeyError:
            raise ReferentialError(f"unknown tube {name!r}") from None

    def skill(self, skill_id: str) -> Skill:
        try:
            return self._skills[skill_id]
        except KeyError:
            raise UnknownSkill(f"unknown skill {skill_id!r}") from None

    def challenge(self, challenge_id: str) -> Challenge:
        try:
            return self._challenges[challenge_id]
        except KeyError:
            raise UnknownChallenge(f"unknown challenge {challenge_id!r}") from None

    def skills_of(self, competence_code: str) -> list[Skill]:
        self.competence(competence_code)
        return self._skills_of[competence_code]

    def tube_skills(self, tube_name: str) -> list[Skill]:
        self.tube(tube_name)
        return self._tube_skills[tube_name]

    def challenges_of(self, skill_id: str) -> list[Challenge]:
        self.skill(skill_id)
        return self._challenges_of[skill_id]

    def competence_of_skill(self, skill_id: str) -> str:
        return self._tubes[self.skill(skill_id).tube].competence


@cache
def load_referential(version: str | None = None) -> Referential:
    """A shipped version (default: the latest), parsed and validated once per process."""
    name = SHIPPED.get(version or LATEST)
    if name is None:
        raise ReferentialError(f"no shipped referential {version!r}")
    text = resources.files("ledger.domain.data").joinpath(name).read_text(encoding="utf-8")
    return Referential.from_dict(json.loads(text))

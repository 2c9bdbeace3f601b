"""The CRCN referential: domains, competences, tubes, skills and challenges, versioned.

A test must say which referential version it used, so each shipped version is a JSON
file in `ledger/domain/data/`, validated once when loaded and never edited afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any, TypeVar

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
ENGLISH_TITLES = {
    "1": "Information and data literacy",
    "1.1": "Browsing, searching and filtering data, information and digital content",
    "1.2": "Managing data, information and digital content",
    "1.3": "Processing data",
    "2": "Communication and collaboration",
    "2.1": "Interacting through digital technologies",
    "2.2": "Sharing through digital technologies",
    "2.3": "Collaborating through digital technologies",
    "2.4": "Engaging in citizenship through digital technologies",
    "3": "Digital content creation",
    "3.1": "Developing text documents",
    "3.2": "Developing multimedia documents",
    "3.3": "Adapting documents to their purpose",
    "3.4": "Programming",
    "4": "Safety",
    "4.1": "Protecting devices",
    "4.2": "Protecting personal data and privacy",
    "4.3": "Protecting health, well-being and the environment",
    "5": "Problem solving",
    "5.1": "Solving technical problems",
    "5.2": "Building a digital environment",
}
"""English names of the CRCN domains and competences, for pages and documents used abroad.

Where a CRCN competence is a DigComp 2.2 one, DigComp's official English wording (its
number may differ: CRCN 1.2 is DigComp 1.3); CRCN's own competences (1.3, 3.1 to 3.3, 5.2)
keep a translation of their French title.
"""

LANGUAGES = ("fr", "en")  # French is the document of record; English for use abroad


def title_in(code: str, french_title: str, lang: str) -> str:
    """The official French title, or its English name when `lang` is "en" and one exists."""
    return ENGLISH_TITLES.get(code, french_title) if lang == "en" else french_title


MIN_DIFFICULTY, MAX_DIFFICULTY = 1, 8
DOMAIN_CODE = re.compile(r"[1-9][0-9]*")
COMPETENCE_CODE = re.compile(r"[1-9][0-9]*\.[1-9][0-9]*")
SHIPPED = {"crcn-2026.1": "referential-v1.json"}
LATEST = "crcn-2026.1"

T = TypeVar("T")


class ReferentialError(ValueError):
    """The referential is inconsistent, or an id is not in it."""


class UnknownCompetence(ReferentialError):
    """No competence has this code in this version."""


class UnknownTube(ReferentialError):
    """No tube has this name in this version."""


class UnknownSkill(ReferentialError):
    """No skill has this id in this version."""


class UnknownChallenge(ReferentialError):
    """No challenge has this id in this version."""


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
    accessible: bool = True  # usable by a candidate with accessibility needs (adapted)

    def to_dict(self) -> dict[str, Any]:
        """The JSON row; `accessible` only when False, so older versions keep their content."""
        row: dict[str, Any] = {"id": self.id, "skill": self.skill}
        if not self.accessible:
            row["accessible"] = False
        return row


def code_key(code: str) -> tuple[int, ...]:
    """Sort key so that "1.10" comes after "1.9" should the framework ever grow."""
    return tuple(int(part) for part in code.split("."))


def _index(items: Iterable[T], key: Callable[[T], str], kind: str) -> dict[str, T]:
    found: dict[str, T] = {}
    for item in items:
        ident = key(item)
        if ident in found:
            raise ReferentialError(f"duplicate {kind} {ident!r}")
        found[ident] = item
    return found


def _group(items: Iterable[T], key: Callable[[T], str], keys: Iterable[str]) -> dict[str, tuple]:
    groups: dict[str, list[T]] = {k: [] for k in keys}
    for item in items:
        groups[key(item)].append(item)
    return {k: tuple(v) for k, v in groups.items()}


def _lookup(table: dict[str, T], key: str, error: type[ReferentialError], kind: str) -> T:
    try:
        return table[key]
    except KeyError:
        raise error(f"unknown {kind} {key!r}") from None


def _row(item: Any) -> dict[str, Any]:
    return item.to_dict() if isinstance(item, Challenge) else asdict(item)


class Referential:
    """One version of the referential, with the lookups the domain needs."""

    def __init__(
        self,
        version: str,
        domains: Iterable[Domain],
        competences: Iterable[Competence],
        tubes: Iterable[Tube],
        skills: Iterable[Skill],
        challenges: Iterable[Challenge],
    ) -> None:
        if not isinstance(version, str) or not version:
            raise ReferentialError("the referential needs a version")
        self.version = version
        self._domains = _index(domains, lambda d: d.code, "domain")
        self._competences = _index(competences, lambda c: c.code, "competence")
        self._tubes = _index(tubes, lambda t: t.name, "tube")
        self._skills = _index(skills, lambda s: s.id, "skill")
        self._challenges = _index(challenges, lambda c: c.id, "challenge")
        self._check_codes()
        self._check_references()
        self._check_skills()
        self._check_challenges()
        self._by_competence = _group(
            self._skills.values(), lambda s: self._tubes[s.tube].competence, self._competences
        )
        by_difficulty = sorted(self._skills.values(), key=lambda s: s.difficulty)
        self._by_tube = _group(by_difficulty, lambda s: s.tube, self._tubes)
        self._by_skill = _group(self._challenges.values(), lambda c: c.skill, self._skills)

    def _check_codes(self) -> None:
        """Domain codes are "1".."5" and competence codes "1.1"-like, so they sort numerically."""
        codes = [(d.code, DOMAIN_CODE) for d in self._domains.values()]
        codes += [(c.code, COMPETENCE_CODE) for c in self._competences.values()]
        for code, pattern in codes:
            if not isinstance(code, str) or not pattern.fullmatch(code):
                raise ReferentialError(f"malformed code {code!r}")

    def _check_references(self) -> None:
        comps = self._competences.values()
        links: list[tuple[str, str, dict[str, Any], str]] = [
            *((f"competence {c.code}", c.domain, self._domains, "domain") for c in comps),
            *(
                (f"tube {t.name}", t.competence, self._competences, "competence")
                for t in self.tubes
            ),
            *((f"skill {s.id}", s.tube, self._tubes, "tube") for s in self._skills.values()),
            *(
                (f"challenge {c.id}", c.skill, self._skills, "skill")
                for c in self._challenges.values()
            ),
        ]
        for owner, target, table, kind in links:
            if target not in table:
                raise ReferentialError(f"{owner} names unknown {kind} {target!r}")

    def _check_skills(self) -> None:
        """Difficulty 1..8, and the id is the tube name followed by the difficulty."""
        for skill in self._skills.values():
            difficulty = skill.difficulty
            if type(difficulty) is not int or not MIN_DIFFICULTY <= difficulty <= MAX_DIFFICULTY:
                raise ReferentialError(f"skill {skill.id} difficulty {difficulty!r} not in 1..8")
            if skill.id != f"{skill.tube}{difficulty}":
                raise ReferentialError(f"skill {skill.id} should be named {skill.tube}{difficulty}")

    def _check_challenges(self) -> None:
        for challenge in self._challenges.values():
            if type(challenge.accessible) is not bool:
                raise ReferentialError(f"challenge {challenge.id} accessible must be true or false")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Referential:
        """Parse and validate the JSON shape written by the referential generator."""
        try:
            return cls(
                version=data["version"],
                domains=[Domain(**row) for row in data["domains"]],
                competences=[Competence(**row) for row in data["competences"]],
                tubes=[Tube(**row) for row in data["tubes"]],
                skills=[Skill(**row) for row in data["skills"]],
                challenges=[Challenge(**row) for row in data["challenges"]],
            )
        except (KeyError, TypeError) as exc:
            raise ReferentialError(f"malformed referential: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape, rows in their original order, so from_dict(to_dict()) is identity."""
        tables = {
            "domains": self._domains,
            "competences": self._competences,
            "tubes": self._tubes,
            "skills": self._skills,
            "challenges": self._challenges,
        }
        rows = {name: [_row(item) for item in table.values()] for name, table in tables.items()}
        return {"version": self.version, **rows}

    @property
    def domains(self) -> tuple[Domain, ...]:
        return tuple(sorted(self._domains.values(), key=lambda d: code_key(d.code)))

    @property
    def competences(self) -> tuple[Competence, ...]:
        return tuple(sorted(self._competences.values(), key=lambda c: code_key(c.code)))

    @property
    def tubes(self) -> tuple[Tube, ...]:
        return tuple(self._tubes.values())

    @property
    def challenges(self) -> tuple[Challenge, ...]:
        return tuple(self._challenges.values())

    def domain(self, code: str) -> Domain:
        return _lookup(self._domains, code, ReferentialError, "domain")

    def competence(self, code: str) -> Competence:
        return _lookup(self._competences, code, UnknownCompetence, "competence")

    def tube(self, name: str) -> Tube:
        return _lookup(self._tubes, name, UnknownTube, "tube")

    def skill(self, skill_id: str) -> Skill:
        return _lookup(self._skills, skill_id, UnknownSkill, "skill")

    def challenge(self, challenge_id: str) -> Challenge:
        return _lookup(self._challenges, challenge_id, UnknownChallenge, "challenge")

    def competences_of(self, domain_code: str) -> tuple[Competence, ...]:
        self.domain(domain_code)
        return tuple(c for c in self.competences if c.domain == domain_code)

    def skills_of(self, competence_code: str) -> tuple[Skill, ...]:
        self.competence(competence_code)
        return self._by_competence[competence_code]

    def tube_skills(self, tube_name: str) -> tuple[Skill, ...]:
        """The tube's skills, easiest first: the order inference walks."""
        self.tube(tube_name)
        return self._by_tube[tube_name]

    def challenges_of(self, skill_id: str) -> tuple[Challenge, ...]:
        self.skill(skill_id)
        return self._by_skill[skill_id]

    def competence_of_skill(self, skill_id: str) -> str:
        return self._tubes[self.skill(skill_id).tube].competence


def shipped_versions() -> tuple[str, ...]:
    return tuple(SHIPPED)


def load_referential(version: str | None = None) -> Referential:
    """A shipped version (default: the latest), parsed and validated once per process."""
    return _load(version or LATEST)


@cache
def _load(version: str) -> Referential:
    name = SHIPPED.get(version)
    if name is None:
        raise ReferentialError(f"no shipped referential {version!r}")
    text = resources.files("ledger.domain.data").joinpath(name).read_text(encoding="utf-8")
    ref = Referential.from_dict(json.loads(text))
    if ref.version != version:
        raise ReferentialError(f"{name} holds version {ref.version!r}, not {version!r}")
    return ref

"""Write the shipped referential, `referential-v1.json`, deterministically.

Domains and competences are the real CRCN ones; tubes, skills and challenge ids are
generated, because the ledger proves the process and does not host question content.
Run `python -m ledger.domain.data.generate_referential` to rewrite the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

VERSION = "crcn-2026.1"
TARGET = "referential-v1.json"
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

DOMAINS = (
    ("1", "Information et données"),
    ("2", "Communication et collaboration"),
    ("3", "Création de contenu"),
    ("4", "Protection et sécurité"),
    ("5", "Environnement numérique"),
)

# (code, title, tubes as (name, lowest difficulty, highest difficulty)). The first tube of
# each competence spans 1..8; the others have the gaps real referentials have.
COMPETENCES: tuple[tuple[str, str, tuple[tuple[str, int, int], ...]], ...] = (
    (
        "1.1",
        "Mener une recherche et une veille d'information",
        (("@recherche", 1, 8), ("@veille", 1, 7), ("@sourcesInfo", 1, 6), ("@moteur", 2, 6)),
    ),
    (
        "1.2",
        "Gérer des données",
        (("@stockage", 1, 8), ("@fichiers", 1, 6), ("@sauvegarde", 1, 7)),
    ),
    ("1.3", "Traiter des données", (("@tableur", 1, 8), ("@graphique", 1, 6))),
    (
        "2.1",
        "Interagir",
        (("@messagerie", 1, 8), ("@visio", 1, 6), ("@netiquette", 1, 5)),
    ),
    (
        "2.2",
        "Partager et publier",
        (("@partage", 1, 8), ("@publication", 1, 7), ("@licences", 2, 7)),
    ),
    ("2.3", "Collaborer", (("@coedition", 1, 8), ("@agendaPartage", 1, 6))),
    (
        "2.4",
        "S'insérer dans le monde numérique",
        (
            ("@identiteNum", 1, 8),
            ("@eservices", 1, 6),
            ("@reseauxSociaux", 1, 7),
            ("@eReput", 3, 8),
        ),
    ),
    (
        "3.1",
        "Développer des documents textuels",
        (("@traitementTexte", 1, 8), ("@styles", 1, 6), ("@miseEnPage", 1, 7)),
    ),
    (
        "3.2",
        "Développer des documents multimédia",
        (("@retoucheImage", 1, 8), ("@montageSon", 1, 6), ("@montageVideo", 2, 7)),
    ),
    (
        "3.3",
        "Adapter les documents à leur finalité",
        (("@formats", 1, 8), ("@accessibilite", 1, 7), ("@droitAuteur", 1, 6)),
    ),
    (
        "3.4",
        "Programmer",
        (("@algorithme", 1, 8), ("@boucle", 1, 7), ("@variable", 1, 6), ("@fonction", 3, 8)),
    ),
    (
        "4.1",
        "Sécuriser l'environnement numérique",
        (("@motDePasse", 1, 8), ("@logicielMalveillant", 1, 7), ("@hameconnage", 1, 6)),
    ),
    (
        "4.2",
        "Protéger les données personnelles et la vie privée",
        (("@donneesPerso", 1, 8), ("@traces", 1, 6), ("@cookies", 1, 7)),
    ),
    (
        "4.3",
        "Protéger la santé, le bien-être et l'environnement",
        (("@ergonomie", 1, 8), ("@cyberharcelement", 1, 6), ("@sobriete", 2, 7)),
    ),
    (
        "5.1",
        "Résoudre des problèmes techniques",
        (("@panne", 1, 8), ("@peripheriques", 1, 7), ("@reseauLocal", 1, 6)),
    ),
    (
        "5.2",
        "Construire un environnement numérique",
        (("@systeme", 1, 8), ("@applications", 1, 6)),
    ),
)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def challenge_id(skill_id: str, n: int) -> str:
    """'rec' + 10 base-36 characters derived from the skill and the challenge's rank."""
    value, chars = _digest(f"{skill_id}#{n}"), []
    for _ in range(10):
        value, rem = divmod(value, len(ALPHABET))
        chars.append(ALPHABET[rem])
    return "rec" + "".join(chars)


def _tube_rows(code: str, tube: str, low: int, high: int) -> tuple[dict, list, list]:
    skills, challenges = [], []
    for difficulty in range(low, high + 1):
        skill_id = f"{tube}{difficulty}"
        skills.append({"id": skill_id, "tube": tube, "difficulty": difficulty})
        for n in range(2 + _digest(skill_id) % 3):
            challenges.append({"id": challenge_id(skill_id, n), "skill": skill_id})
    return {"name": tube, "competence": code}, skills, challenges


def generate() -> dict[str, Any]:
    """The referential as the JSON-ready dict `Referential.from_dict` reads."""
    tubes: list[dict] = []
    skills: list[dict] = []
    challenges: list[dict] = []
    for code, _title, tube_specs in COMPETENCES:
        for tube, low, high in tube_specs:
            tube_row, tube_skills, tube_challenges = _tube_rows(code, tube, low, high)
            tubes.append(tube_row)
            skills.extend(tube_skills)
            challenges.extend(tube_challenges)
    return {
        "version": VERSION,
        "domains": [{"code": code, "title": title} for code, title in DOMAINS],
        "competences": [
            {"code": code, "domain": code.split(".")[0], "title": title}
            for code, title, _tubes in COMPETENCES
        ],
        "tubes": tubes,
        "skills": skills,
        "challenges": challenges,
    }


def check(data: dict[str, Any]) -> None:
    """Refuse to write a referential that the loader or the certification cannot use."""
    from ledger.domain.referential import Referential

    ref = Referential.from_dict(data)
    for competence in ref.competences:
        difficulties = {skill.difficulty for skill in ref.skills_of(competence.code)}
        missing = set(range(1, 7)) - difficulties
        if missing:
            raise ValueError(f"competence {competence.code} lacks difficulties {sorted(missing)}")


def main() -> None:
    data = generate()
    check(data)
    target = Path(__file__).with_name(TARGET)
    target.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(
        f"wrote {target.name}: {len(data['skills'])} skills, {len(data['challenges'])} challenges"
    )


if __name__ == "__main__":
    main()

"""Generate the shipped referential: real CRCN domains and competences, generated tubes,
skills and challenge ids (the service proves the process; it does not host questions).

Run `python -m ledger.domain.data.generate_referential` to rewrite referential-v1.json;
the output is deterministic.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

VERSION = "crcn-2026.1"
DOMAINS = [
    ("1", "Information et données"),
    ("2", "Communication et collaboration"),
    ("3", "Création de contenu"),
    ("4", "Protection et sécurité"),
    ("5", "Environnement numérique"),
]
COMPETENCES = [
    (
        "1.1",
        "Mener une recherche et une veille d'information",
        ["@recherche", "@veille", "@sourcesInfo"],
    ),
    ("1.2", "Gérer des données", ["@stockage", "@fichiers", "@sauvegarde"]),
    ("1.3", "Traiter des données", ["@tableur", "@tri", "@graphique"]),
    ("2.1", "Interagir", ["@messagerie", "@visio", "@netiquette"]),
    ("2.2", "Partager et publier", ["@partage", "@publication", "@licences"]),
    ("2.3", "Collaborer", ["@coedition", "@agenda", "@gestionProjet"]),
    ("2.4", "S'insérer dans le monde numérique", ["@identiteNum", "@eservices", "@reseauxSociaux"]),
    ("3.1", "Développer des documents textuels", ["@traitementTexte", "@styles", "@miseEnPage"]),
    ("3.2", "Développer des documents multimédia", ["@image", "@son", "@video"]),
    (
        "3.3",
        "Adapter les documents à leur finalité",
        ["@formats", "@accessibilite", "@droitAuteur"],
    ),
    ("3.4", "Programmer", ["@algorithme", "@boucle", "@variable"]),
    ("4.1", "Sécuriser l'environnement numérique", ["@motDePasse", "@malware", "@hameconnage"]),
    ("4.2", "Protéger les données personnelles et la vie privée", ["@rgpd", "@traces", "@cookies"]),
    (
        "4.3",
        "Protéger la santé, le bien-être et l'environnement",
        ["@ergonomie", "@cyberharcelement", "@sobriete"],
    ),
    ("5.1", "Résoudre des problèmes techniques", ["@panne", "@peripheriques", "@reseau"]),
    ("5.2", "Construire un environnement numérique", ["@systeme", "@applications", "@cloud"]),
]
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _challenge_id(skill: str, n: int) -> str:
    value, chars = _digest(f"{skill}#{n}"), []
    for _ in range(10):
        value, rem = divmod(value, len(ALPHABET))
        chars.append(ALPHABET[rem])
    return "rec" + "".join(chars)


def generate() -> dict:
    tubes, skills, challenges = [], [], []
    for code, _title, tube_names in COMPETENCES:
        for index, tube in enumerate(tube_names):
            tubes.append({"name": tube, "competence": code})
            top = 8 if index == 0 else (7 if _digest(tube) % 2 else 6)  # realistic gaps at the top
            for difficulty in range(1, top + 1):
                skill = f"{tube}{difficulty}"
                skills.append({"id": skill, "tube": tube, "difficulty": difficulty})
                for n in range(2 + _digest(skill) % 3):
                    challenges.append({"id": _challenge_id(skill, n), "skill": skill})
    return {
        "version": VERSION,
        "domains": [{"code": c, "title": t} for c, t in DOMAINS],
        "competences": [
            {"code": c, "domain": c.split(".")[0], "title": t} for c, t, _ in COMPETENCES
        ],
        "tubes": tubes,
        "skills": skills,
        "challenges": challenges,
    }


if __name__ == "__main__":
    target = Path(__file__).with_name("referential-v1.json")
    target.write_text(json.dumps(generate(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {target.name}")

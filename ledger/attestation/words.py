"""The attestation's words: French (the document of record) and English (for use abroad)."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Attestation de certification",
        "subtitle": "Certification des compétences numériques — référentiel CRCN",
        "issuer": "Certification CRCN",
        "awarded_to": "Le présent document atteste que",
        "born": "né(e) le {date} à {place},",
        "achieved": "a obtenu la certification des compétences numériques.",
        "centre": "Centre de certification",
        "passed_on": "Date du test",
        "issued_on": "Date de délivrance",
        "valid_until": "Validité",
        "valid_3y": "3 ans, jusqu'au {date}",
        "code": "Code de vérification",
        "rescored": "Résultat révisé le",
        "scan": "Scannez pour vérifier",
        "score": "Score global",
        "pix_over": "{pix} pix sur {max} atteignables",
        "capped": "Le niveau maximal certifiable est actuellement fixé à {level} "
        "sur les {limit} niveaux du référentiel.",
        "levels": "Niveaux certifiés par domaine et par compétence",
        "level_over": "{level} sur {max}",
        "check": "Vérifier ce document",
        "check_how": "Saisissez le code ou scannez le QR code : le registre public fait foi.",
        "proof": "Inscrit au registre signé : événement n° {seq}, empreinte SHA-256",
        "signed_by": "Signé électroniquement par",
        "signature_reason": "Attestation de certification des compétences numériques",
        "footer": "Document signé électroniquement (PAdES). Toute modification "
        "après signature invalide la signature.",
    },
    "en": {
        "title": "Certificate of achievement",
        "subtitle": "Certification of digital competences — CRCN framework (DigComp)",
        "issuer": "Certification CRCN",
        "awarded_to": "This is to certify that",
        "born": "born on {date} in {place},",
        "achieved": "has been certified in digital competences.",
        "centre": "Certification centre",
        "passed_on": "Date of the test",
        "issued_on": "Date of issue",
        "valid_until": "Validity",
        "valid_3y": "3 years, until {date}",
        "code": "Verification code",
        "rescored": "Result revised on",
        "scan": "Scan to verify",
        "score": "Overall score",
        "pix_over": "{pix} pix out of {max} reachable",
        "capped": "The highest certifiable level is currently {level} "
        "of the framework's {limit} levels.",
        "levels": "Certified levels by area and competence",
        "level_over": "{level} out of {max}",
        "check": "Check this document",
        "check_how": "Enter the code or scan the QR code: the public register is authoritative.",
        "proof": "Recorded in the signed register: event no. {seq}, SHA-256 hash",
        "signed_by": "Electronically signed by",
        "signature_reason": "Certificate of achievement in digital competences",
        "footer": "Electronically signed document (PAdES). Any change after "
        "signing invalidates the signature.",
    },
}

_MONTHS = {
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}  # fmt: skip


def long_date(iso: str, lang: str) -> str:
    """`2026-12-01` as `1er décembre 2026` (fr) or `1 December 2026` (en)."""
    year, month, day = (int(part) for part in iso[:10].split("-"))
    name = _MONTHS[lang][month - 1]
    if lang == "fr":
        return f"{'1er' if day == 1 else day} {name} {year}"
    return f"{day} {name} {year}"

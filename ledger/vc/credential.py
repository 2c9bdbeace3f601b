"""The Open Badges 3.0 AchievementCredential of a certificate, and its verification.

Built only from a verified certificate view (ledger/services/verification.py):
every value below comes from signed events checked at serve time. The
credential is `OpenBadgeCredential` (OB 3.0's name; `AchievementCredential`
is its alias in the context) with the W3C VC 2.0 context first.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from ledger.domain.scoring import PIX_PER_LEVEL
from ledger.vc import did as dids
from ledger.vc import status_list
from ledger.vc.data_integrity import ProofError, verify_proof
from ledger.vc.jsonld import OB_V3, VC_V2

TYPES = ["VerifiableCredential", "OpenBadgeCredential"]
CONTEXT = [VC_V2, OB_V3]
NAME = "Certification des compétences numériques (CRCN)"
DESCRIPTION = (
    "Certification des compétences numériques du cadre de référence CRCN : "
    "16 compétences en 5 domaines, chacune certifiée à un niveau sur {max_level}."
)
CRITERIA = (
    "Test de certification surveillé passé dans un centre agréé ; chaque compétence "
    "est certifiée au niveau que le candidat a démontré, dans la limite de {max_level}."
)


class CredentialError(Exception):
    """A credential that does not verify; the message is the human reason."""


def _instant(day: str, tz: ZoneInfo, end: bool = False) -> str:
    """Start (or last second) of a calendar day in the centre's time zone, as xsd:dateTimeStamp."""
    at = datetime.combine(date.fromisoformat(day), time(23, 59, 59) if end else time(0), tz)
    return at.isoformat()


def issuing_event(view: dict[str, Any]) -> dict[str, Any]:
    """The event the credential's content dates from: the last rescoring, else the issuing."""
    rescorings = [h for h in view["history"] if h["event"] == "rescored"]
    return rescorings[-1] if rescorings else view["history"][0]


def achievement_id(public_url: str, max_level: int) -> str:
    return f"{public_url}/achievements/crcn-level-{max_level}"


def achievement(public_url: str, view: dict[str, Any]) -> dict[str, Any]:
    """The CRCN certification, with one result description per competence and the pix score."""
    base, max_level = achievement_id(public_url, view["max_level"]), view["max_level"]
    described = [
        {
            "id": f"{base}#{c['code']}",
            "type": ["ResultDescription"],
            "name": f"{c['code']} {c['title']} ({domain['code']} {domain['title']})",
            "resultType": "RawScore",
            "valueMin": "0",
            "valueMax": str(max_level),
        }
        for domain in view["domains"]
        for c in domain["competences"]
    ]
    described.append(
        {
            "id": f"{base}#pix",
            "type": ["ResultDescription"],
            "name": "Score pix",
            "resultType": "ScaledScore",
            "valueMin": "0",
            "valueMax": str(max_pix(view)),
        }
    )
    return {
        "id": base,
        "type": ["Achievement"],
        "achievementType": "Certificate",
        "name": NAME,
        "description": DESCRIPTION.format(max_level=max_level),
        "criteria": {"narrative": CRITERIA.format(max_level=max_level)},
        "inLanguage": "fr",
        "resultDescription": described,
    }


def max_pix(view: dict[str, Any]) -> int:
    competences = sum(len(d["competences"]) for d in view["domains"])
    return PIX_PER_LEVEL * view["max_level"] * competences


def results(public_url: str, view: dict[str, Any]) -> list[dict[str, Any]]:
    base = achievement_id(public_url, view["max_level"])
    levels = [
        {"type": ["Result"], "resultDescription": f"{base}#{c['code']}", "value": str(c["level"])}
        for domain in view["domains"]
        for c in domain["competences"]
    ]
    pix = {"type": ["Result"], "resultDescription": f"{base}#pix", "value": str(view["pix_score"])}
    return [*levels, pix]


def build(
    view: dict[str, Any],
    *,
    public_url: str,
    issuer_name: str,
    status: dict[str, Any],
    tz: ZoneInfo,
) -> dict[str, Any]:
    """The unsigned credential of a verified, holder-known, not cancelled certificate."""
    event = issuing_event(view)
    holder = view["holder"]
    did = dids.did_web(public_url)
    credential_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{public_url}/v/{view['code']}#{event['seq']}")
    return {
        "@context": CONTEXT,
        "id": f"urn:uuid:{credential_id}",
        "type": TYPES,
        "name": f"{NAME} — {view['code']}",
        "issuer": {"id": did, "type": ["Profile"], "name": issuer_name, "url": public_url},
        "validFrom": _instant(event["on"], tz),
        "validUntil": _instant(view["valid_until"], tz, end=True),
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "identifier": [
                {
                    "type": "IdentityObject",
                    "identityType": "name",
                    "hashed": False,
                    "identityHash": f"{holder['first_name']} {holder['last_name']}",
                }
            ],
            "activityEndDate": _instant(view["passed_on"], tz),
            "achievement": achievement(public_url, view),
            "result": results(public_url, view),
        },
        "evidence": [
            {
                "id": f"{public_url}/v/{view['code']}",
                "type": ["Evidence"],
                "name": f"Code de vérification {view['code']}",
                "description": (
                    f"Événement signé du registre : seq {event['seq']} "
                    f"(certificat émis au seq {view['proof']['seq']}, hash {view['proof']['hash']})"
                ),
            }
        ],
        "credentialStatus": status,
    }


def verify_credential(vc: dict[str, Any], did_document: dict[str, Any]) -> dict[str, Any]:
    """Check a credential's shape and Data Integrity proof against the issuer's DID document.

    Returns what was checked (issuer, verification method, status entry);
    raises CredentialError with a human reason otherwise. Validity dates and
    the status bit are the caller's to judge (see `status_bit`).
    """
    if not isinstance(vc, dict) or not isinstance(did_document, dict):
        raise CredentialError("the credential or the DID document is not a JSON object")
    context, types = vc.get("@context"), vc.get("type")
    if (
        not isinstance(context, list)
        or context[:1] != [VC_V2]
        or not isinstance(types, list)
        or "VerifiableCredential" not in types
    ):
        raise CredentialError("not a W3C VC 2.0 credential")
    issuer = vc.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
    if issuer_id != did_document.get("id"):
        raise CredentialError("the issuer is not the DID document's subject")
    try:
        method = verify_proof(vc, lambda m: dids.assertion_key(did_document, m))
    except ProofError as exc:
        raise CredentialError(str(exc)) from exc
    if not method.startswith(f"{issuer_id}#"):
        raise CredentialError("the proof's key is not the issuer's")
    return {
        "issuer": issuer_id,
        "verification_method": method,
        "status": vc.get("credentialStatus"),
    }


def status_bit(vc: dict[str, Any], status_vc: dict[str, Any], did_document: dict[str, Any]) -> bool:
    """True when the (verified) status list says `vc` is revoked; CredentialError if unreadable."""
    if not isinstance(vc, dict) or not isinstance(status_vc, dict):
        raise CredentialError("the credential or the status list is not a JSON object")
    entry = vc.get("credentialStatus")
    if not isinstance(entry, dict) or entry.get("type") != "BitstringStatusListEntry":
        raise CredentialError("the credential has no Bitstring Status List entry")
    if entry.get("statusListCredential") != status_vc.get("id"):
        raise CredentialError("this status list is not the one the credential points at")
    checked = verify_credential(status_vc, did_document)
    if checked["issuer"] != verify_credential(vc, did_document)["issuer"]:
        raise CredentialError("the status list has another issuer")
    subject = status_vc.get("credentialSubject") or {}
    if subject.get("statusPurpose") != entry.get("statusPurpose"):
        raise CredentialError("the status list's purpose differs from the entry's")
    try:
        return status_list.is_set(
            status_list.decode(subject.get("encodedList")), int(entry.get("statusListIndex"))
        )
    except (status_list.StatusListError, TypeError, ValueError) as exc:
        raise CredentialError(f"status list unreadable: {exc}") from exc


def validity_problem(vc: dict[str, Any], now: datetime) -> str:
    """'' when `now` is within validFrom..validUntil, else why not (dates are the issuer's)."""
    try:
        start = datetime.fromisoformat(vc["validFrom"])
        end = datetime.fromisoformat(vc["validUntil"]) if "validUntil" in vc else None
    except (KeyError, TypeError, ValueError):
        return "validFrom/validUntil are not date-times"
    if start.tzinfo is None or (end is not None and end.tzinfo is None):
        return "validFrom/validUntil have no time zone"
    if now < start:
        return f"not valid before {vc['validFrom']}"
    if end is not None and now > end:
        return f"expired on {vc['validUntil']}"
    return ""

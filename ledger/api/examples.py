"""Request and response examples of the OpenAPI document.

A platform integrates from the docs alone only if each operation shows what
to send and what comes back. Schema examples are keyed by schema name (the
ProblemResponses plugin copies them onto every operation using the schema);
operations whose answer has no schema (raw JSON, ndjson, text) have theirs
keyed by method and path. Binary answers (PNG, PDF, ZIP, tiles) have none.
"""

from __future__ import annotations

from typing import Any

CANDIDATE = "6b0f2c8e-3f57-4d2a-9a51-2f7d1c9e4b10"
SUBJECT = "c1f4a2d6-8e3b-4c5f-9a7d-0b2e6f1a3c58"
CENTRE = "2d9e7b41-5c08-4f3a-b6e2-91a4c7d05f33"
SESSION = "8a3c5e71-0d2f-4b96-a8e4-6c1f9b2d7e05"
COURSE = "f47ac10b-58cc-4372-a567-0e02b2c3d479"
REPORT = "35fab668-5641-4230-8ac1-5db8f64471c7"  # an examiner's issue report
PUPIL_2 = "027722e4-8a37-48d6-934c-5be34bca2221"
HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
CODE = "P-7KQ9MXR4"
CHALLENGE = "reczwa25wizbu"  # a real challenge of @recherche2 (competence 1.1)
TIME = "2026-11-02T09:15:00.000000Z"
APPENDED = {"seq": 42, "hash": HASH}
ANSWER = {
    "candidate": CANDIDATE, "answer_id": "a-1", "challenge": CHALLENGE,
    "skill": "@recherche2", "competence": "1.1", "result": "ok", "time_spent_ms": 42000,
    "answered_at": TIME,
}  # fmt: skip
COURSE_VIEW = {
    "id": COURSE, "session": SESSION, "candidate": CANDIDATE, "state": "in_progress",
    "started_at": TIME, "deadline": "2026-11-02T11:00:00.000000Z", "extra_time_percent": 0,
    "accessibility": False,
    "challenges": [{"challenge": CHALLENGE, "skill": "@recherche2",
                    "competence": "1.1", "difficulty": 2}],
    "answered": [], "referential": "crcn-2026.1", "result": None, "scoring": None,
}  # fmt: skip
RESULT = {
    "status": "validated", "pix_score": 312, "rules": "2", "reproducibility_rate": 93,
    "band": "80-100", "reasons": [],
    "competences": [{"code": "1.1", "asked": 3, "correct": 3, "neutralized": 0, "level": 3,
                     "pix": 24, "outcome": "validated"}],
}  # fmt: skip
SCORING = {**RESULT, "basis": "completion", "abort_reason": None, "cancelled_by_operator": False,
           "fraud_confirmed": False, "kept": [], "neutralizations": [
               {"challenge": CHALLENGE, "source": "examiner-report", "category": "in-challenge",
                "reason": "image manquante", "report": REPORT}]}  # fmt: skip
CENTRE_VIEW = {"id": CENTRE, "name": "Lycée Chateaubriand", "kind": "school", "city": "Rennes",
               "created_at": TIME}  # fmt: skip
DOMAINS = [
    {
        "code": "1",
        "title": "Information et données",
        "competences": [
            {"code": "1.1", "title": "Mener une recherche et une veille d'information", "level": 3}
        ],
    }
]
PUPIL = {"candidate": CANDIDATE, "school": "0350029S", "audience": "upper-secondary", "ine": "123456789AB", "last_name": "Lefèvre",
         "first_name": "Camille", "birth_date": "2007-03-14", "status": "valid",
         "pix_score": 312, "code": CODE, "passed_on": "2026-12-01", "issued_on": "2026-12-08",
         "valid_until": "2029-12-08", "centre": {"name": "Lycée Chateaubriand", "city": "Rennes"},
         "domains": DOMAINS}  # fmt: skip
NO_RESULT = dict.fromkeys(("pix_score", "code", "passed_on", "issued_on", "valid_until", "centre",
                           "domains"))  # fmt: skip
SOURCES = [{"seq": 7, "hash": "3f1c…9a"}, {"seq": 170, "hash": "b82e…04"}]
JWS = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIiwidHlwIjoicmVzdWx0cytqd3MifQ.eyJ…fQ.c2ln…"
CHECK = {"ok": True, "reason": "", "detail": ""}
PROOF = {"type": "DataIntegrityProof", "cryptosuite": "eddsa-rdfc-2022",
         "created": "2026-12-08T10:00:00Z", "proofPurpose": "assertionMethod",
         "verificationMethod": "did:web:ledger.example#k1", "proofValue": "z3zs…"}  # fmt: skip
STATUS_LIST = "https://ledger.example/api/v1/status/1"
ACHIEVEMENT = "https://ledger.example/achievements/crcn-level-5"
COURSE_UP_TO_DATE = {"course": COURSE, "rescored": False, "dry_run": False,
                     "previous_rules": "2", "previous_status": "validated", "result": RESULT,
                     "certificate": None, "certificate_action": None}  # fmt: skip
"""A course never rescored, already under the current rules: the 200 answer."""

WEBHOOK = {"id": "0b7e2f4c-5d1a-4e8b-9c3f-2a6d8e1b7c40", "school": "0350029S",
           "url": "https://ent.lycee-chateaubriand.fr/hooks/pix", "created": TIME,
           "after_seq": 182}  # fmt: skip
WEBHOOK_PAYLOAD = {"delivery": f"{WEBHOOK['id']}/183", "event": "publication", "seq": 183,
                   "hash": HASH, "code": CODE, "candidate": CANDIDATE, "school": "0350029S"}  # fmt: skip
SCHEMA_EXAMPLES: dict[str, Any] = {
    "CandidateIn": {"first_name": "Camille", "last_name": "Lefèvre", "birth_date": "2007-03-14",
                    "birth_place": "Rennes", "external_id": "pupil-0042", "audience": "adult"},
    "CandidateOut": {"id": CANDIDATE, "subject": SUBJECT, **APPENDED},
    "AnswerIn": ANSWER,
    "AnswerBatchIn": {"answers": [ANSWER]},
    "AnswerBatchOut": {"recorded": 1, "duplicates": 0, "results": [
        {"answer_id": "a-1", "candidate": CANDIDATE, "status": "recorded", "seq": 43}]},
    "ProfileOut": {"candidate": CANDIDATE, "subject": SUBJECT,
                   "identity": {"first_name": "Camille", "last_name": "Lefèvre",
                                "birth_date": "2007-03-14", "birth_place": "Rennes"},
                   "erased": False, "audience": "adult", "answers": 120, "total_pix": 164,
                   "max_level": 3, "eligible": True, "as_of_seq": 160,
                   "competences": [{"code": "1.1", "title": "Mener une recherche et une veille"
                                    " d'information", "pix": 20, "level": 2}]},
    "ErasureIn": {"reason": "data-subject-request"},
    "ErasureOut": {"subject": SUBJECT, "erased": True, **APPENDED},
    "CentreIn": {"name": "Lycée Chateaubriand", "kind": "school", "city": "Rennes"},
    "CentreOut": {"id": CENTRE, "name": "Lycée Chateaubriand", "kind": "school",
                  "city": "Rennes", **APPENDED},
    "StaffTokenIn": {"label": "secrétariat"},
    "CancellationIn": {"reason": "fraude constatée après publication", "category": "fraud"},
    "CourseAnswerOut": {**APPENDED, "course_completed": True, "result": RESULT},
    "ReferentialOut": {
        "version": "crcn-2026.1",
        "domains": [{"code": "1", "title": "Information et données"}],
        "competences": [{"code": "1.1", "domain": "1",
                         "title": "Mener une recherche et une veille d'information"}],
        "tubes": [{"name": "@recherche", "competence": "1.1"}],
        "skills": [{"id": "@recherche1", "tube": "@recherche", "difficulty": 1}],
        "challenges": [{"id": "recdaivrgzun9", "skill": "@recherche1"}]},
    "InstitutionTokenIn": {"label": "vie scolaire"},
    "WebhookIn": {"url": "https://ent.lycee-chateaubriand.fr/hooks/pix"},
    "WebhookPayload": WEBHOOK_PAYLOAD,
    "SignedDocumentOut": {
        "document": {"kind": "school-records", "school": "0350029S", "issued_at": TIME,
                     "derived_from_seqs": [7, 170], "derived_from": SOURCES,
                     "pupils": [PUPIL, {"candidate": PUPIL_2, "school": "0350029S", "audience": "adult",
                                        "ine": "987654321ZY", "last_name": "Martin",
                                        "first_name": "Zoé", "birth_date": "2007-05-02",
                                        "status": "pending", **NO_RESULT}]},
        "jws": JWS},
    "CandidateTokenIn": {"label": "candidate"},
    "StaffTokenOut": {"token_id": "tok_3", "token": "lt_…", "scopes": [f"centre:{CENTRE}"]},
    "SessionIn": {"date": "2026-12-01", "time": "09:30", "address": "136 boulevard de Sévigné",
                  "room": "B12", "examiner": "M. Garnier", "audience": "adult"},
    "SessionCreatedOut": {"id": SESSION, "state": "created", **APPENDED},
    "SessionListOut": {"sessions": [{
        "session": SESSION, "centre": CENTRE, "audience": "adult", "date": "2026-12-01",
        "time": "09:30", "address": "136 boulevard de Sévigné", "room": "B12",
        "state": "created", "enrolled": 12, "started": 0, "with_extra_time": 1,
        "with_accessibility": 0, "created_at": TIME, "finalized_at": None,
        "published_on": None}]},
    "CandidateRefIn": {"candidate": CANDIDATE},
    "EnrolmentIn": {"candidate": CANDIDATE, "extra_time_percent": 33, "accessibility": False},
    "AppendedOut": APPENDED,
    "CourseOut": COURSE_VIEW,
    "CourseAnswerIn": {"challenge": CHALLENGE, "result": "ok", "time_spent_ms": 42000},
    "CourseEndIn": {"reason": "timed-out"},
    "FinalizationIn": {
        "absent": [], "incidents": "Coupure réseau de 5 minutes à 10 h 05.",
        "aborts": [{"candidate": CANDIDATE, "reason": "technical"}],
        "issue_reports": [{"candidate": CANDIDATE, "category": "in-challenge",
                           "challenge": CHALLENGE, "neutralize": True,
                           "description": "l'image ne s'affichait pas"}]},
    "DecisionIn": {"decision": "cancel", "reason": "identité non vérifiable"},
    "ReasonIn": {"reason": "épreuve défectueuse signalée après la session"},
    "RescoringIn": {"reason": "épreuve défectueuse", "neutralize": [CHALLENGE],
                    "category": "in-challenge"},
    "RescoringOut": {"result": RESULT, "neutralized": [CHALLENGE], "kept": [],
                     "certificate_action": "rescored", "unchanged": False},
    "CourseRescoringOut": {"course": COURSE, "rescored": True, "dry_run": False,
                           "previous_rules": "1", "previous_status": "validated",
                           "result": RESULT, "certificate": CODE,
                           "certificate_action": "rescored"},
    "NeutralizationIn": {"challenge": CHALLENGE, "reason": "image manquante"},
    "NeutralizationOut": {"result": RESULT, **APPENDED},
    "PublicationOut": {"certificates": [{"candidate": CANDIDATE, "course": COURSE, "code": CODE}],
                       "codes": [CODE], **APPENDED},
    "CertificationHistoryOut": {
        "courses": [{"course": COURSE, "session": SESSION, "candidate": CANDIDATE,
                     "centre": CENTRE, "state": "completed", "started_at": TIME,
                     "deadline": "2026-11-02T11:00:00.000000Z", "end_reason": "completed",
                     "abort_reason": None, "challenges": 18, "answered": 18, "neutralized": 0,
                     "referential": "crcn-2026.1", "rules": "2", "result_status": "validated",
                     "pix_score": 312, "reproducibility_rate": 93, "band": "80-100",
                     "scored_basis": "completion", "scoring": SCORING}],
        "certificates": [{"code": CODE, "certificate": "843bf367-6968-56fb-8c79-7c93f92bac50",
                          "candidate": CANDIDATE, "subject": SUBJECT, "course": COURSE,
                          "session": SESSION, "centre_id": CENTRE,
                          "centre_name": "Lycée Chateaubriand", "centre_city": "Rennes",
                          "status": "valid", "status_on": None, "status_since": "2026-12-08",
                          "status_reason": None, "status_reason_erased": False,
                          "status_category": None, "audience": "public",
                          "passed_on": "2026-12-01", "issued_on": "2026-12-08",
                          "valid_until": "2029-12-08", "issued_seq": 170, "latest_seq": 170,
                          "max_level": 5, "pix_score": 312,
                          "competences": [{"code": "1.1", "level": 3}],
                          "history": [{"event": "issued", "on": "2026-12-08", "seq": 170}]}]},
    "PublicCertificateOut": {
        "code": CODE, "holder": {"first_name": "Camille", "last_name": "Lefèvre",
                                 "birth_date": "2007-03-14"},
        "centre": "Lycée Chateaubriand", "passed_on": "2026-12-01", "issued_on": "2026-12-08",
        "valid_until": "2029-12-08", "audience": "public", "status": "cancelled",
        "status_since": "2027-01-10", "status_category": "issuer-decision",
        "status_reason": None, "status_reason_erased": False, "max_level": 5, "pix_score": 312,
        "domains": [{"code": "1", "title": "Information et données", "competences": [
            {"code": "1.1", "title": "Mener une recherche et une veille d'information",
             "level": 3}]}],
        "history": [{"event": "issued", "seq": 170, "on": "2026-12-08"},
                    {"event": "cancelled", "seq": 180, "on": "2027-01-10",
                     "category": "issuer-decision"}],
        "proof": {"seq": 170, "hash": HASH, "kid": "k1", "hash_valid": True,
                                 "key_trusted": True, "signature_valid": True,
                                 "chain_link_valid": True, "latest_seq": 180},
        "events": [], "integrity": {"verified": True, "problems": []}},
}  # fmt: skip


def _certificate_for(audience: str) -> dict[str, Any]:
    """The certificate example as the public, or the holder and operator, read it."""
    public = SCHEMA_EXAMPLES["PublicCertificateOut"]
    if audience == "public":
        return public
    reason = "copie constatée par le surveillant, PV n° 77"
    history = [{**h, "category": "fraud", "reason": reason} if h["event"] == "cancelled" else h
               for h in public["history"]]  # fmt: skip
    return {**public, "audience": audience, "status_category": "fraud", "status_reason": reason,
            "history": history}  # fmt: skip


READERS = {
    "public": "No token, or one neither the holder's nor an operator's: neutral categories only",
    "holder": "The holder's own token (candidate:<id>): the signed category and the free text",
    "operator": "An admin token: the signed category and the free text",
}
CERTIFICATE_EXAMPLES = {
    audience: {"summary": summary, "value": _certificate_for(audience)}
    for audience, summary in READERS.items()
}
"""Named examples of GET /api/v1/certificates/<code>: who reads the free-text reason."""


LEVELS = (
    "level_1.1,level_1.2,level_1.3,level_2.1,level_2.2,level_2.3,level_2.4,level_3.1,"
    "level_3.2,level_3.3,level_3.4,level_4.1,level_4.2,level_4.3,level_5.1,level_5.2"
)
RESULTS_CSV = (
    "\ufeffine,last_name,first_name,birth_date,status,pix_score,code,passed_on,issued_on,"
    f"valid_until,centre,{LEVELS}\r\n"
    "123456789AB,Lefèvre,Camille,2007-03-14,valid,312,P-7KQ9MXR4,2026-12-01,2026-12-08,"
    "2029-12-08,Lycée Chateaubriand,3,2,0,3,0,0,0,1,0,0,0,2,0,0,1,0\r\n"
    "987654321ZY,Martin,Zoé,2007-05-02,not-certified,,,,,,,,,,,,,,,,,,,,,,\r\n"
)
CSV_DOC = {"responses": {"200": {
    "description": "UTF-8 CSV with BOM: one row per candidate, a level column per competence",
    "content": {"text/csv": {"schema": {"type": "string"}, "example": RESULTS_CSV}}}}}  # fmt: skip
CHECKPOINT_TEXT = "ledger.example/log\n180\nq6L6…=\n\n— ledger.example/log Az3…=\n"
OPERATION_EXAMPLES: dict[tuple[str, str], Any] = {
    ("get", "/api/v1/sessions/{session_id}"): {
        "id": SESSION, "centre": CENTRE_VIEW, "audience": "adult", "date": "2026-12-01",
        "time": "09:30", "address": "136 boulevard de Sévigné", "room": "B12",
        "examiner": "M. Garnier", "state": "finalized", "enrolled": [CANDIDATE],
        "candidates": [{"candidate": CANDIDATE, "audience": "adult", "extra_time_percent": 0,
                        "accessibility": False}],
        "courses": {CANDIDATE: COURSE},
        "results": [{"course": COURSE, "candidate": CANDIDATE, "state": "completed",
                     "result_status": "validated", "reproducibility_rate": 93,
                     "band": "80-100", "neutralized": 0, "scoring": SCORING}],
        "report": {"absent": [], "incidents": None, "aborts": [], "issue_reports": [
            {"id": REPORT, "candidate": CANDIDATE, "category": "in-challenge",
             "challenge": CHALLENGE, "neutralize": True,
             "description": "l'image ne s'affichait pas"}]}},
    ("post", "/api/v1/attestations/check"): {
        "ok": True, "status": "valid", "code": CODE, "signed_at": "2026-12-08T10:00:00+00:00",
        "link": f"/v/{CODE}?t=eyJ…", "signature": {**CHECK, "signer": "Certification CRCN"},
        "chain": {**CHECK, "ca_fingerprint": HASH, "ca_seq": 171},
        "certificate": {**CHECK, "detail": "the certificate is valid"}, "qr": CHECK},
    ("get", "/api/v1/certificates/{code}/credential"): {
        "@context": ["https://www.w3.org/ns/credentials/v2",
                     "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
        "id": "urn:uuid:3497f065-8989-5075-8e1c-f67dae58f439",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": f"Certification des compétences numériques (CRCN) — {CODE}",
        "issuer": {"id": "did:web:ledger.example", "type": ["Profile"],
                   "name": "Registre des certifications CRCN", "url": "https://ledger.example"},
        "validFrom": "2026-12-08T00:00:00+01:00", "validUntil": "2029-12-08T23:59:59+01:00",
        "credentialSubject": {
            "type": ["AchievementSubject"], "activityEndDate": "2026-12-01T00:00:00+01:00",
            "identifier": [{"type": "IdentityObject", "identityType": "name", "hashed": False,
                            "identityHash": "Camille Lefèvre"}],
            "achievement": {
                "id": f"{ACHIEVEMENT}", "type": ["Achievement"], "achievementType": "Certificate",
                "name": "Certification des compétences numériques (CRCN)", "inLanguage": "fr",
                "description": "…", "criteria": {"narrative": "…"},
                "resultDescription": [{"id": f"{ACHIEVEMENT}#1.1", "type": ["ResultDescription"],
                                       "name": "1.1 Mener une recherche et une veille "
                                       "d'information (1 Information et données)",
                                       "resultType": "RawScore", "valueMin": "0",
                                       "valueMax": "5"}]},
            "result": [{"type": ["Result"], "resultDescription": f"{ACHIEVEMENT}#1.1",
                        "value": "3"}]},
        "evidence": [{"id": f"https://ledger.example/v/{CODE}", "type": ["Evidence"],
                      "name": f"Code de vérification {CODE}", "description": "…"}],
        "proof": PROOF,
        "credentialStatus": {"id": f"{STATUS_LIST}#42", "type": "BitstringStatusListEntry",
                             "statusPurpose": "revocation", "statusListIndex": "42",
                             "statusListCredential": STATUS_LIST}},
    ("get", "/api/v1/status/{number}"): {
        "@context": ["https://www.w3.org/ns/credentials/v2"], "id": STATUS_LIST,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": "did:web:ledger.example", "validFrom": "2026-12-08T10:00:00Z",
        "credentialSubject": {"id": f"{STATUS_LIST}#list", "type": "BitstringStatusList",
                              "statusPurpose": "revocation", "encodedList": "uH4sI…"},
        "proof": PROOF},
    ("get", "/api/v1/events"): '{"seq":1,"type":"candidates.Candidate.Created","hash":"…"}\n',
    ("get", "/api/v1/log/checkpoint"): CHECKPOINT_TEXT,
    ("get", "/tlog/checkpoint"): CHECKPOINT_TEXT,
    ("get", "/api/v1/log/checkpoints"): {"checkpoints": [{
        "size": 180, "root": "q6L6…=", "created_at": TIME, "note": CHECKPOINT_TEXT,
        "cosigners": {}}]},
    ("get", "/api/v1/log/proof/inclusion"): {"leaf_index": 41, "tree_size": 180,
                                             "hashes": ["n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="]},
    ("get", "/api/v1/log/proof/consistency"): {"from": 100, "to": 180,
                                               "hashes": ["n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="]},
    ("get", "/api/v1/health"): {"status": "ok"},
    ("get", "/api/v1/institutions/{uai}/webhooks/deliveries"): {"deliveries": [{
        "webhook": WEBHOOK["id"], "seq": 183, "body": WEBHOOK_PAYLOAD, "attempts": 1,
        "next_attempt": TIME, "status": "delivered", "last_error": None, "delivered": TIME}]},
    ("post", "/api/v1/webhooks/deliveries"): {"queued": 2, "delivered": 2, "failed": 0},
    ("post", "/api/v1/institutions/{uai}/webhooks"): WEBHOOK,
    ("get", "/api/v1/institutions/{uai}/webhooks"): {"webhooks": [WEBHOOK]},
    ("delete", "/api/v1/institutions/{uai}/webhooks/{webhook_id}"): {
        "deleted": WEBHOOK["id"], "dropped_deliveries": 0},
    ("get", "/api/v1/ready"): {"status": "ready", "checks": {
        "database": {"ok": True, "kind": "postgresql", "head": 180},
        "projections": {"ok": True, "lag": 0, "lag_seconds": 0.0},
        "integrity": {"ok": True, "alarms": []},
        "checkpoint": {"ok": True, "size": 180, "root": "q6L6…="},
        "signed_checkpoint": {"ok": True, "size": 180, "age_s": 12.5, "cosigners": [],
                              "quorum": 0, "problems": []}},
        "projection_lag": {"events": 0, "seconds": 0.0, "head": 180, "stalled": [],
                           "positions": {"profiles": 180, "sessions": 180, "courses": 180,
                                         "certificates": 180}}},
    ("get", "/api/v1/admission/results"): {
        "document": {"kind": "admission-results", "query": {"ine": "123456789AB"},
                     "issued_at": TIME, "derived_from_seqs": [7, 170], "derived_from": SOURCES,
                     "results": [PUPIL]},
        "jws": JWS},
}  # fmt: skip
BINARY = ("image/", "application/pdf", "application/zip", "application/octet-stream")


def schema_example(schema: dict[str, Any]) -> Any:
    """The example of a `$ref` schema (or of the first example-bearing `oneOf` branch)."""
    for branch in schema.get("oneOf", [schema]):
        name = branch.get("$ref", "").rsplit("/", 1)[-1]
        if name in SCHEMA_EXAMPLES:
            return SCHEMA_EXAMPLES[name]
    return None


def add_examples(method: str, path: str, operation: dict[str, Any]) -> None:
    """Set `example` on the request body and each success response's content when known.

    An operation's own example wins over its schema's on responses: a shared
    schema (a signed document) can carry documents of different kinds.
    """
    _fill(operation.get("requestBody", {}).get("content", {}), None)
    for status, response in operation.get("responses", {}).items():
        if isinstance(response, dict) and str(status).startswith("2"):
            _fill(response.get("content", {}), OPERATION_EXAMPLES.get((method, path)))


def _fill(content: dict[str, Any], own: Any) -> None:
    """Each media type's example: `own`, else its schema's; binary media have none."""
    for media, entry in content.items():
        if "example" in entry or "examples" in entry or media.startswith(BINARY):
            continue
        example = own if own is not None else schema_example(entry.get("schema") or {})
        if example is not None:
            entry["example"] = example

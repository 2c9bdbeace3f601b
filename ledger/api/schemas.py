"""marshmallow schemas of the API's requests and responses (also its OpenAPI document)."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from ledger.domain import clock
from ledger.domain.centre import CENTRE_KINDS
from ledger.domain.certificate import (
    CANCELLATION_CATEGORIES,
    CODE_ALPHABET,
    CODE_LENGTH,
    PUBLIC_CATEGORY_VALUES,
    normalize_code,
)
from ledger.domain.erasure import REASON_CODES
from ledger.domain.institution import UAI_ANCHORED, UAI_FORMAT
from ledger.domain.payload import MAX_DEPTH, text_problem
from ledger.domain.profile import ANSWER_RESULTS
from ledger.domain.session import (
    ABORT_REASONS,
    CREATED,
    FINALIZED,
    IN_PROCESS,
    ISSUE_CATEGORIES,
    MAX_EXTRA_TIME_PERCENT,
    NEUTRALIZING_CATEGORIES,
    PROCESSED,
)
from ledger.services.candidates import AUDIENCES
from ledger.services.institutions import RESULT_STATUSES
from ledger.services.verification import READERS

NAME = validate.Length(min=1, max=200)
MAX_SEQ = 2**53 - 1  # every integer the API takes is exact in JSON and fits SQL BIGINT
SEQ = validate.Range(min=1, max=MAX_SEQ)
MAX_STRING = 5000  # any string of a request body, whatever its field's own limit
FREE_TEXT = {"x-free-text": True}  # a field whose text may span lines (\n, \t allowed)


def _clean(value: Any, free_text: bool, depth: int = 0) -> Any:
    """`value` with every string in NFC; ValueError for one no event may hold."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        normalized = unicodedata.normalize("NFC", value)
        if free_text:  # a form's line breaks are CRLF; the log keeps LF
            normalized = normalized.replace("\r\n", "\n")
        reason = text_problem(normalized, free_text, MAX_STRING)
        if reason:
            raise ValueError(f"the text {reason}")
        return normalized
    if isinstance(value, list):
        return [_clean(item, free_text, depth + 1) for item in value]
    if isinstance(value, dict):
        return {_clean(k, False): _clean(v, free_text, depth + 1) for k, v in value.items()}
    return value


def _free_text(field: fields.Field | None) -> bool:
    inner = field.inner if isinstance(field, fields.List) else field
    return bool(field and (field.metadata.get("x-free-text") or inner.metadata.get("x-free-text")))


def _nested(field: fields.Field | None) -> bool:
    inner = field.inner if isinstance(field, fields.List) else field
    return isinstance(inner, fields.Nested)


class StrictUUID(fields.UUID):
    """A UUID whose error shows the expected shape, so a client need not guess."""

    default_error_messages = {
        "invalid_uuid": "expected a UUID such as 0f8fad5b-d9cb-469f-a165-70867728950e"
    }


class WholeNumber(fields.Integer):
    """A strict JSON integer: "42" or 42.5 are refused with the expected format."""

    default_error_messages = {"invalid": "expected a whole JSON number such as 42, not a string"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)


class QueryInteger(fields.Integer):
    """An integer query parameter: ASCII digits only (int() also takes "١٢", " 12", "1_0")."""

    default_error_messages = {"invalid": "expected an integer in ASCII digits, such as 100"}

    def _validated(self, value: object) -> int:
        if isinstance(value, str) and not re.fullmatch(r"-?[0-9]{1,20}", value):
            raise self.make_error("invalid")
        return super()._validated(value)


class StrictSchema(Schema):
    """Unknown fields are an error: a typo must not be silently dropped.

    Every string is normalized to NFC and checked (no NUL, lone surrogate or
    control character outside free text) before any field sees it, so the
    domain's own check before signing never has to refuse what the API let in.
    """

    class Meta:
        ordered = True

    def _by_key(self) -> dict[str, fields.Field]:
        """Fields by their JSON key, built once per schema instance (they never change)."""
        found = self.__dict__.get("_fields_by_key")
        if found is None:
            found = self._fields_by_key = {f.data_key or n: f for n, f in self.fields.items()}
        return found

    @pre_load
    def clean_strings(self, data: Any, **_: object) -> Any:
        if not isinstance(data, dict):
            return data
        by_key = self._by_key()
        cleaned, errors = {}, {}
        for key, value in data.items():
            field = by_key.get(key)
            if _nested(field):
                cleaned[key] = value  # its own schema cleans it, naming the inner field
                continue
            free_text = _free_text(field)
            try:
                cleaned[_clean(key, False)] = _clean(value, free_text)
            except ValueError as exc:
                errors[str(key)] = [str(exc)]
        if errors:
            raise ValidationError(errors)
        return cleaned


class StrictDate(fields.Date):
    """YYYY-MM-DD with ASCII digits and a real calendar date (`clock.parse_date`)."""

    default_error_messages = {"invalid": "expected YYYY-MM-DD, a real calendar day"}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> date:
        try:
            return clock.parse_date(value)
        except (ValueError, TypeError):
            raise self.make_error("invalid") from None


class CertificateCode(fields.String):
    """A verification code read as the verify site reads it (any case, spaces, dashes, a
    missing `P-`), normalized to `P-XXXXXXXX`."""

    default_error_messages = {
        "invalid": f"expected a certificate code: P- then {CODE_LENGTH} of {CODE_ALPHABET}"
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        code = normalize_code(super()._deserialize(value, attr, data, **kwargs))
        if code is None:
            raise self.make_error("invalid")
        return code


def _time(value: str) -> None:
    try:
        clock.parse_time(value)
    except ValueError:
        raise ValidationError(
            "expected a UTC time YYYY-MM-DDTHH:MM:SS.ffffffZ (six fraction digits, Z)"
        ) from None


def _birth_date(value: date) -> None:
    try:
        clock.check_birth_date(value, clock.now().date())
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class CandidateIn(StrictSchema):
    first_name = fields.String(required=True, validate=NAME)
    last_name = fields.String(required=True, validate=NAME)
    birth_date = StrictDate(required=True, validate=_birth_date)
    birth_place = fields.String(required=True, validate=NAME)
    email = fields.Email(load_default=None)
    external_id = fields.String(load_default=None, validate=validate.Length(min=1, max=100))
    audience = fields.String(load_default="adult", validate=validate.OneOf(AUDIENCES))
    school = fields.String(
        load_default=None,
        validate=validate.Regexp(UAI_ANCHORED, error=f"not a UAI: {UAI_FORMAT}"),
        metadata={"description": "UAI of the pupil's school, which then receives the results"},
    )


class AppendedOut(Schema):
    seq = fields.Integer()
    hash = fields.String()


class CandidateOut(AppendedOut):
    id = fields.String()
    subject = fields.String()


class AnswerIn(StrictSchema):
    candidate = StrictUUID(required=True)
    answer_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    challenge = fields.String(required=True, validate=validate.Length(min=1, max=100))
    skill = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "optional: derived from `challenge`; checked when sent"},
    )
    competence = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=10),
        metadata={"description": "optional: derived from `challenge`; checked when sent"},
    )
    result = fields.String(required=True, validate=validate.OneOf(ANSWER_RESULTS))
    time_spent_ms = WholeNumber(required=True, validate=validate.Range(min=0, max=86_400_000))
    answered_at = fields.String(required=True, validate=_time)


class ReferentialOut(Schema):
    """One referential version: what a platform needs to build and send answers."""

    version = fields.String()
    domains = fields.List(fields.Dict(), metadata={"description": "`code`, `title`"})
    competences = fields.List(fields.Dict(), metadata={"description": "`code`, `domain`, `title`"})
    tubes = fields.List(fields.Dict(), metadata={"description": "`name`, `competence`"})
    skills = fields.List(fields.Dict(), metadata={"description": "`id`, `tube`, `difficulty`"})
    challenges = fields.List(
        fields.Dict(), metadata={"description": "`id`, `skill` (`accessible: false` if not)"}
    )


class AnswerBatchIn(StrictSchema):
    answers = fields.List(
        fields.Nested(AnswerIn),
        required=True,
        validate=validate.Length(min=1, error="at least one answer"),
    )


class AnswerOutcomeOut(Schema):
    answer_id = fields.String()
    candidate = fields.String()
    status = fields.String(
        metadata={"description": "recorded, or duplicate (already recorded)",
                  "enum": ["recorded", "duplicate"]}
    )  # fmt: skip
    seq = fields.Integer(allow_none=True)


class AnswerBatchOut(Schema):
    recorded = fields.Integer()
    duplicates = fields.Integer()
    results = fields.List(fields.Nested(AnswerOutcomeOut))


class CompetenceLevelOut(Schema):
    code = fields.String()
    title = fields.String()
    pix = fields.Integer()
    level = fields.Integer()


class ProfileOut(Schema):
    candidate = fields.String()
    subject = fields.String()
    identity = fields.Dict(allow_none=True, metadata={"description": "null once erased"})
    erased = fields.Boolean()
    audience = fields.String()
    answers = fields.Integer()
    total_pix = fields.Integer()
    max_level = fields.Integer()
    eligible = fields.Boolean()
    as_of_seq = fields.Integer()
    competences = fields.List(fields.Nested(CompetenceLevelOut))


class ErasureIn(StrictSchema):
    reason = fields.String(
        required=True,
        validate=validate.OneOf(REASON_CODES),
        metadata={"description": "GDPR ground, one code of a closed list: never free text"},
    )


class ErasureOut(AppendedOut):
    subject = fields.String()
    erased = fields.Boolean()


class EventsQuery(StrictSchema):
    after = QueryInteger(load_default=0, validate=validate.Range(min=0, max=MAX_SEQ))
    limit = QueryInteger(load_default=1000, validate=validate.Range(min=1, max=10_000))


class InclusionQuery(StrictSchema):
    seq = QueryInteger(required=True, validate=SEQ)
    size = QueryInteger(required=True, validate=SEQ)


class ConsistencyQuery(Schema):
    from_ = QueryInteger(required=True, data_key="from", validate=SEQ)
    to = QueryInteger(required=True, validate=SEQ)


class CheckpointsQuery(StrictSchema):
    """Stored checkpoints of size > after (all, from the empty tree's, when absent)."""

    after = QueryInteger(validate=validate.Range(min=0, max=MAX_SEQ))
    limit = QueryInteger(load_default=100, validate=validate.Range(min=1, max=100))


# --- certification ---------------------------------------------------------------


class CentreIn(StrictSchema):
    name = fields.String(required=True, validate=NAME)
    kind = fields.String(required=True, validate=validate.OneOf(CENTRE_KINDS))
    city = fields.String(required=True, validate=NAME)


class CentreOut(AppendedOut):
    id = fields.String()
    name = fields.String()
    kind = fields.String()
    city = fields.String()


class StaffTokenIn(StrictSchema):
    label = fields.String(load_default="centre staff", validate=validate.Length(max=200))


class StaffTokenOut(Schema):
    token_id = fields.String()
    token = fields.String(metadata={"description": "shown once; stored only hashed"})
    scopes = fields.List(fields.String())


class CandidateTokenIn(StrictSchema):
    label = fields.String(load_default="candidate", validate=validate.Length(max=200))


class InstitutionTokenIn(StrictSchema):
    label = fields.String(load_default="institution", validate=validate.Length(max=200))


class ClassQuery(StrictSchema):
    """A class: the school's pupils of one audience (classes themselves are not registered)."""

    audience = fields.String(
        validate=validate.OneOf(AUDIENCES),
        metadata={"description": "only pupils registered with this audience (e.g. a year group)"},
    )


class AdmissionQuery(StrictSchema):
    """One of: `ine`; `code`; or `school` with `last_name`, `first_name` and `birth_date`."""

    ine = fields.String(
        validate=validate.Length(min=1, max=100),
        metadata={"description": "the pupil's INE, as registered in external_id"},
    )
    code = CertificateCode(
        validate=validate.Length(min=1, max=20),
        metadata={"description": "a verification code, read as the verify site reads it"},
    )
    school = fields.String(validate=validate.Regexp(UAI_ANCHORED, error=f"not a UAI: {UAI_FORMAT}"))
    last_name = fields.String(validate=NAME)
    first_name = fields.String(validate=NAME)
    birth_date = StrictDate()

    @validates_schema
    def _one_mode(self, data: dict[str, Any], **_: Any) -> None:
        identity = {"school", "last_name", "first_name", "birth_date"}
        modes = [bool(data.get("ine")), bool(data.get("code")), bool(identity & set(data))]
        if sum(modes) != 1:
            raise ValidationError("give ine, or code, or school with last_name, first_name and"
                                  " birth_date (YYYY-MM-DD)", field_name="_schema")  # fmt: skip
        missing = sorted(identity - set(data)) if modes[2] else []
        if missing:
            raise ValidationError({name: ["required with school"] for name in missing})


class WebhookIn(StrictSchema):
    url = fields.Url(
        required=True,
        schemes={"https", "http"},
        require_tld=False,
        validate=validate.Length(max=2000),
        metadata={
            "description": "https, resolving to public addresses only; receives a signed POST "
            "(RFC 9421, Ed25519) per event"
        },
    )


NULLABLE_STRING = {"type": ["string", "null"]}
PUPIL_RESULT = {
    "type": "object",
    "properties": {
        "candidate": {"type": "string"},
        "school": {**NULLABLE_STRING, "description": "UAI as registered (signed)"},
        "audience": {"enum": list(AUDIENCES)},
        "ine": NULLABLE_STRING,
        "status": {
            "enum": list(RESULT_STATUSES),
            "description": "pending until published; then the certificate's status, or "
            "not-certified for a result published without a certificate",
        },
        "pix_score": {"type": ["integer", "null"], "description": "only when valid or expired"},
        "domains": {"type": ["array", "null"], "description": "levels, only when valid or expired"},
        "code": NULLABLE_STRING,
        "centre": {"type": ["object", "null"]},
    },
    "required": ["candidate", "status", "pix_score", "domains"],
}
SIGNED_DOCUMENT = {
    "type": "object",
    "properties": {
        "kind": {"enum": ["school-records", "admission-results"]},
        "derived_from_seqs": {"type": "array", "items": {"type": "integer"}},
        "derived_from": {
            "type": "array",
            "description": "each signed event the document derives from, with its hash",
            "items": {
                "type": "object",
                "properties": {"seq": {"type": "integer"}, "hash": {"type": "string"}},
            },
        },
        "pupils": {"type": "array", "items": PUPIL_RESULT},
        "results": {"type": "array", "items": PUPIL_RESULT},
    },
    "required": ["kind", "issued_at", "derived_from_seqs", "derived_from"],
}


WEBHOOK_EVENTS = ("publication", "cancellation", "rescoring")
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class WebhookOut(Schema):
    id = fields.String(metadata={"description": "the webhook's id (first part of `delivery`)"})
    school = fields.String(metadata={"description": "the school's UAI"})
    url = fields.String(
        metadata={"description": "the URL in normal form: what is sent to and signed"}
    )
    created = fields.String()
    after_seq = fields.Integer(metadata={"description": "events after this seq are delivered"})


class WebhookListOut(Schema):
    webhooks = fields.List(fields.Nested(WebhookOut))


class WebhookDeletedOut(Schema):
    deleted = fields.String(metadata={"description": "the webhook's id"})
    dropped_deliveries = fields.Integer(
        metadata={"description": "pending deliveries dropped (the webhook's log goes with it)"}
    )


class WebhookPayload(Schema):
    """The JSON a school's URL receives (POST, RFC 9421 signed): see LEDGER_FORMAT."""

    delivery = fields.String(
        metadata={"description": "`<webhook id>/<seq>`: the same on every retry; drop a repeat"}
    )
    event = fields.String(validate=validate.OneOf(WEBHOOK_EVENTS))
    seq = fields.Integer(metadata={"description": "the event's place in the public log"})
    hash = fields.String(
        metadata={"description": "the event's hash in the log (absent in deliveries queued "
                  "before it was added)"}
    )  # fmt: skip
    code = fields.String(metadata={"description": "the certificate's verification code"})
    candidate = fields.String()
    school = fields.String(metadata={"description": "the school's UAI"})


class DeliveryOut(Schema):
    webhook = fields.String()
    seq = fields.Integer()
    body = fields.Nested(WebhookPayload)
    attempts = fields.Integer()
    next_attempt = fields.String()
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))
    last_error = fields.String(
        allow_none=True,
        metadata={"description": "`HTTP <status>`, `unreachable`, `refused: …` or "
                  "`integrity: …` (the signed events do not back it: never sent)"},
    )  # fmt: skip
    delivered = fields.String(allow_none=True)


class DeliveryLogOut(Schema):
    deliveries = fields.List(fields.Nested(DeliveryOut))


class DispatchOut(Schema):
    queued = fields.Integer()
    delivered = fields.Integer()
    failed = fields.Integer()


class SignedDocumentOut(Schema):
    document = fields.Dict(
        metadata={
            "description": "the JSON signed, built from verified events only (a disagreement "
            "answers 503 integrity-failure); derived_from lists the events used",
            **SIGNED_DOCUMENT,
        }
    )
    jws = fields.String(
        metadata={"description": "compact JWS (EdDSA, kid in /.well-known/jwks.json) of document"}
    )


class AttestationQuery(StrictSchema):
    lang = fields.String(
        load_default="fr",
        validate=validate.OneOf(("fr", "en")),
        metadata={"description": "fr (default) or en, with the DigComp English titles"},
    )


class SessionIn(StrictSchema):
    date = StrictDate(required=True)
    time = fields.String(
        required=True,
        validate=validate.Regexp(
            r"(?:[01][0-9]|2[0-3]):[0-5][0-9]\Z", error="expected HH:MM, 24-hour, such as 09:30"
        ),
    )
    address = fields.String(required=True, validate=NAME)
    room = fields.String(required=True, validate=NAME)
    examiner = fields.String(required=True, validate=NAME)
    audience = fields.String(load_default="adult", validate=validate.OneOf(AUDIENCES))


class SessionOut(Schema):
    session = fields.String()
    centre = fields.String()
    audience = fields.String()
    date = fields.String()
    time = fields.String()
    address = fields.String()
    room = fields.String()
    state = fields.String(metadata={"enum": [CREATED, FINALIZED, IN_PROCESS, PROCESSED]})
    enrolled = fields.Integer()
    started = fields.Integer()
    with_extra_time = fields.Integer(metadata={"description": "enrolled with extra time"})
    with_accessibility = fields.Integer(
        metadata={"description": "enrolled with accessibility needs"}
    )
    created_at = fields.String()
    finalized_at = fields.String(allow_none=True)
    published_on = fields.String(allow_none=True)


class SessionCreatedOut(AppendedOut):
    id = fields.String()
    state = fields.String(metadata={"enum": [CREATED]})


class SessionListOut(Schema):
    sessions = fields.List(fields.Nested(SessionOut))


class CandidateRefIn(StrictSchema):
    candidate = StrictUUID(required=True)


class StrictBoolean(fields.Boolean):
    """JSON true or false only: "yes" or 1 could be a typo for a signed fact."""

    default_error_messages = {"invalid": "expected JSON true or false"}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class EnrolmentIn(CandidateRefIn):
    extra_time_percent = WholeNumber(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_EXTRA_TIME_PERCENT),
        metadata={"description": "extra test time in percent (33 = tiers-temps); default 0"},
    )
    accessibility = StrictBoolean(
        load_default=False,
        metadata={"description": "accessibility needs: only accessible challenges are asked"},
    )


class CourseChallengeOut(Schema):
    challenge = fields.String()
    skill = fields.String()
    competence = fields.String()
    difficulty = fields.Integer()


class CourseOut(Schema):
    id = fields.String()
    session = fields.String()
    candidate = fields.String()
    state = fields.String()
    started_at = fields.String()
    deadline = fields.String(metadata={"description": "105 minutes, extended by extra time"})
    extra_time_percent = fields.Integer()
    accessibility = fields.Boolean()
    challenges = fields.List(fields.Nested(CourseChallengeOut))
    answered = fields.List(fields.String())
    referential = fields.String()
    result = fields.Dict(allow_none=True, metadata={"description": "the latest result as recorded"})
    scoring = fields.Dict(
        allow_none=True,
        metadata={
            "description": "the latest scoring explained: rules, rate (percent), band, abort"
            " reason, per competence asked/correct/neutralized, each neutralization with its"
            " source (an `operator` one's free-text reason for `admin` only, null once"
            " erased), issue reports kept on correct answers"
        },
    )


class CourseAnswerIn(StrictSchema):
    challenge = fields.String(required=True, validate=validate.Length(min=1, max=100))
    result = fields.String(required=True, validate=validate.OneOf(ANSWER_RESULTS))
    time_spent_ms = WholeNumber(required=True, validate=validate.Range(min=0, max=86_400_000))


class CourseAnswerOut(AppendedOut):
    course_completed = fields.Boolean(
        metadata={"description": "true when this answer was the course's last challenge"}
    )
    result = fields.Dict(
        allow_none=True, metadata={"description": "the course's result, when it completed"}
    )


class CourseEndIn(StrictSchema):
    reason = fields.String(
        required=True, validate=validate.OneOf(("completed", "timed-out", "aborted"))
    )


class AbortIn(StrictSchema):
    candidate = fields.String(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(ABORT_REASONS))


class IssueReportIn(StrictSchema):
    candidate = fields.String(required=True)
    category = fields.String(required=True, validate=validate.OneOf(ISSUE_CATEGORIES))
    challenge = fields.String(load_default=None)
    neutralize = fields.Boolean(
        load_default=False,
        metadata={
            "description": "ask to neutralize `challenge` (in-challenge or technical-problem"
            " reports only); granted only when the answer was wrong or skipped, a correct"
            " answer is kept"
        },
    )
    description = fields.String(
        load_default=None, validate=validate.Length(max=2000), metadata=FREE_TEXT
    )


class FinalizationIn(StrictSchema):
    absent = fields.List(fields.String(), load_default=list)
    incidents = fields.String(
        load_default=None, validate=validate.Length(max=5000), metadata=FREE_TEXT
    )
    aborts = fields.List(fields.Nested(AbortIn), load_default=list)
    issue_reports = fields.List(fields.Nested(IssueReportIn), load_default=list)


class DecisionIn(StrictSchema):
    decision = fields.String(required=True, validate=validate.OneOf(("fraud", "cancel")))
    reason = fields.String(
        required=True, validate=validate.Length(min=1, max=500), metadata=FREE_TEXT
    )


class IssuedOut(Schema):
    candidate = fields.String()
    course = fields.String()
    code = fields.String(metadata={"description": "the verification code"})


class PublicationOut(AppendedOut):
    certificates = fields.List(fields.Nested(IssuedOut))
    codes = fields.List(fields.String(), metadata={"description": "the same codes alone"})


class ReasonIn(StrictSchema):
    reason = fields.String(
        required=True, validate=validate.Length(min=1, max=500), metadata=FREE_TEXT
    )


class CancellationIn(ReasonIn):
    """A cancellation: its free-text reason stays private, its category is signed with it."""

    category = fields.String(
        load_default="other",
        validate=validate.OneOf(CANCELLATION_CATEGORIES),
        metadata={
            "description": "Reason category, signed. The holder and the operator read it; the"
            " public reads its neutral form (fraud -> issuer-decision, the others as they are)."
        },
    )


class RescoringIn(ReasonIn):
    """A late issue report: challenges to neutralize (only a wrong or skipped answer is)."""

    neutralize = fields.List(
        fields.String(validate=validate.Length(min=1, max=100)),
        required=True,
        validate=validate.Length(min=1, max=48),
    )
    category = fields.String(
        load_default="in-challenge", validate=validate.OneOf(NEUTRALIZING_CATEGORIES)
    )


class RescoringOut(Schema):
    result = fields.Dict(metadata={"description": "the new result (it names its rules)"})
    neutralized = fields.List(fields.String(), metadata={"description": "newly neutralized"})
    kept = fields.List(
        fields.String(), metadata={"description": "answered correctly: the answer was kept"}
    )
    certificate_action = fields.String(
        metadata={"description": "rescored, cancelled or unchanged",
                  "enum": ["rescored", "cancelled", "unchanged"]}
    )  # fmt: skip
    unchanged = fields.Boolean(
        metadata={"description": "the report left the certificate as it was (no certificate event)"}
    )


class CourseRescoringOut(Schema):
    course = fields.String()
    rescored = fields.Boolean(
        metadata={
            "description": "true: a rescoring under the current rules is recorded (by this call,"
            " or by an identical earlier one: a repeat records nothing and answers the same);"
            " false: the course was never rescored and already follows the current rules"
        }
    )
    dry_run = fields.Boolean()
    previous_rules = fields.String()
    previous_status = fields.String()
    result = fields.Dict(metadata={"description": "the latest result (it names its rules)"})
    certificate = fields.String(allow_none=True)
    certificate_action = fields.String(
        allow_none=True,
        metadata={
            "description": "rescored, cancelled, unchanged, issued (now validated after"
            " publication) or needs-review (a scoring error: nothing done to the certificate)",
            "enum": ["rescored", "cancelled", "unchanged", "issued", "needs-review", None],
        },
    )


class NeutralizationIn(ReasonIn):
    challenge = fields.String(required=True, validate=validate.Length(min=1, max=100))


class NeutralizationOut(AppendedOut):
    result = fields.Dict(metadata={"description": "the course's new result"})


class CertifiedCompetenceOut(Schema):
    code = fields.String()
    title = fields.String()
    level = fields.Integer()


class CertifiedDomainOut(Schema):
    code = fields.String()
    title = fields.String()
    competences = fields.List(fields.Nested(CertifiedCompetenceOut))


class ProofOut(Schema):
    """One stored event of the certificate, as checked when the answer was built."""

    seq = fields.Integer(allow_none=True)
    hash = fields.String(allow_none=True)
    kid = fields.String(allow_none=True)
    hash_valid = fields.Boolean()
    key_trusted = fields.Boolean(metadata={"description": "signed by a key this ledger trusts"})
    signature_valid = fields.Boolean()
    chain_link_valid = fields.Boolean()
    latest_seq = fields.Integer(allow_none=True)


class IntegrityProblemOut(Schema):
    check = fields.String(
        metadata={"description": "hash, key, signature, chain, missing, history or read-model"}
    )
    seq = fields.Integer(allow_none=True)
    fields_ = fields.List(fields.String(), data_key="fields", attribute="fields")


class IntegrityOut(Schema):
    verified = fields.Boolean()
    problems = fields.List(fields.Nested(IntegrityProblemOut))


class PublicCertificateOut(Schema):
    """Built from the certificate's signed events; on `integrity-failure`, content is null."""

    code = fields.String()
    holder = fields.Dict(
        allow_none=True, metadata={"description": "first/last name, birth date; null once erased"}
    )
    centre = fields.String(allow_none=True)
    passed_on = fields.String(allow_none=True)
    issued_on = fields.String(allow_none=True)
    valid_until = fields.String(allow_none=True)
    status = fields.String(
        metadata={
            "description": "valid, expired, cancelled, or integrity-failure when a stored event"
            " or the read model fails its checks (then nothing else is to be relied on)",
            "enum": ["valid", "expired", "cancelled", "integrity-failure"],
        }
    )
    status_since = fields.String(allow_none=True)
    audience = fields.String(
        metadata={
            "description": "who this answer was built for: public (no token, or a token that is"
            " neither the holder's nor an operator's), holder or operator",
            "enum": list(READERS),
        }
    )
    status_category = fields.String(
        allow_none=True,
        metadata={
            "description": "a cancellation's reason category, null unless cancelled: the"
            " signed one for the holder and the operator, its neutral public form for anybody"
            " else (fraud reads issuer-decision; the others as they are)",
            "enum": [*dict.fromkeys([*CANCELLATION_CATEGORIES, *PUBLIC_CATEGORY_VALUES]), None],
        },
    )
    status_reason = fields.String(
        allow_none=True,
        metadata={
            "description": "the cancellation's free-text reason, for the holder and the"
            " operator only: always null in the public view, and null once erased"
        },
    )
    status_reason_erased = fields.Boolean(
        metadata={
            "description": "the reason was sealed under the holder's subject, now erased"
            " (always false in the public view)"
        }
    )
    max_level = fields.Integer(allow_none=True)
    pix_score = fields.Integer(allow_none=True)
    domains = fields.List(fields.Nested(CertifiedDomainOut))
    history = fields.List(
        fields.Dict(),
        metadata={
            "description": "issued, cancelled and rescored entries (seq, on); a cancellation"
            " or rescoring has a `category` (a rescoring's is its cause; a cancellation's is"
            " its neutral public form, as `status_category`, unless you are the holder or the"
            " operator) and, for the holder and the operator only, its free-text `reason`"
            " (null, with `reason_erased`, once erased)"
        },
    )
    proof = fields.Nested(ProofOut, metadata={"description": "the issuing event"})
    events = fields.List(fields.Nested(ProofOut), metadata={"description": "every event, checked"})
    integrity = fields.Nested(IntegrityOut)


class CertificationHistoryOut(Schema):
    courses = fields.List(fields.Dict())
    certificates = fields.List(fields.Dict())

"""marshmallow schemas of the API's requests and responses (also its OpenAPI document)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ledger.domain.erasure import REASON_CODES
from ledger.domain.profile import ANSWER_RESULTS
from ledger.services.candidates import AUDIENCES

NAME = validate.Length(min=1, max=200)
TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"


class StrictSchema(Schema):
    """Unknown fields are an error: a typo must not be silently dropped."""

    class Meta:
        ordered = True


class CandidateIn(StrictSchema):
    first_name = fields.String(required=True, validate=NAME)
    last_name = fields.String(required=True, validate=NAME)
    birth_date = fields.Date(required=True)
    birth_place = fields.String(required=True, validate=NAME)
    email = fields.Email(load_default=None)
    external_id = fields.String(load_default=None, validate=validate.Length(min=1, max=100))
    audience = fields.String(load_default="adult", validate=validate.OneOf(AUDIENCES))


class AppendedOut(Schema):
    seq = fields.Integer()
    hash = fields.String()


class CandidateOut(AppendedOut):
    id = fields.String()
    subject = fields.String()


class AnswerIn(StrictSchema):
    candidate = fields.UUID(required=True)
    answer_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    challenge = fields.String(required=True, validate=validate.Length(min=1, max=100))
    skill = fields.String(required=True, validate=validate.Length(min=1, max=100))
    competence = fields.String(required=True, validate=validate.Length(min=1, max=10))
    result = fields.String(required=True, validate=validate.OneOf(ANSWER_RESULTS))
    time_spent_ms = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=0, max=86_400_000)
    )
    answered_at = fields.String(required=True, validate=validate.Regexp(TIME_PATTERN))


class AnswerBatchIn(StrictSchema):
    answers = fields.List(fields.Nested(AnswerIn), required=True)

    @validates_schema
    def not_empty(self, data: dict, **_: object) -> None:
        if not data.get("answers"):
            raise ValidationError("at least one answer", "answers")


class AnswerOutcomeOut(Schema):
    answer_id = fields.String()
    candidate = fields.String()
    status = fields.String(metadata={"description": "recorded, or duplicate (already recorded)"})
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
    after = fields.Integer(load_default=0, validate=validate.Range(min=0))
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=10_000))


class InclusionQuery(StrictSchema):
    seq = fields.Integer(required=True, validate=validate.Range(min=1))
    size = fields.Integer(required=True, validate=validate.Range(min=1))


class ConsistencyQuery(Schema):
    from_ = fields.Integer(required=True, data_key="from", validate=validate.Range(min=1))
    to = fields.Integer(required=True, validate=validate.Range(min=1))


# --- certification ---------------------------------------------------------------

DATE_ONLY = r"^\d{4}-\d{2}-\d{2}$"


class CentreIn(StrictSchema):
    name = fields.String(required=True, validate=NAME)
    kind = fields.String(
        required=True, validate=validate.OneOf(("school", "university", "organisation"))
    )
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


class SessionIn(StrictSchema):
    date = fields.Date(required=True)
    time = fields.String(required=True, validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"))
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
    state = fields.String()
    enrolled = fields.Integer()
    started = fields.Integer()
    created_at = fields.String()
    finalized_at = fields.String(allow_none=True)
    published_on = fields.String(allow_none=True)


class SessionCreatedOut(AppendedOut):
    id = fields.String()
    state = fields.String()


class SessionListOut(Schema):
    sessions = fields.List(fields.Nested(SessionOut))


class CandidateRefIn(StrictSchema):
    candidate = fields.UUID(required=True)


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
    deadline = fields.String()
    challenges = fields.List(fields.Nested(CourseChallengeOut))
    answered = fields.List(fields.String())
    result = fields.Dict(allow_none=True)


class CourseAnswerIn(StrictSchema):
    challenge = fields.String(required=True, validate=validate.Length(min=1, max=100))
    result = fields.String(required=True, validate=validate.OneOf(ANSWER_RESULTS))
    time_spent_ms = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=0, max=86_400_000)
    )


class CourseEndIn(StrictSchema):
    reason = fields.String(
        required=True, validate=validate.OneOf(("completed", "timed-out", "aborted"))
    )


class AbortIn(StrictSchema):
    candidate = fields.String(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(("candidate", "technical")))


class IssueReportIn(StrictSchema):
    candidate = fields.String(required=True)
    category = fields.String(required=True)
    challenge = fields.String(load_default=None)
    neutralize = fields.Boolean(load_default=False)
    description = fields.String(load_default=None, validate=validate.Length(max=2000))


class FinalizationIn(StrictSchema):
    absent = fields.List(fields.String(), load_default=list)
    incidents = fields.String(load_default=None, validate=validate.Length(max=5000))
    aborts = fields.List(fields.Nested(AbortIn), load_default=list)
    issue_reports = fields.List(fields.Nested(IssueReportIn), load_default=list)


class DecisionIn(StrictSchema):
    decision = fields.String(required=True, validate=validate.OneOf(("fraud", "cancel")))
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class PublicationOut(AppendedOut):
    certificates = fields.List(fields.String())


class ReasonIn(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class RescoringIn(ReasonIn):
    neutralize = fields.List(fields.String(), required=True, validate=validate.Length(min=1))


class CertifiedCompetenceOut(Schema):
    code = fields.String()
    title = fields.String()
    level = fields.Integer()


class CertifiedDomainOut(Schema):
    code = fields.String()
    title = fields.String()
    competences = fields.List(fields.Nested(CertifiedCompetenceOut))


class ProofOut(Schema):
    seq = fields.Integer()
    hash = fields.String()
    kid = fields.String()
    signature_valid = fields.Boolean()
    chain_link_valid = fields.Boolean()
    latest_seq = fields.Integer()


class PublicCertificateOut(Schema):
    code = fields.String()
    holder = fields.Dict(
        allow_none=True, metadata={"description": "first/last name, birth date; null once erased"}
    )
    centre = fields.String()
    passed_on = fields.String()
    issued_on = fields.String()
    valid_until = fields.String()
    status = fields.String(metadata={"description": "valid, expired or cancelled"})
    status_since = fields.String()
    status_reason = fields.String(allow_none=True)
    max_level = fields.Integer()
    pix_score = fields.Integer()
    domains = fields.List(fields.Nested(CertifiedDomainOut))
    history = fields.List(fields.Dict())
    proof = fields.Nested(ProofOut)


class CertificationHistoryOut(Schema):
    courses = fields.List(fields.Dict())
    certificates = fields.List(fields.Dict())

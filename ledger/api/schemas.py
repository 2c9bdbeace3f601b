"""marshmallow schemas of the API's requests and responses (also its OpenAPI document)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

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
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


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

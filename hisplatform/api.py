"""REST API views and their base (token or session, JSON in and out, one error body): parse, call, render."""

from __future__ import annotations

import binascii
import codecs
import json
from typing import Any, Final

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.validators import RegexValidator
from django.http import HttpResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from accessctl.models import BreakGlassReason, BreakGlassScope, BreakGlassSession, Purpose
from accessctl.services import AccessError, breakglass_end, breakglass_open, breakglass_review
from audit.models import AuditEvent, EventKind, EventStatus
from audit.services import audit_record
from audit.signals import client_details
from hisplatform.api_errors import Pagination, RequestTooLarge
from hisplatform.api_tokens import TokenError, token_revoke
from hisplatform.queries import ABSTAINED, DENIED, ERROR, answer_question, export_answer
from hisplatform.selectors import question_history_events

BAD_TOKEN: Final = (
    "The token is not valid: it is unknown, expired or revoked. Create a new one on your tokens page."  # noqa: S105
)

# The largest id a path or body may name: 18 digits fit a 64-bit database integer (a larger number
# would be a database error, a 500, instead of "no such object").
_LARGEST_ID: Final = 999_999_999_999_999_999


class ApiTokenAuthentication(TokenAuthentication):
    """Knox's tokens, with every malformed header a 401 rather than a 500, and one message for all."""

    def authenticate_credentials(self, token: bytes) -> tuple[User, AuthToken]:
        try:
            token.decode("utf-8")
            return super().authenticate_credentials(token)  # type: ignore[no-any-return]
        except (UnicodeDecodeError, TypeError, binascii.Error):
            raise exceptions.AuthenticationFailed(BAD_TOKEN) from None
        except exceptions.AuthenticationFailed as error:
            if error.detail == "User inactive or deleted.":
                raise
            raise exceptions.AuthenticationFailed(BAD_TOKEN) from None


class ApiTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "hisplatform.api.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'A personal token from /account/tokens/, sent as "Token <token>".',
        }


class JsonParser(BaseParser):
    """JSON bodies only, bounded in size, and every malformed one a 400 (nesting deep enough to exhaust
    the parser's recursion included, which DRF's own parser lets through as a 500)."""

    media_type = "application/json"
    renderer_class = JSONRenderer

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit: int = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440
        raw = stream.read(limit + 1)  # the length announced may be a lie; what arrives is counted
        if len(raw) > limit:
            raise RequestTooLarge(f"The request body is larger than {limit:,} bytes.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(codecs.decode(raw, encoding), parse_constant=_no_constants)
        except (ValueError, RecursionError, LookupError) as exc:
            raise exceptions.ParseError(f"The body is not valid JSON ({type(exc).__name__}).") from None


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


class ErrorOutput(serializers.Serializer[dict[str, Any]]):
    code = serializers.CharField(help_text="Stable: what a client branches on.")
    message = serializers.CharField(help_text="For the person: what is wrong and what to do.")
    details = serializers.DictField(required=False, help_text="What is wrong with each field.")
    audit_event = serializers.IntegerField(required=False, help_text="The audit event of the refusal.")
    retry_after_seconds = serializers.IntegerField(required=False, help_text="429 only: wait this long.")


# Every operation documents the errors it can answer with, in the one body.
_ERRORS: Final[dict[str, str]] = {
    "400": "The request is not valid; `details` says what is wrong with each field.",
    "401": "No credentials, or the token is unknown, expired or revoked.",
    "403": "Your role may not do this (or a session request without its CSRF token).",
    "404": "No such object, or one you may not see.",
    "413": "The request body is too large.",
    "415": "The body is not JSON.",
    "429": "Too many requests; wait Retry-After seconds.",
}


class ApiSchema(AutoSchema):
    """drf-spectacular's schema, with the error responses of every operation and their headers."""

    def get_tags(self) -> list[str]:
        # /api/v1/<resource>/...: one group per resource in the docs, not one "v1" for everything.
        parts = self.path.strip("/").split("/")
        return [parts[2]] if len(parts) > 2 else super().get_tags()

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)  # type: ignore[arg-type]
        codes = ["429"]
        if not any(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes += ["401", "403"]
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            codes += ["400", "413", "415"]
        if self.method == "GET" and self._is_list_view():
            codes += ["400", "404"]  # a page or page size out of range; a page beyond the last
        elif "{" in self.path:
            codes.append("404")
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorOutput, code, direction=direction)  # type: ignore[no-untyped-call]
                responses[code]["description"] = _ERRORS[code]
        if "429" in responses:
            responses["429"]["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds until you may retry."}
            }
        if "401" in responses:
            responses["401"]["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": "How to authenticate."}
            }
        return dict(sorted(responses.items()))


class ApiView(APIView):
    """The base of every API view: token or session, JSON in and out, errors in the one body.

    Throttles run before the permission check (DRF runs them after): a caller without valid
    credentials is limited by address, so guessing tokens is as limited as anything else.
    """

    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    parser_classes = [JsonParser]
    renderer_classes = [JSONRenderer]
    schema = ApiSchema()
    _auth_failure: exceptions.AuthenticationFailed | None = None

    def perform_authentication(self, request: Request) -> None:
        try:
            request.user  # noqa: B018 (authenticates)
        except exceptions.AuthenticationFailed as failure:
            self._auth_failure = failure  # raised once the throttles have counted the attempt

    def check_permissions(self, request: Request) -> None:
        super().check_throttles(request)
        if self._auth_failure is not None:
            raise self._auth_failure
        super().check_permissions(request)

    def check_throttles(self, request: Request) -> None:
        """Done in check_permissions, before it."""


def signed_in(user: User | AnonymousUser) -> User:
    """The request's user, once the permission check has let only signed-in users through."""
    if not isinstance(user, User):  # unreachable behind IsAuthenticated; fails closed if it ever is not
        raise exceptions.NotAuthenticated()
    return user


def id_parameter(name: str, description: str) -> OpenApiParameter:
    """An object id in the path, as the URL's `api_id` converter accepts it (at most 18 digits)."""
    return OpenApiParameter(
        name,
        {"type": "integer", "minimum": 0, "maximum": _LARGEST_ID},
        OpenApiParameter.PATH,
        description=description,
    )


# An error the pipeline reports -> the HTTP status that says whose problem it is.
_ERROR_STATUS: Final[dict[str, int]] = {"bad_purpose": status.HTTP_400_BAD_REQUEST}
_SESSION_ID: Final = id_parameter("session_id", "The break-glass session's id.")


# Input fields that take only their own JSON type. DRF's own would read 0 or true as the string "0" or
# "True", and "1" or 1.0 as the number 1: requests the schema calls invalid would be served.
class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictChoiceField(serializers.ChoiceField):
    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


# Free text that must say something: at least one character that is not a space (the schema says so
# with a pattern, so generated and hand-written clients know it before they ask).
_SOME_TEXT = RegexValidator(r"\S", "Write something, not only spaces.")


class AskInput(serializers.Serializer[dict[str, Any]]):
    question = StrictCharField(allow_blank=True, trim_whitespace=False)
    purpose = StrictChoiceField(choices=Purpose.choices, required=False, allow_blank=True)
    confirm = StrictBooleanField(
        required=False, default=False, help_text="Confirm the purpose of use for special-category data."
    )
    project = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=30,
        help_text="Research project code; needed when the researcher belongs to several.",
    )


class ExportInput(AskInput):
    fresh_pseudonyms = StrictBooleanField(
        required=False,
        default=False,
        help_text="Research pseudonyms and date shifts keyed for this export alone (unlinkable to others).",
    )


class TraceEntryOutput(serializers.Serializer[dict[str, Any]]):
    data_class = serializers.CharField()
    effect = serializers.ChoiceField(choices=["allow", "deny"])
    rules = serializers.ListField(child=serializers.CharField())
    deciding = serializers.CharField()


class PolicyOutput(serializers.Serializer[dict[str, Any]]):
    decision = serializers.ChoiceField(choices=["allow", "deny", "none"], required=False)
    purpose = serializers.CharField(required=False)
    reason = serializers.CharField(required=False)
    classes = TraceEntryOutput(many=True, required=False)


class AskOutput(serializers.Serializer[dict[str, Any]]):
    status = serializers.ChoiceField(choices=["answered", "abstained", "denied", "error"])
    message = serializers.CharField()
    code = serializers.CharField(allow_blank=True)
    interpretation = serializers.CharField(allow_blank=True)
    sql = serializers.CharField(allow_null=True)
    columns = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(child=serializers.ListField(child=serializers.JSONField(allow_null=True)))
    truncated = serializers.BooleanField()
    masked = serializers.DictField(child=serializers.CharField())
    suppressed = serializers.ListField(child=serializers.DictField())
    notices = serializers.ListField(child=serializers.CharField())
    confirm_required = serializers.ListField(child=serializers.CharField())
    suggestions = serializers.ListField(child=serializers.CharField())
    purpose = serializers.CharField(allow_blank=True)
    disclosure = serializers.DictField(
        help_text="How the answer was protected beyond masks: lane, project, k, re-identification risk."
    )
    policy = PolicyOutput()
    audit_event = serializers.IntegerField(allow_null=True)


class AskApi(ApiView):
    """Ask a question in plain English; the answer is what policy lets this user see."""

    # Questions reach the warehouse: besides the per-user limit, a tighter one of their own ("ask").
    throttle_classes = [*APIView.throttle_classes, ScopedRateThrottle]
    throttle_scope = "ask"

    @extend_schema(request=AskInput, responses={200: AskOutput, 400: ErrorOutput, 503: AskOutput})
    def post(self, request: Request) -> Response:
        form = AskInput(data=request.data)
        if not form.is_valid():
            return _invalid_question(request, form, EventKind.QUESTION)
        answer = answer_question(
            user=signed_in(request.user),
            question=form.validated_data["question"],
            purpose=form.validated_data.get("purpose") or None,
            confirm_special=form.validated_data["confirm"],
            project=form.validated_data.get("project") or None,
            channel="api",
            **client_details(request._request),
        )
        code: int = status.HTTP_200_OK
        if answer.status == ERROR:
            code = _ERROR_STATUS.get(answer.code, status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(answer.as_dict(), status=code)


class ExportApi(ApiView):
    """Export an answer as CSV, under the same controls as asking; recorded as an export."""

    # An export is a question too, and counts towards the same limit.
    throttle_classes = [*APIView.throttle_classes, ScopedRateThrottle]
    throttle_scope = "ask"

    @extend_schema(
        request=ExportInput,
        responses={
            (200, "text/csv"): OpenApiResponse(description="The answer as CSV (RFC 4180)."),
            400: ErrorOutput,
            403: AskOutput,
            422: AskOutput,
            503: AskOutput,
        },
    )
    def post(self, request: Request) -> HttpResponse | Response:
        form = ExportInput(data=request.data)
        if not form.is_valid():
            return _invalid_question(request, form, EventKind.EXPORT)
        export = export_answer(
            user=signed_in(request.user),
            question=form.validated_data["question"],
            purpose=form.validated_data.get("purpose") or None,
            confirm_special=form.validated_data["confirm"],
            project=form.validated_data.get("project") or None,
            fresh_pseudonyms=form.validated_data["fresh_pseudonyms"],
            channel="api",
            **client_details(request._request),
        )
        answer = export.answer
        if export.csv is None:
            code = {
                ABSTAINED: status.HTTP_422_UNPROCESSABLE_ENTITY,
                DENIED: status.HTTP_403_FORBIDDEN,
            }.get(answer.status, _ERROR_STATUS.get(answer.code, status.HTTP_503_SERVICE_UNAVAILABLE))
            return Response(answer.as_dict(), status=code)
        response = HttpResponse(export.csv, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        response["X-Audit-Event"] = str(answer.audit_event)
        return response


class BreakGlassInput(serializers.Serializer[dict[str, Any]]):
    reason = StrictChoiceField(choices=BreakGlassReason.choices)
    justification = StrictCharField(max_length=4000, validators=[_SOME_TEXT])
    password = StrictCharField(
        min_length=1, max_length=512, trim_whitespace=False, style={"input_type": "password"}
    )
    scope = StrictChoiceField(choices=BreakGlassScope.choices)
    subject_id = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=_LARGEST_ID)
    careunit = StrictCharField(required=False, allow_blank=True, max_length=100)
    minutes = StrictIntegerField(required=False, min_value=1, max_value=60)


class BreakGlassOutput(serializers.ModelSerializer[BreakGlassSession]):
    class Meta:
        model = BreakGlassSession
        fields = [
            "id", "username", "reason_code", "justification", "scope", "subject_id", "careunit", "opened_at",
            "expires_at", "ended_at", "end_reason", "escalated", "queries", "review",
        ]  # fmt: skip


class ReviewInput(serializers.Serializer[dict[str, Any]]):
    outcome = StrictChoiceField(
        choices=[BreakGlassSession.Review.APPROPRIATE, BreakGlassSession.Review.INAPPROPRIATE]
    )
    notes = StrictCharField(max_length=4000, validators=[_SOME_TEXT])


def _refused(error: AccessError) -> Response:
    forbidden = error.code in ("role", "password", "own_session", "self")
    missing = error.code == "not_found"
    code = status.HTTP_403_FORBIDDEN if forbidden else status.HTTP_404_NOT_FOUND if missing else 400
    if error.code == "password_locked":
        code = status.HTTP_429_TOO_MANY_REQUESTS
    return Response({"code": error.code, "message": error.message}, status=code)


def _invalid_question(request: Request, form: AskInput, kind: str) -> Response:
    """A malformed question or export request: refused with what is wrong, and audited."""
    event = audit_record(
        user=request.user,
        kind=kind,
        status=EventStatus.ERROR,
        question=str(request.data.get("question", ""))[:10_000] if hasattr(request.data, "get") else "",
        message="invalid request",
        details={"channel": "api", "errors": form.errors},
        **client_details(request._request),
    )
    return _invalid(form, audit_event=event.pk)


def _invalid(form: serializers.Serializer[dict[str, Any]], **extra: Any) -> Response:
    return Response(
        {
            "code": "invalid_request",
            "message": "The request is not valid: "
            + "; ".join(f"{k}: {v[0]}" for k, v in form.errors.items()),
            "details": form.errors,
            **extra,
        },
        status=status.HTTP_400_BAD_REQUEST,
    )


class BreakGlassOpenApi(ApiView):
    """Open emergency access to one patient or one unit: a coded reason, a justification, your password."""

    @extend_schema(
        request=BreakGlassInput, responses={201: BreakGlassOutput, 400: ErrorOutput, 403: ErrorOutput}
    )
    def post(self, request: Request) -> Response:
        form = BreakGlassInput(data=request.data)
        if not form.is_valid():
            return _invalid(form)
        data = form.validated_data
        try:
            session = breakglass_open(
                user=signed_in(request.user),
                reason=data["reason"],
                justification=data["justification"],
                password=data["password"],
                scope=data["scope"],
                subject_id=data.get("subject_id"),
                careunit=data.get("careunit", ""),
                minutes=data.get("minutes"),
                **client_details(request._request),
            )
        except AccessError as error:
            return _refused(error)
        return Response(BreakGlassOutput(session).data, status=status.HTTP_201_CREATED)


class BreakGlassEndApi(ApiView):
    """End your own open break-glass session early."""

    @extend_schema(
        parameters=[_SESSION_ID],
        request=None,
        responses={200: BreakGlassOutput, 400: ErrorOutput, 404: ErrorOutput},
    )
    def post(self, request: Request, session_id: int) -> Response:
        try:
            session = breakglass_end(user=signed_in(request.user), session_id=session_id)
        except AccessError as error:
            return _refused(error)
        return Response(BreakGlassOutput(session).data)


class BreakGlassReviewApi(ApiView):
    """Close the review of an ended break-glass session (security officers)."""

    @extend_schema(
        parameters=[_SESSION_ID],
        request=ReviewInput,
        responses={200: BreakGlassOutput, 400: ErrorOutput, 403: ErrorOutput, 404: ErrorOutput},
    )
    def post(self, request: Request, session_id: int) -> Response:
        form = ReviewInput(data=request.data)
        if not form.is_valid():
            return _invalid(form)
        try:
            session = breakglass_review(
                officer=signed_in(request.user),
                session_id=session_id,
                outcome=form.validated_data["outcome"],
                notes=form.validated_data["notes"],
            )
        except AccessError as error:
            return _refused(error)
        return Response(BreakGlassOutput(session).data)


class PastQuestionOutput(serializers.ModelSerializer[AuditEvent]):
    audit_event = serializers.IntegerField(source="seq")
    asked_at = serializers.DateTimeField(source="occurred_at")
    purpose = serializers.CharField(source="purpose_of_use")
    status = serializers.CharField(help_text="answered, abstained, denied or error.")

    class Meta:
        model = AuditEvent
        fields = ["audit_event", "asked_at", "question", "status", "purpose"]


class QuestionHistoryApi(ApiView):
    """The questions you asked (web, API, command line), newest first: your words and their outcome."""

    pagination_class = Pagination

    @extend_schema(responses={200: PastQuestionOutput(many=True)})
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            question_history_events(fetched_by=request.user), request, view=self
        )
        return paginator.get_paginated_response(PastQuestionOutput(page, many=True).data)


class CurrentTokenApi(ApiView):
    """Revoke the token this request is made with: a script's sign-out."""

    @extend_schema(
        request=None,
        responses={
            204: OpenApiResponse(description="Revoked; the token no longer works."),
            400: OpenApiResponse(ErrorOutput, description="The request was not made with a token."),
        },
    )
    def delete(self, request: Request) -> Response:
        if not isinstance(request.auth, AuthToken):
            return Response(
                {"code": "no_token", "message": "This request was not made with a token; sign out of the web "
                 "session with the Log out button instead."},
                status=status.HTTP_400_BAD_REQUEST,
            )  # fmt: skip
        try:
            token_revoke(
                user=signed_in(request.user),
                key=request.auth.token_key,
                channel="api",
                **client_details(request._request),
            )
        except TokenError as error:  # revoked by another request a moment ago
            return Response({"code": error.code, "message": error.message}, status=status.HTTP_404_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)

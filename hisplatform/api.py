"""REST API views: parse, call the pipeline, render. Errors share one body: {"code", "message", ...}."""

from __future__ import annotations

from typing import Any, Final

from django.contrib.auth.models import User
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accessctl.models import BreakGlassReason, BreakGlassScope, BreakGlassSession, Purpose
from accessctl.services import AccessError, breakglass_end, breakglass_open, breakglass_review
from audit.models import EventKind, EventStatus
from audit.services import audit_record
from audit.signals import client_details
from hisplatform.queries import ABSTAINED, DENIED, ERROR, answer_question, export_answer

# An error the pipeline reports -> the HTTP status that says whose problem it is.
_ERROR_STATUS: Final[dict[str, int]] = {"bad_purpose": status.HTTP_400_BAD_REQUEST}


class AskInput(serializers.Serializer[dict[str, Any]]):
    question = serializers.CharField(allow_blank=True, trim_whitespace=False)
    purpose = serializers.ChoiceField(choices=Purpose.choices, required=False, allow_blank=True)
    confirm = serializers.BooleanField(
        required=False, default=False, help_text="Confirm the purpose of use for special-category data."
    )
    project = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=30,
        help_text="Research project code; needed when the researcher belongs to several.",
    )


class ExportInput(AskInput):
    fresh_pseudonyms = serializers.BooleanField(
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


class ErrorOutput(serializers.Serializer[dict[str, Any]]):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField(required=False, help_text="What is wrong with each field.")
    audit_event = serializers.IntegerField(required=False)


class AskApi(APIView):
    """Ask a question in plain English; the answer is what policy lets this user see."""

    @extend_schema(request=AskInput, responses={200: AskOutput, 400: ErrorOutput, 503: AskOutput})
    def post(self, request: Request) -> Response:
        form = AskInput(data=request.data)
        if not form.is_valid():
            return _invalid_question(request, form, EventKind.QUESTION)
        answer = answer_question(
            user=request.user,
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


class ExportApi(APIView):
    """Export an answer as CSV, under the same controls as asking; recorded as an export."""

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
            user=request.user,
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
    reason = serializers.ChoiceField(choices=BreakGlassReason.choices)
    justification = serializers.CharField(max_length=4000)
    password = serializers.CharField(max_length=512, trim_whitespace=False, style={"input_type": "password"})
    scope = serializers.ChoiceField(choices=BreakGlassScope.choices)
    subject_id = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    careunit = serializers.CharField(required=False, allow_blank=True, max_length=100)
    minutes = serializers.IntegerField(required=False, min_value=1, max_value=60)


class BreakGlassOutput(serializers.ModelSerializer[BreakGlassSession]):
    class Meta:
        model = BreakGlassSession
        fields = [
            "id", "username", "reason_code", "justification", "scope", "subject_id", "careunit", "opened_at",
            "expires_at", "ended_at", "end_reason", "escalated", "queries", "review",
        ]  # fmt: skip


class ReviewInput(serializers.Serializer[dict[str, Any]]):
    outcome = serializers.ChoiceField(
        choices=[BreakGlassSession.Review.APPROPRIATE, BreakGlassSession.Review.INAPPROPRIATE]
    )
    notes = serializers.CharField(max_length=4000)


def _refused(error: AccessError) -> Response:
    forbidden = error.code in ("role", "password", "own_session", "self")
    missing = error.code == "not_found"
    code = status.HTTP_403_FORBIDDEN if forbidden else status.HTTP_404_NOT_FOUND if missing else 400
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


class BreakGlassOpenApi(APIView):
    """Open emergency access to one patient or one unit: a coded reason, a justification, your password."""

    @extend_schema(
        request=BreakGlassInput, responses={201: BreakGlassOutput, 400: ErrorOutput, 403: ErrorOutput}
    )
    def post(self, request: Request) -> Response:
        form = BreakGlassInput(data=request.data)
        if not form.is_valid():
            return _invalid(form)
        data = form.validated_data
        assert isinstance(request.user, User)
        try:
            session = breakglass_open(
                user=request.user,
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


class BreakGlassEndApi(APIView):
    """End your own open break-glass session early."""

    @extend_schema(request=None, responses={200: BreakGlassOutput, 400: ErrorOutput, 404: ErrorOutput})
    def post(self, request: Request, session_id: int) -> Response:
        assert isinstance(request.user, User)
        try:
            session = breakglass_end(user=request.user, session_id=session_id)
        except AccessError as error:
            return _refused(error)
        return Response(BreakGlassOutput(session).data)


class BreakGlassReviewApi(APIView):
    """Close the review of an ended break-glass session (security officers)."""

    @extend_schema(request=ReviewInput, responses={200: BreakGlassOutput, 400: ErrorOutput, 403: ErrorOutput})
    def post(self, request: Request, session_id: int) -> Response:
        form = ReviewInput(data=request.data)
        if not form.is_valid():
            return _invalid(form)
        assert isinstance(request.user, User)
        try:
            session = breakglass_review(
                officer=request.user,
                session_id=session_id,
                outcome=form.validated_data["outcome"],
                notes=form.validated_data["notes"],
            )
        except AccessError as error:
            return _refused(error)
        return Response(BreakGlassOutput(session).data)

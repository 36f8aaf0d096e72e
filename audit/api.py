"""The privacy office's alerts over the REST API: the open ones by risk, one in detail, and triage."""

from __future__ import annotations

from typing import Any, Final

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from audit.alerts import QUEUE_FILTERS, AlertError, alert_detail, alert_queue, alert_triage, alerts_visible_to
from audit.models import Alert, AlertNote, AlertState, AuditEvent
from audit.signals import client_details
from hisplatform.api import ApiView, ErrorOutput, StrictCharField, StrictChoiceField, id_parameter, signed_in
from hisplatform.api_errors import Pagination

# AlertError codes -> whose problem and what kind: the role refused, the alert unseen, or a step the
# alert's current state does not allow.
_STATUS: Final[dict[str, int]] = {
    "role": status.HTTP_403_FORBIDDEN,
    "not_found": status.HTTP_404_NOT_FOUND,
    "transition": status.HTTP_409_CONFLICT,
}
_NO_SUCH_ALERT: Final = "There is no such alert."
_ALERT_ID: Final = id_parameter("alert_id", "The alert's id.")
_SHOWN: Final = OpenApiParameter(
    "state",
    str,
    OpenApiParameter.QUERY,
    enum=list(QUEUE_FILTERS),
    default="open",
    description="Which alerts: open (new or investigating, the default), all, or those in one state.",
)


def _refused(error: AlertError) -> Response:
    code = _STATUS.get(error.code, status.HTTP_400_BAD_REQUEST)
    return Response({"code": error.code, "message": error.message}, status=code)


class AlertOutput(serializers.ModelSerializer[Alert]):
    assignee = serializers.SerializerMethodField(help_text="The officer's username; empty when unassigned.")

    class Meta:
        model = Alert
        fields = ["id", "username", "role", "day", "created_at", "updated_at", "risk", "summary", "state",
                  "label", "assignee"]  # fmt: skip

    def get_assignee(self, alert: Alert) -> str:
        return alert.assignee.get_username() if alert.assignee else ""


class ReasonOutput(serializers.Serializer[dict[str, Any]]):
    code = serializers.CharField()
    kind = serializers.CharField(required=False, help_text="rule (a relationship rule fired) or baseline.")
    text = serializers.CharField(help_text="The reason in a privacy officer's words.")
    patients = serializers.ListField(child=serializers.IntegerField(), required=False)
    value = serializers.FloatField(required=False, help_text="Baseline reasons: the day's value.")
    peer_median = serializers.FloatField(required=False, help_text="Baseline reasons: the role's median day.")


class NoteOutput(serializers.ModelSerializer[AlertNote]):
    # Plain strings: the alert's `state` already names the choice set once in the schema.
    state_from = serializers.CharField(help_text="The state before this step; empty if unchanged.")
    state_to = serializers.CharField(help_text="The state after this step; empty if unchanged.")

    class Meta:
        model = AlertNote
        fields = ["author_name", "created_at", "text", "state_from", "state_to"]


class EventOutput(serializers.ModelSerializer[AuditEvent]):
    status = serializers.CharField(help_text="answered, abstained, denied, error or ok.")

    class Meta:
        model = AuditEvent
        fields = ["seq", "occurred_at", "kind", "status", "purpose_of_use", "question", "decision",
                  "row_count", "patients_touched_count", "breakglass_session_id"]  # fmt: skip


class AlertDetailOutput(AlertOutput):
    reasons = ReasonOutput(many=True)
    notes = NoteOutput(many=True, source="triage_notes")
    events = EventOutput(many=True, source="behind", help_text="The events behind the alert, oldest first.")

    class Meta(AlertOutput.Meta):
        fields = [*AlertOutput.Meta.fields, "first_event_at", "last_event_at", "reasons", "notes", "events"]


class TriageInput(serializers.Serializer[dict[str, Any]]):
    state = StrictChoiceField(choices=AlertState.choices, required=False, help_text="The state to move to.")
    note = StrictCharField(
        required=False, allow_blank=True, max_length=10_000, trim_whitespace=False, default="",
        help_text="What the investigation found; needed to conclude (confirmed, false positive).",
    )  # fmt: skip
    assignee = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=150,
        help_text="A security officer's username; empty unassigns.",
    )


class AlertListApi(ApiView):
    """Alerts, highest risk first; open ones unless ?state= says otherwise (security officers; alerts
    about yourself are never listed). Each page read is recorded in the audit trail."""

    pagination_class = Pagination

    @extend_schema(parameters=[_SHOWN], responses={200: AlertOutput(many=True)})
    def get(self, request: Request) -> Response:
        try:
            alerts = alert_queue(
                fetched_by=signed_in(request.user),
                shown=request.query_params.get("state", "open"),
                **client_details(request._request),
            )
        except AlertError as error:
            return _refused(error)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(alerts, request, view=self)
        return paginator.get_paginated_response(AlertOutput(page, many=True).data)


class AlertDetailApi(ApiView):
    """One alert with its reasons, triage notes and the events behind it (security officers)."""

    @extend_schema(parameters=[_ALERT_ID], responses={200: AlertDetailOutput})
    def get(self, request: Request, alert_id: int) -> Response:
        try:
            alert, notes, events = alert_detail(
                fetched_by=signed_in(request.user), alert_id=alert_id, **client_details(request._request)
            )
        except AlertError as error:
            return _refused(error)
        alert.triage_notes = notes  # type: ignore[attr-defined]
        alert.behind = events  # type: ignore[attr-defined]
        return Response(AlertDetailOutput(alert).data)


class AlertTriageApi(ApiView):
    """Move an alert on, assign it, or add a note; refusals say why (409: not from this state)."""

    @extend_schema(
        parameters=[_ALERT_ID],
        request=TriageInput,
        responses={
            200: AlertOutput,
            409: OpenApiResponse(ErrorOutput, description="The alert's state does not allow this step."),
        },
    )
    def post(self, request: Request, alert_id: int) -> Response:
        form = TriageInput(data=request.data)
        form.is_valid(raise_exception=True)
        officer = signed_in(request.user)
        data = form.validated_data
        try:
            alert = alert_triage(
                officer=officer,
                alert_id=alert_id,
                state=data.get("state"),
                note=data["note"],
                assignee=data.get("assignee"),
            )
        except AlertError as error:
            if error.code == "own_alert" and not alerts_visible_to(officer).filter(pk=alert_id).exists():
                # An alert about the officer reads as none, as in alert_detail (the refusal is audited).
                return Response({"code": "not_found", "message": _NO_SUCH_ALERT}, status=404)
            return _refused(error)
        return Response(AlertOutput(alert).data)

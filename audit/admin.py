"""Admin for the audit store: staff may look, nobody may add, change or delete; every look is audited.

What people asked (question text, SQL) and whose records they saw can itself be health information:
only security officers see it here; other staff with admin access see that it is withheld.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from django.contrib import admin
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from audit.alerts import alerts_visible_to, is_security_officer
from audit.models import Alert, AlertNote, AuditEvent, BaselineModel, Checkpoint, EventStatus
from audit.services import audit_access_record
from audit.signals import client_details

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[AuditEvent]
    _AlertAdmin = admin.ModelAdmin[Alert]
    _BaselineAdmin = admin.ModelAdmin[BaselineModel]
    _CheckpointAdmin = admin.ModelAdmin[Checkpoint]
    _NoteInline = admin.TabularInline[AlertNote, Alert]
else:
    _ModelAdmin = _AlertAdmin = _BaselineAdmin = _CheckpointAdmin = admin.ModelAdmin
    _NoteInline = admin.TabularInline

# Every column, read-only; the user is shown as the id recorded, since following the relation
# fails once the account is deleted.
_FIELDS = tuple(field.attname if field.name == "user" else field.name for field in AuditEvent._meta.fields)
# Columns that can hold health information: shown to security officers only.
# Columns that can hold health information (what was asked, the SQL, whose records, a refusal naming a
# patient, an interpretation restating the question, the categories found): security officers only. The
# rest (who, when, what kind, the outcome, counts) is what other staff with admin access may see.
PROTECTED: Final = (
    "question",
    "sql_generated",
    "sql_executed",
    "patients_touched",
    "message",
    "details",
    "policy_trace",
    "obligations",
    "attributes",
)
WITHHELD: Final = "Withheld: visible to security officers only."


def _is_officer(request: HttpRequest) -> bool:
    user = request.user
    return isinstance(user, User) and is_security_officer(user)


class _AuditedReads:
    """Every page of these admins, shown or refused, leaves an audit event naming what was asked for."""

    reads: str = "audit records"  # what a page of this admin shows, in the event's message

    def _record(self, request: HttpRequest, what: str, details: dict[str, Any]) -> None:
        allowed = self.has_view_permission(request)  # type: ignore[attr-defined]
        user = request.user
        audit_access_record(
            user=user if isinstance(user, User) else None,
            status=EventStatus.OK if allowed else EventStatus.DENIED,
            what=what if allowed else f"refused: {what}",
            details={"path": request.path, **details},
            **client_details(request),
        )

    def _details(self, request: HttpRequest, object_id: str) -> dict[str, Any]:
        return {"object": object_id[:20]}

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._record(request, f"{self.reads} list viewed", {"query": dict(request.GET.lists())})
        return super().changelist_view(request, extra_context)  # type: ignore[misc,no-any-return]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        self._record(request, f"{self.reads} {object_id[:20]} viewed", self._details(request, object_id))
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc,no-any-return]

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._record(
            request, f"{self.reads} {object_id[:20]} history viewed", self._details(request, object_id)
        )
        return super().history_view(request, object_id, extra_context)  # type: ignore[misc,no-any-return]

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._record(
            request, f"{self.reads} {object_id[:20]} deletion page asked for", {"object": object_id[:20]}
        )
        return super().delete_view(request, object_id, extra_context)  # type: ignore[misc,no-any-return]


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(_AuditedReads, _ReadOnly, _ModelAdmin):
    list_display = (
        "seq",
        "occurred_at",
        "username",
        "role",
        "kind",
        "status",
        "decision",
        "purpose_of_use",
        "row_count",
        "patients_touched_count",
    )
    list_filter = ("kind", "status", "role", "decision", "purpose_of_use")
    search_fields = ("username",)
    date_hierarchy = "occurred_at"
    ordering = ("-seq",)
    # COUNT(*) over millions of rows on every page view is what makes audit admin pages slow.
    show_full_result_count = False
    list_per_page = 50

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if _is_officer(request):
            return _FIELDS
        return tuple(f"{name}_withheld" if name in PROTECTED else name for name in _FIELDS)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return self.get_fields(request, obj)

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # A filter in the address (?question__icontains=hiv) would search what the page withholds.
        if lookup.split("__", 1)[0] in PROTECTED and (request is None or not _is_officer(request)):
            return False
        return super().lookup_allowed(lookup, value, request)

    reads = "audit event"

    def _details(self, request: HttpRequest, object_id: str) -> dict[str, Any]:
        return {"event": object_id[:20], "protected_shown": _is_officer(request)}


def _withheld(name: str) -> Any:
    def show(self: Any, obj: AuditEvent) -> str:
        return WITHHELD if getattr(obj, name) else ""

    return admin.display(description=name.replace("_", " "))(show)


for _name in PROTECTED:
    setattr(AuditEventAdmin, f"{_name}_withheld", _withheld(_name))


class AlertNoteInline(_ReadOnly, _NoteInline):
    model = AlertNote
    fields = ("created_at", "author_name", "state_from", "state_to", "text")
    readonly_fields = fields
    extra = 0


@admin.register(Alert)
class AlertAdmin(_AuditedReads, _ReadOnly, _AlertAdmin):
    """Alerts name patients in their reasons: the privacy office only. Triage goes through its services."""

    list_display = ("id", "day", "username", "role", "risk", "state", "assignee", "summary")
    list_filter = ("state", "role", "label")
    search_fields = ("username",)
    ordering = ("-risk", "-created_at")
    inlines = (AlertNoteInline,)
    show_full_result_count = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_officer(request)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alert]:
        user = request.user
        if not isinstance(user, User):
            return Alert.objects.none()
        return alerts_visible_to(user)  # never the alerts about the officer reading

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _is_officer(request) or super().has_module_permission(request)

    reads = "alert"


@admin.register(BaselineModel)
class BaselineModelAdmin(_AuditedReads, _ReadOnly, _BaselineAdmin):
    reads = "baseline model"
    list_display = (
        "role",
        "trained_at",
        "window_start",
        "window_end",
        "samples",
        "users",
        "excluded_days",
        "active",
    )
    list_filter = ("role", "active")
    exclude = ("blob", "signature")


@admin.register(Checkpoint)
class CheckpointAdmin(_AuditedReads, _ReadOnly, _CheckpointAdmin):
    reads = "checkpoint"
    list_display = ("seq_from", "seq_to", "created_at", "root", "key_id")
    ordering = ("-seq_to",)

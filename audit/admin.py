"""Admin for the audit store: security staff may look, nobody may add, change or delete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[AuditEvent]
else:
    _ModelAdmin = admin.ModelAdmin

# Every column, read-only; the user is shown as the id recorded, since following the relation
# fails once the account is deleted.
_FIELDS = tuple(field.attname if field.name == "user" else field.name for field in AuditEvent._meta.fields)


@admin.register(AuditEvent)
class AuditEventAdmin(_ModelAdmin):
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

    fields = _FIELDS
    readonly_fields = _FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

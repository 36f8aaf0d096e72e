"""Admin for access control: the privacy office edits the policy and reviews break-glass sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from accessctl.models import BreakGlassSession, Notification, PolicyRule, PurposeConfirmation
from accessctl.policy import validate_rule
from accessctl.services import policy_rule_delete, policy_rule_save

if TYPE_CHECKING:
    _RuleAdmin = admin.ModelAdmin[PolicyRule]
    _SessionAdmin = admin.ModelAdmin[BreakGlassSession]
    _ConfirmationAdmin = admin.ModelAdmin[PurposeConfirmation]
    _NotificationAdmin = admin.ModelAdmin[Notification]
    _RuleForm = forms.ModelForm[PolicyRule]
else:
    _RuleAdmin = _SessionAdmin = _ConfirmationAdmin = _NotificationAdmin = admin.ModelAdmin
    _RuleForm = forms.ModelForm


class PolicyRuleForm(_RuleForm):
    class Meta:
        model = PolicyRule
        fields = ["role", "data_class", "purposes", "condition", "effect", "obligations", "reason", "enabled"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        candidate = PolicyRule(
            **{name: cleaned.get(name, "") for name in self.Meta.fields if name in cleaned}
        )
        try:
            validate_rule(candidate)
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                for problem in problems:
                    self.add_error(field if field in self.fields else None, problem)
        return cleaned


@admin.register(PolicyRule)
class PolicyRuleAdmin(_RuleAdmin):
    form = PolicyRuleForm
    list_display = ("id", "role", "data_class", "purposes", "condition", "effect", "obligations", "enabled")
    list_filter = ("role", "effect", "enabled", "data_class")
    search_fields = ("reason", "obligations", "condition")
    readonly_fields = ("updated_at", "updated_by")

    def save_model(self, request: HttpRequest, obj: PolicyRule, form: Any, change: bool) -> None:
        assert isinstance(request.user, User)
        policy_rule_save(rule=obj, changed_by=request.user)

    def delete_model(self, request: HttpRequest, obj: PolicyRule) -> None:
        assert isinstance(request.user, User)
        policy_rule_delete(rule=obj, changed_by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[PolicyRule]) -> None:
        assert isinstance(request.user, User)
        for rule in queryset:
            policy_rule_delete(rule=rule, changed_by=request.user)
        messages.info(request, "Every process applies the change within a few seconds.")


@admin.register(BreakGlassSession)
class BreakGlassSessionAdmin(_SessionAdmin):
    list_display = ("id", "username", "role", "scope", "subject_id", "careunit", "opened_at", "expires_at",
                    "ended_at", "queries", "escalated", "review")  # fmt: skip
    list_filter = ("review", "escalated", "scope", "reason_code")
    search_fields = ("username",)
    date_hierarchy = "opened_at"
    # Reviews go through the review service (it checks separation of duties and audits).
    readonly_fields = tuple(field.name for field in BreakGlassSession._meta.fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PurposeConfirmation)
class PurposeConfirmationAdmin(_ConfirmationAdmin):
    list_display = ("username", "purpose", "categories", "confirmed_at", "audit_event_seq")
    readonly_fields = tuple(field.name for field in PurposeConfirmation._meta.fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(_NotificationAdmin):
    list_display = ("user", "subject", "created_at", "read_at")
    readonly_fields = ("user", "subject", "body", "created_at", "breakglass")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Notification]:
        # Each person sees their own notifications only.
        return super().get_queryset(request).filter(user__pk=request.user.pk or 0)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

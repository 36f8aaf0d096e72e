"""Admin for access control: the privacy office edits the policy and reviews break-glass sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from accessctl.models import (
    BreakGlassSession,
    MaskingRule,
    Notification,
    PolicyRule,
    PrivacyBudget,
    PseudonymKey,
    PurposeConfirmation,
)
from accessctl.policy import validate_rule
from accessctl.profiles import validate_line
from accessctl.services import masking_rule_delete, masking_rule_save, policy_rule_delete, policy_rule_save
from audit.models import EventKind, EventStatus
from audit.services import audit_record

if TYPE_CHECKING:
    _MaskingAdmin = admin.ModelAdmin[MaskingRule]
    _KeyAdmin = admin.ModelAdmin[PseudonymKey]
    _BudgetAdmin = admin.ModelAdmin[PrivacyBudget]
    _MaskingForm = forms.ModelForm[MaskingRule]
    _RuleAdmin = admin.ModelAdmin[PolicyRule]
    _SessionAdmin = admin.ModelAdmin[BreakGlassSession]
    _ConfirmationAdmin = admin.ModelAdmin[PurposeConfirmation]
    _NotificationAdmin = admin.ModelAdmin[Notification]
    _RuleForm = forms.ModelForm[PolicyRule]
else:
    _RuleAdmin = _SessionAdmin = _ConfirmationAdmin = _NotificationAdmin = admin.ModelAdmin
    _MaskingAdmin = _KeyAdmin = _BudgetAdmin = admin.ModelAdmin
    _RuleForm = _MaskingForm = forms.ModelForm


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


class MaskingRuleForm(_MaskingForm):
    class Meta:
        model = MaskingRule
        fields = ["role", "project", "masking_class", "method", "reason", "enabled"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        candidate = MaskingRule(**{name: cleaned.get(name, "") for name in ("masking_class", "method")})
        try:
            validate_line(candidate)
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                for problem in problems:
                    self.add_error(field if field in self.fields else None, problem)
        return cleaned


@admin.register(MaskingRule)
class MaskingRuleAdmin(_MaskingAdmin):
    """Masking profiles: per role (and research project), how each class of identifier is shown."""

    form = MaskingRuleForm
    list_display = ("role", "project", "masking_class", "method", "enabled", "updated_by", "updated_at")
    list_filter = ("role", "method", "enabled", "masking_class")
    search_fields = ("project", "reason")
    readonly_fields = ("updated_at", "updated_by")

    def save_model(self, request: HttpRequest, obj: MaskingRule, form: Any, change: bool) -> None:
        assert isinstance(request.user, User)
        masking_rule_save(line=obj, changed_by=request.user)

    def delete_model(self, request: HttpRequest, obj: MaskingRule) -> None:
        assert isinstance(request.user, User)
        masking_rule_delete(line=obj, changed_by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[MaskingRule]) -> None:
        assert isinstance(request.user, User)
        for line in queryset:
            masking_rule_delete(line=line, changed_by=request.user)


@admin.register(PseudonymKey)
class PseudonymKeyAdmin(_KeyAdmin):
    """Key generations (the keys themselves are never stored); rotate with `rotate_pseudonym_key`."""

    list_display = ("project", "generation", "created_at", "created_by", "reason")
    readonly_fields = tuple(field.name for field in PseudonymKey._meta.fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PrivacyBudget)
class PrivacyBudgetAdmin(_BudgetAdmin):
    """Differential-privacy budgets: the privacy office may raise a user's total; spent never goes back."""

    list_display = ("user", "epsilon_spent", "epsilon_total", "updated_at")
    readonly_fields = ("user", "epsilon_spent", "updated_at")
    search_fields = ("user__username",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a budget starts with the user's first noisy answer

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: PrivacyBudget, form: Any, change: bool) -> None:
        before = PrivacyBudget.objects.get(pk=obj.pk).epsilon_total
        super().save_model(request, obj, form, change)
        audit_record(
            user=request.user,
            kind=EventKind.POLICY_CHANGE,
            status=EventStatus.OK,
            message=f"privacy budget of {obj.user} set to {obj.epsilon_total:g}",
            details={"privacy_budget": obj.pk, "before": before, "after": obj.epsilon_total},
        )

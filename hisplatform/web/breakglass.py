"""The break-glass pages: open emergency access with a reason, a justification and one's password,
and end it early from the banner every page shows while it is open."""

from __future__ import annotations

from typing import Any, Final

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from accessctl.models import BreakGlassReason, BreakGlassScope
from accessctl.services import (
    BREAKGLASS_ROLES,
    MIN_JUSTIFICATION_CHARS,
    AccessError,
    breakglass_end,
    breakglass_open,
)
from audit.signals import client_details
from hisplatform.breakglass_selectors import breakglass_care_units, breakglass_sessions_of
from hisplatform.models import StaffProfile

app_name = "breakglass"

# The refusals that are about who asks, not what was asked (the API answers them 403 too).
_FORBIDDEN_CODES: Final = frozenset({"role", "password", "password_locked", "self"})
_PATIENT_ID_MESSAGE: Final = "A patient id is a positive whole number: the patient's subject id."
# A justification a reviewer can read in one sitting; the service asks for at least 20 characters.
_MAX_JUSTIFICATION_CHARS: Final = 4_000


class OpenForm(forms.Form):
    """What a person must fill in. Whether the values are acceptable (reason, length, scope, target,
    minutes, password) is the service's to decide, so that every refused attempt is audited."""

    reason = forms.CharField(max_length=30, error_messages={"required": "Choose the reason for break-glass."})
    justification = forms.CharField(
        max_length=_MAX_JUSTIFICATION_CHARS,
        error_messages={
            "required": "Say what the emergency is; a reviewer reads it.",
            "max_length": f"Keep the justification under {_MAX_JUSTIFICATION_CHARS:,} characters.",
        },
    )
    scope = forms.CharField(
        max_length=10, error_messages={"required": "Choose one patient or one care unit."}
    )
    subject_id = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=2**31 - 1,
        error_messages={
            "invalid": _PATIENT_ID_MESSAGE,
            "min_value": _PATIENT_ID_MESSAGE,
            "max_value": _PATIENT_ID_MESSAGE,
        },
    )
    careunit = forms.CharField(required=False, max_length=100)
    minutes = forms.IntegerField(
        error_messages={
            "required": "Say for how many minutes (1 to {max}).",
            "invalid": "The duration is a whole number of minutes (1 to {max}).",
        }
    )
    password = forms.CharField(
        strip=False, error_messages={"required": "Enter your password: break-glass asks for it again."}
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for key in ("required", "invalid"):
            message = self.fields["minutes"].error_messages[key]
            self.fields["minutes"].error_messages[key] = message.format(max=settings.BREAKGLASS_MAX_MINUTES)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        scope = data.get("scope")
        if (
            scope == BreakGlassScope.PATIENT
            and data.get("subject_id") is None
            and "subject_id" not in self.errors
        ):
            self.add_error("subject_id", "Enter the patient's id (subject id) for one-patient break-glass.")
        if scope == BreakGlassScope.UNIT and not data.get("careunit"):
            self.add_error("careunit", "Choose the care unit for unit break-glass.")
        return data


def _role(request: HttpRequest) -> str:
    if request.user.pk is None:
        return ""
    role = StaffProfile.objects.filter(user_id=request.user.pk).values_list("role", flat=True).first()
    return role or ""


@login_required
@require_http_methods(["GET", "POST"])
def page(request: HttpRequest) -> HttpResponse:
    """The form, the user's past sessions, and the outcome of an attempt to open break-glass."""
    assert isinstance(request.user, User)
    if _role(request) not in BREAKGLASS_ROLES:
        return _not_for_this_role(request)
    if request.method != "POST":
        return _render_page(request, _initial(request))
    form = OpenForm(request.POST)
    if not form.is_valid():
        return _render_page(request, _kept(form), errors=form.errors, status=400)
    data = form.cleaned_data
    scope = data["scope"]
    try:
        session = breakglass_open(
            user=request.user,
            reason=data["reason"],
            justification=data["justification"],
            password=data["password"],
            scope=scope,
            # The form sends both fields; only the chosen scope's one names the target. Any other
            # scope passes both on, for the service to refuse (and record).
            subject_id=None if scope == BreakGlassScope.UNIT else data["subject_id"],
            careunit="" if scope == BreakGlassScope.PATIENT else data["careunit"],
            minutes=data["minutes"],
            **client_details(request),
        )
    except AccessError as refusal:
        status = 403 if refusal.code in _FORBIDDEN_CODES else 400
        return _render_page(request, _kept(form), refusal=refusal.message, status=status)
    until = timezone.localtime(session.expires_at)
    minutes = round((session.expires_at - session.opened_at).total_seconds() / 60)
    messages.warning(
        request,
        f"Break-glass is open for {session.target()} until {until:%H:%M} {until.tzname()} "
        f"({minutes} minutes). Every question you ask now is flagged and reviewed by the privacy office.",
    )
    return redirect("ask:page")


def _initial(request: HttpRequest) -> dict[str, str]:
    """The Ask page links here with ?patient=ID after refusing a patient outside one's care."""
    initial = {"scope": BreakGlassScope.PATIENT.value, "minutes": str(settings.BREAKGLASS_DEFAULT_MINUTES)}
    patient = request.GET.get("patient", "")
    if patient.isdigit() and len(patient) <= 10:
        initial["subject_id"] = patient
    return initial


def _kept(form: OpenForm) -> dict[str, str]:
    """What the person typed, to fill the form in again: every field but the password, which is
    never sent back to the browser."""
    return {name: form.data.get(name, "") for name in form.fields if name != "password"}


def _render_page(
    request: HttpRequest,
    values: dict[str, str],
    *,
    errors: dict[str, Any] | None = None,
    refusal: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "values": values,
        "errors": errors or {},
        "refusal": refusal,
        "reasons": BreakGlassReason.choices,
        "unit_groups": breakglass_care_units(fetched_by=request.user),
        "sessions": breakglass_sessions_of(fetched_by=request.user),
        "min_justification": MIN_JUSTIFICATION_CHARS,
        "max_minutes": settings.BREAKGLASS_MAX_MINUTES,
        "default_minutes": settings.BREAKGLASS_DEFAULT_MINUTES,
        "escalate_after": settings.BREAKGLASS_ESCALATE_AFTER,
    }
    return render(request, "hisplatform/breakglass.html", context, status=status)


def _not_for_this_role(request: HttpRequest) -> HttpResponse:
    """Researchers, administrators and the privacy office: an explanation, and a posted attempt is
    passed to the service, which refuses it and records the attempt in the audit trail."""
    assert isinstance(request.user, User)
    refusal = ""
    if request.method == "POST":
        post = request.POST
        try:
            breakglass_open(
                user=request.user,
                reason=post.get("reason", "")[:30],
                justification=post.get("justification", "")[:_MAX_JUSTIFICATION_CHARS],
                password="",  # never checked: the role is refused first, and no password is kept
                scope=post.get("scope", "")[:10],
                subject_id=_int_or_none(post.get("subject_id", "")),
                careunit=post.get("careunit", "")[:100],
                minutes=_int_or_none(post.get("minutes", "")),
                **client_details(request),
            )
        except AccessError as error:
            refusal = error.message
    return render(request, "hisplatform/breakglass_not_allowed.html", {"refusal": refusal}, status=403)


def _int_or_none(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and len(text) <= 10 else None


@login_required
@require_POST
def end(request: HttpRequest) -> HttpResponse:
    """The banner's "End break-glass now": end one's own session, then back to the page one was on."""
    assert isinstance(request.user, User)
    back = _safe_next(request)
    raw = request.POST.get("session", "")
    session_id = int(raw) if raw.isdigit() and len(raw) <= 10 else None
    if session_id is None:
        return _not_found(request, "There is no such break-glass session of yours.")
    try:
        session = breakglass_end(user=request.user, session_id=session_id)
    except AccessError as refusal:
        if refusal.code == "not_found":
            return _not_found(request, refusal.message)
        messages.info(request, refusal.message)  # already ended or expired: nothing left to end
        return HttpResponseRedirect(back)
    assert session.ended_at is not None
    ended = timezone.localtime(session.ended_at)
    asked = (
        "No question was"
        if session.queries == 0
        else f"{session.queries} question{' was' if session.queries == 1 else 's were'}"
    )
    messages.success(
        request,
        f"Break-glass for {session.target()} ended at {ended:%H:%M} {ended.tzname()}. "
        f"{asked} asked under it; the privacy office reviews the session.",
    )
    return HttpResponseRedirect(back)


def _safe_next(request: HttpRequest) -> str:
    """Where the user was: a path on this site only, never an address elsewhere (open redirect)."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("breakglass:page")


def _not_found(request: HttpRequest, message: str) -> HttpResponse:
    context = {"refusal": message, "may_open": _role(request) in BREAKGLASS_ROLES}
    return render(request, "hisplatform/breakglass_not_found.html", context, status=404)


urlpatterns = [
    path("", page, name="page"),
    path("end/", end, name="end"),
]

"""The security console: the privacy office's pages over alerts, the audit trail, break-glass reviews,
the chain's integrity and the reports. Security officers only; every page view is an audit read."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, Final, ParamSpec, cast

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, register_converter, reverse
from django.utils.functional import cached_property
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accessctl.models import BreakGlassSession
from accessctl.selectors import breakglass_reviews_pending
from accessctl.services import AccessError, breakglass_review
from audit.alerts import (
    QUEUE_FILTERS,
    TRANSITIONS,
    AlertError,
    alert_assignees,
    alert_detail,
    alert_queue,
    alert_triage,
    is_security_officer,
)
from audit.models import AlertState, AuditEvent, EventKind, EventStatus
from audit.reports import (
    ReportError,
    disclosures_csv,
    disclosures_for_patient,
    previous_week_start,
    weekly_report,
    weekly_report_headlines,
    weekly_report_text,
)
from audit.search import SearchCriteria, audit_event_detail, audit_search, chain_status
from audit.services import AuditChainError, AuditReadError, audit_access_record, chain_verification_request
from audit.signals import client_details

app_name = "security"

ALERTS_PER_PAGE: Final = 25
EVENTS_PER_PAGE: Final = 50
SESSIONS_PER_PAGE: Final = 20
DISCLOSURES_PER_PAGE: Final = 50
# A search counts at most this many matches: an exact COUNT(*) over a million events on every page
# would cost more than the page itself. Beyond it the page says "at least" and offers 200 pages.
SEARCH_COUNT_CAP: Final = 10_000
# Subject ids are 32-bit integers in the warehouse; a larger number names nobody.
MAX_SUBJECT_ID: Final = 2_147_483_647
MAX_SESSION_ID: Final = 2**63 - 1
# Dates the audit can hold and both databases can compare (as the reports require).
_EARLIEST_YEAR: Final = 1900
_LATEST_YEAR: Final = 9998

_P = ParamSpec("_P")
_OfficerView = Callable[Concatenate[HttpRequest, User, _P], HttpResponse]
_View = Callable[Concatenate[HttpRequest, _P], HttpResponse]

# What a triage form offers for each state the alert may move to, in words for the officer.
_MOVES: Final = {
    AlertState.INVESTIGATING: "Investigating (acknowledge, or reopen)",
    AlertState.CONFIRMED: "Confirmed incident (note required)",
    AlertState.FALSE_POSITIVE: "False positive: close as benign (note required)",
    AlertState.RESOLVED: "Resolved (the incident is dealt with)",
}


# ------------------------------------------------------------------------------------------------ frame


@dataclass(frozen=True)
class _Section:
    label: str
    url: str
    current: bool


_SECTIONS: Final = (
    ("alerts", "Alerts", "security:page"),
    ("search", "Audit search", "security:search"),
    ("breakglass", "Break-glass reviews", "security:breakglass"),
    ("chain", "Chain", "security:chain"),
    ("reports", "Reports", "security:reports"),
    ("disclosures", "Disclosures", "security:disclosures"),
)


def _render(
    request: HttpRequest, template: str, section: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    sections = [_Section(label, reverse(name), key == section) for key, label, name in _SECTIONS]
    return render(request, template, {"console_nav": sections, **context}, status=status)


def _officers_only(what: str) -> Callable[[_OfficerView[_P]], _View[_P]]:
    """Sign-in first; then the privacy office only: anyone else gets the 403 page and the attempt is
    recorded. The view receives the officer. A store that refuses to record the read shows nothing."""

    def decorate(view: _OfficerView[_P]) -> _View[_P]:
        @functools.wraps(view)
        def guarded(request: HttpRequest, *args: _P.args, **kwargs: _P.kwargs) -> HttpResponse:
            user = request.user
            try:
                if not (isinstance(user, User) and is_security_officer(user)):
                    audit_access_record(
                        user=user,
                        status=EventStatus.DENIED,
                        what=f"refused: security console {what}",
                        details={"path": request.path[:200], "code": "role"},
                        **client_details(request),
                    )
                    raise PermissionDenied
                return view(request, user, *args, **kwargs)
            except AuditChainError:
                # Fail closed: a read that cannot be recorded is not made.
                return render(request, "audit/unavailable.html", status=503)

        return cast("_View[_P]", login_required(guarded))

    return decorate


def _record_page(
    request: HttpRequest, officer: User, what: str, details: dict[str, Any], *, refused: bool = False
) -> None:
    """For the pages whose selector does not record the read itself (a blank form, refused input)."""
    audit_access_record(
        user=officer,
        status=EventStatus.DENIED if refused else EventStatus.OK,
        what=what,
        details=details,
        **client_details(request),
    )


def _first_error(form: forms.Form) -> str:
    for errors in form.errors.values():
        return str(errors[0])
    return ""


def _subject_field(label: str, *, required: bool) -> forms.IntegerField:
    bounds = f"A subject id is a whole number from 1 to {MAX_SUBJECT_ID}."
    return forms.IntegerField(
        label=label,
        required=required,
        min_value=1,
        max_value=MAX_SUBJECT_ID,
        error_messages={
            "required": "Give the patient's subject id.",
            "invalid": "A patient is named by a subject id: a whole number such as 10001.",
            "min_value": bounds,
            "max_value": bounds,
        },
    )


def _check_year(value: dt.date | None, label: str) -> None:
    if value is not None and not _EARLIEST_YEAR <= value.year <= _LATEST_YEAR:
        raise forms.ValidationError(
            f"{label}: choose a date between {_EARLIEST_YEAR} and {_LATEST_YEAR}; the audit holds no other."
        )


# ------------------------------------------------------------------------------------------------ alerts


@require_GET
@_officers_only("alert queue")
def page(request: HttpRequest, officer: User) -> HttpResponse:
    """The landing page: alerts by risk, open ones by default, each with its reasons."""
    shown = request.GET.get("shown", "open")
    notice = ""
    if shown not in QUEUE_FILTERS:
        notice = f"There is no filter {shown[:30]!r}; showing the open alerts."
        shown = "open"
    alerts = alert_queue(fetched_by=officer, shown=shown, **client_details(request))
    page_obj = Paginator(alerts, ALERTS_PER_PAGE).get_page(request.GET.get("page"))
    return _render(
        request,
        "audit/alerts.html",
        "alerts",
        {"page_obj": page_obj, "shown": shown, "filters": QUEUE_FILTERS, "notice": notice},
    )


# The browser's date pickers speak ISO 8601 only, whatever the language's date format.
_DATE: Final = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
_MOMENT: Final = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class _Form(forms.Form):
    label_suffix = ""  # labels read "Username", as everywhere else in the platform


class TriageForm(_Form):
    # Plain text, not a choice: the state machine (alert_triage) says why a move is refused.
    state = forms.CharField(required=False, max_length=30)
    assignee = forms.CharField(required=False, max_length=150)
    # The assignee the page showed: an unchanged choice is no change, not a reassignment.
    assignee_was = forms.CharField(required=False, max_length=150)
    note = forms.CharField(required=False, strip=True)


@require_http_methods(["GET", "POST"])
@_officers_only("alert")
def alert(request: HttpRequest, officer: User, alert_id: int) -> HttpResponse:
    """One alert: its reasons, the user-day's events, the notes, and the triage form."""
    refusal = ""
    form = TriageForm(request.POST if request.method == "POST" else None)
    if form.is_bound:
        if form.is_valid():
            data = form.cleaned_data
            assignee = data["assignee"] if data["assignee"] != data["assignee_was"] else None
            try:
                done = alert_triage(
                    officer=officer,
                    alert_id=alert_id,
                    state=data["state"] or None,
                    note=data["note"],
                    assignee=assignee,
                )
            except AlertError as error:
                refusal = error.message
            else:
                who = done.assignee.get_username() if done.assignee else "nobody"
                messages.success(
                    request,
                    f"Alert {done.pk} is {done.get_state_display().lower()}, assigned to {who}.",
                )
                return redirect("security:alert", alert_id=done.pk)
        else:
            refusal = _first_error(form)
    try:
        found, notes, events = alert_detail(fetched_by=officer, alert_id=alert_id, **client_details(request))
    except AlertError:
        raise Http404("There is no such alert.") from None
    moves = [(state, _MOVES[AlertState(state)]) for state in sorted(TRANSITIONS[found.state])]
    context = {
        "alert": found,
        "notes": notes,
        "events": events,
        "moves": moves,
        "assignees": alert_assignees(alert=found),
        "refusal": refusal,
        "form": form,
    }
    return _render(request, "audit/alert_detail.html", "alerts", context, status=400 if refusal else 200)


# ------------------------------------------------------------------------------------------------ search


class AuditSearchForm(_Form):
    user = forms.CharField(label="Username", required=False, max_length=150)
    patient = _subject_field("Patient (subject id)", required=False)
    since = forms.DateTimeField(
        label="From",
        required=False,
        widget=_MOMENT,
        error_messages={"invalid": "From: enter a date and time, such as 2026-11-25 14:30."},
    )
    until = forms.DateTimeField(
        label="To",
        required=False,
        widget=_MOMENT,
        error_messages={"invalid": "To: enter a date and time, such as 2026-11-25 18:00."},
    )
    status = forms.ChoiceField(
        label="Status",
        required=False,
        choices=[("", "Any"), *EventStatus.choices],
        error_messages={"invalid_choice": "Status: choose one from the list."},
    )
    kind = forms.ChoiceField(
        label="Kind",
        required=False,
        choices=[("", "Any"), *EventKind.choices],
        error_messages={"invalid_choice": "Kind: choose one from the list."},
    )
    breakglass = forms.BooleanField(label="Break-glass only", required=False)
    session = forms.IntegerField(
        label="Break-glass session",
        required=False,
        min_value=1,
        max_value=MAX_SESSION_ID,
        error_messages={"invalid": "A break-glass session is named by its number, such as 12."},
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        _check_year(since, "From")
        _check_year(until, "To")
        if since is not None and until is not None and since > until:
            raise forms.ValidationError(
                f"The range is empty: From ({since:%Y-%m-%d %H:%M}) is after To ({until:%Y-%m-%d %H:%M})."
            )
        return data

    def criteria(self) -> SearchCriteria:
        data = self.cleaned_data
        return SearchCriteria(
            username=data["user"].strip(),
            subject_id=data["patient"],
            since=data["since"],
            until=data["until"],
            status=data["status"],
            kind=data["kind"],
            breakglass_only=data["breakglass"],
            session_id=data["session"],
        )


class _CappedPaginator(Paginator[AuditEvent]):
    """Counts at most SEARCH_COUNT_CAP matches (the database stops there), so every page costs the same."""

    @cached_property
    def count(self) -> int:
        # Unordered: which rows make up the first SEARCH_COUNT_CAP does not change how many there are,
        # and without an ORDER BY the database may count along whichever index is cheapest.
        return cast("QuerySet[AuditEvent]", self.object_list).order_by()[:SEARCH_COUNT_CAP].count()


@require_GET
@_officers_only("audit search")
def search(request: HttpRequest, officer: User) -> HttpResponse:
    """The audit trail by user, patient, time, status, kind and break-glass; newest first, 50 a page."""
    form = AuditSearchForm(request.GET if _searched(request) else None)
    if form.is_bound and not form.is_valid():
        errors = [str(error) for field in form.errors.values() for error in field]
        _record_page(
            request,
            officer,
            "refused: audit trail search with bad input",
            {"view": "search", "code": "bad_input", "errors": errors},
            refused=True,
        )
        return _render(request, "audit/search.html", "search", {"form": form, "errors": errors}, status=400)
    criteria = form.criteria() if form.is_bound else SearchCriteria()
    events = audit_search(fetched_by=officer, criteria=criteria, **client_details(request))
    paginator = _CappedPaginator(events, EVENTS_PER_PAGE)
    page_obj = paginator.get_page(request.GET.get("page"))
    context = {
        "form": form,
        "show_results": True,
        "page_obj": page_obj,
        "capped": paginator.count >= SEARCH_COUNT_CAP,
        "cap": SEARCH_COUNT_CAP,
    }
    return _render(request, "audit/search.html", "search", context)


def _searched(request: HttpRequest) -> bool:
    return any(name != "page" for name in request.GET)


@require_GET
@_officers_only("audit event")
def event(request: HttpRequest, officer: User, seq: int) -> HttpResponse:
    """One event in full: what was asked, the SQL, the decision and its trace, the patients."""
    try:
        found = audit_event_detail(fetched_by=officer, seq=seq, **client_details(request))
    except AuditReadError:
        raise Http404("There is no such audit event.") from None
    structured = {
        name: json.dumps(getattr(found, name), indent=2, ensure_ascii=False, sort_keys=True)
        for name in ("attributes", "obligations", "policy_trace", "details")
    }
    return _render(request, "audit/event_detail.html", "search", {"event": found, "structured": structured})


# ------------------------------------------------------------------------------------------- break-glass


@require_GET
@_officers_only("break-glass reviews")
def breakglass(request: HttpRequest, officer: User) -> HttpResponse:
    """Ended sessions awaiting review, escalated first: justification, scope, queries, review form."""
    return _breakglass_page(request, officer)


def _breakglass_page(
    request: HttpRequest,
    officer: User,
    *,
    refusal: str = "",
    failed: int | None = None,
    outcome: str = "",
    notes: str = "",
) -> HttpResponse:
    sessions = breakglass_reviews_pending(fetched_by=officer, **client_details(request))
    page_obj = Paginator(sessions, SESSIONS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "page_obj": page_obj,
        "refusal": refusal,
        "failed": failed,
        "outcome": outcome,
        "notes": notes,
        "outcomes": [
            (BreakGlassSession.Review.APPROPRIATE, "Appropriate"),
            (BreakGlassSession.Review.INAPPROPRIATE, "Inappropriate"),
        ],
    }
    return _render(request, "audit/breakglass.html", "breakglass", context, status=400 if refusal else 200)


@require_POST
@_officers_only("break-glass review")
def breakglass_review_view(request: HttpRequest, officer: User, session_id: int) -> HttpResponse:
    """Close a session's review: appropriate or inappropriate, with what the review found."""
    outcome = str(request.POST.get("outcome", ""))[:20]
    notes = str(request.POST.get("notes", ""))
    try:
        reviewed = breakglass_review(officer=officer, session_id=session_id, outcome=outcome, notes=notes)
    except AccessError as error:
        return _breakglass_page(
            request,
            officer,
            refusal=f"Session {session_id}: {error.message}",
            failed=session_id,
            outcome=outcome,
            notes=notes,
        )
    messages.success(
        request,
        f"Break-glass session {reviewed.pk} by {reviewed.username} reviewed as {reviewed.review}.",
    )
    return redirect("security:breakglass")


# ------------------------------------------------------------------------------------------------ chain


@require_GET
@_officers_only("chain status")
def chain(request: HttpRequest, officer: User) -> HttpResponse:
    """The chain's head, the newest signed checkpoint and the last verification's outcome."""
    status = chain_status(fetched_by=officer, **client_details(request))
    return _render(request, "audit/chain.html", "chain", {"status": status})


@require_POST
@_officers_only("chain verification")
def chain_verify(request: HttpRequest, officer: User) -> HttpResponse:
    """Start a verification (a Celery task; in-process when eager) and come back to the status."""
    try:
        running = chain_verification_request(requested_by=officer, **client_details(request))
    except AuditReadError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            f"Verification asked for at {running.requested_at.astimezone(dt.UTC):%H:%M:%S} UTC; "
            "its outcome shows below once it has run.",
        )
    return redirect("security:chain")


# ---------------------------------------------------------------------------------------------- reports


class WeekForm(_Form):
    week = forms.DateField(
        label="Any day of the week",
        widget=_DATE,
        error_messages={
            "required": "Choose a day of the week to report on.",
            "invalid": "Enter a date, such as 2026-11-16.",
        },
    )

    def clean_week(self) -> dt.date:
        week: dt.date = self.cleaned_data["week"]
        _check_year(week, "Week")
        return week


def _weekly(request: HttpRequest, officer: User) -> tuple[WeekForm, Any, str]:
    """The report of the week asked for (last week by default), or the refusal to show; recorded."""
    form = WeekForm(request.GET if "week" in request.GET else None)
    if not form.is_bound:
        week = previous_week_start()
        form = WeekForm(initial={"week": week})
    elif form.is_valid():
        week = form.cleaned_data["week"]
    else:
        refusal = _first_error(form)
        _record_page(
            request,
            officer,
            f"refused: weekly report with bad input: {refusal}",
            {"report": "weekly", "channel": "web", "code": "bad_week"},
            refused=True,
        )
        return form, None, refusal
    try:
        report = weekly_report(fetched_by=officer, week_start=week, channel="web", **client_details(request))
    except ReportError as error:
        return form, None, error.message
    return form, report, ""


@require_GET
@_officers_only("weekly report")
def reports(request: HttpRequest, officer: User) -> HttpResponse:
    """The weekly report of a chosen week, to read here or download as text."""
    form, report, refusal = _weekly(request, officer)
    context: dict[str, Any] = {"form": form, "report": report, "refusal": refusal}
    if report is not None:
        context["headlines"] = weekly_report_headlines(report)
        context["text"] = weekly_report_text(report)
    return _render(request, "audit/reports.html", "reports", context, status=400 if refusal else 200)


@require_GET
@_officers_only("weekly report download")
def weekly_download(request: HttpRequest, officer: User) -> HttpResponse:
    form, report, refusal = _weekly(request, officer)
    if report is None:
        context = {"form": form, "report": None, "refusal": refusal}
        return _render(request, "audit/reports.html", "reports", context, status=400)
    response = HttpResponse(weekly_report_text(report), content_type="text/plain; charset=utf-8")
    name = f"privacy-weekly-report-{report.week_start.isoformat()}.txt"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class DisclosuresForm(_Form):
    subject = _subject_field("Patient (subject id)", required=True)
    since = forms.DateField(
        label="Since (optional)",
        required=False,
        widget=_DATE,
        error_messages={"invalid": "Since: enter a date, such as 2026-11-01."},
    )
    until = forms.DateField(
        label="Until (optional, included)",
        required=False,
        widget=_DATE,
        error_messages={"invalid": "Until: enter a date, such as 2026-11-30."},
    )


def _disclosures(request: HttpRequest, officer: User) -> tuple[DisclosuresForm, Any, str]:
    """The accounting asked for (None for a blank form), or the refusal to show; every view recorded."""
    form = DisclosuresForm(request.GET if "subject" in request.GET else None)
    if not form.is_bound:
        _record_page(request, officer, "accounting of disclosures form viewed", {"view": "disclosures"})
        return form, None, ""
    if not form.is_valid():
        refusal = _first_error(form)
        _record_page(
            request,
            officer,
            f"refused: accounting of disclosures with bad input: {refusal}",
            {"report": "disclosures", "channel": "web", "code": "bad_input"},
            refused=True,
        )
        return form, None, refusal
    data = form.cleaned_data
    try:
        found = disclosures_for_patient(
            fetched_by=officer,
            subject_id=data["subject"],
            since=data["since"],
            until=data["until"],
            channel="web",
            **client_details(request),
        )
    except ReportError as error:
        return form, None, error.message
    return form, found, ""


@require_GET
@_officers_only("disclosures")
def disclosures(request: HttpRequest, officer: User) -> HttpResponse:
    """The accounting of disclosures for one patient: who saw their data, when, why, which columns."""
    form, found, refusal = _disclosures(request, officer)
    context: dict[str, Any] = {"form": form, "refusal": refusal, "found": found}
    if found is not None:
        context["page_obj"] = Paginator(found, DISCLOSURES_PER_PAGE).get_page(request.GET.get("page"))
        context["subject"] = form.cleaned_data["subject"]
    return _render(request, "audit/disclosures.html", "disclosures", context, status=400 if refusal else 200)


@require_GET
@_officers_only("disclosures download")
def disclosures_download(request: HttpRequest, officer: User) -> HttpResponse:
    form, found, refusal = _disclosures(request, officer)
    if found is None:
        refusal = refusal or "Give the patient's subject id."
        context = {"form": form, "refusal": refusal, "found": None}
        return _render(request, "audit/disclosures.html", "disclosures", context, status=400)
    response = HttpResponse(disclosures_csv(found), content_type="text/csv; charset=utf-8")
    name = f"disclosures-patient-{form.cleaned_data['subject']}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class _RowId:
    """A row id in the address: digits that fit a 64-bit key; anything larger is no row (404), not an
    overflow in the database driver."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > 2**63 - 1:
            raise ValueError(value)
        return number

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(_RowId, "rowid")

urlpatterns = [
    path("", page, name="page"),
    path("alerts/<rowid:alert_id>/", alert, name="alert"),
    path("search/", search, name="search"),
    path("events/<rowid:seq>/", event, name="event"),
    path("breakglass/", breakglass, name="breakglass"),
    path("breakglass/<rowid:session_id>/review/", breakglass_review_view, name="breakglass_review"),
    path("chain/", chain, name="chain"),
    path("chain/verify/", chain_verify, name="chain_verify"),
    path("reports/", reports, name="reports"),
    path("reports/weekly.txt", weekly_download, name="weekly_download"),
    path("disclosures/", disclosures, name="disclosures"),
    path("disclosures.csv", disclosures_download, name="disclosures_download"),
]

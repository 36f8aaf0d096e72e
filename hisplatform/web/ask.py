"""The Ask page: a question in plain English, the answer as policy allows, its pages, chart and CSV file.

Works without JavaScript (form posts and whole pages); with htmx, answers and pages swap into the
results region and a question still being answered is polled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, Final

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accessctl.special import describe as describe_categories
from audit.signals import client_details
from hisplatform.asking import (
    AnswersUnavailable,
    Asker,
    Job,
    asker_for,
    breakglass_patient,
    examples_for,
    history_for,
    job_for,
    job_start,
    purpose_choices,
)
from hisplatform.charts import chart_spec, numeric_columns
from hisplatform.labels import column_labels
from hisplatform.models import Role
from hisplatform.queries import ABSTAINED, ANSWERED, DENIED, Answer, export_answer

app_name = "ask"

PAGE_SIZE: Final = 25  # rows of an answer per page
_EXAMPLES_TITLE: Final[dict[str, str]] = {
    Role.ADMINISTRATOR: "Operational questions",
    Role.RESEARCHER: "Cohort questions",
}
# An export the pipeline did not answer -> the HTTP status that says whose problem it is (as the API).
_EXPORT_STATUS: Final = {ABSTAINED: 422, DENIED: 403}


@dataclass(frozen=True)
class AskForm:
    question: str
    purpose: str
    project: str
    confirm: bool
    fresh_pseudonyms: bool = False


def _read_form(data: QueryDict) -> AskForm:
    # A one-click question (history, suggestion) is the button's value, sent with the main form's
    # purpose and project.
    question = data.get("ask_again") if "ask_again" in data else data.get("question", "")
    return AskForm(
        question=question or "",
        purpose=(data.get("purpose") or "").strip()[:20],
        project=(data.get("project") or "").strip()[:100],
        confirm=data.get("confirm", "") in ("1", "on", "true"),
        fresh_pseudonyms=data.get("fresh_pseudonyms", "") in ("1", "on", "true"),
    )


def _asking(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed in, and a role that asks questions; the privacy office's separation of duties keeps
    security officers out (their pages are the audit trail's)."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        asker = asker_for(user=request.user)
        if not asker.may_ask:
            raise PermissionDenied("Asking questions is not part of your role.")
        response = view(request, asker, *args, **kwargs)
        # A page of an answer differs for htmx (the region) and for a browser (the whole page).
        patch_vary_headers(response, ("HX-Request",))
        return response

    return never_cache(login_required(checked))


def _htmx(request: HttpRequest) -> bool:
    # A history restore asks for the whole page even though htmx sends it.
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


@require_http_methods(["GET", "POST"])
@_asking
def page(request: HttpRequest, asker: Asker) -> HttpResponse:
    if request.method == "GET":
        blank = AskForm(question="", purpose=asker.default_purpose, project="", confirm=False)
        return _page(request, asker, blank)
    form = _read_form(request.POST)
    job = job_start(
        user=request.user,  # type: ignore[arg-type]  # signed in: _asking
        question=form.question,
        purpose=form.purpose,
        project=form.project,
        confirm=form.confirm,
        **client_details(request),
    )
    if job.id is None:
        # Answered in the request and not kept: shown at once, whole.
        return _region(request, asker, job) if _htmx(request) else _page(request, asker, form, job=job)
    url = reverse("ask:job", args=[job.id])
    if _htmx(request):
        response = _region(request, asker, job)
        response["HX-Push-Url"] = url
        return response
    # Post/redirect/get: reloading the answer's page shows it again without asking again.
    redirect = HttpResponseRedirect(url)
    redirect.status_code = 303
    return redirect


@require_GET
@_asking
def job(request: HttpRequest, asker: Asker, job_id: str) -> HttpResponse:
    try:
        found = job_for(job_id=job_id, fetched_by=request.user)
    except AnswersUnavailable:
        if _htmx(request):
            # 200: htmx swaps in no error response, and the message must replace "Working on it".
            return _region(request, asker, None, unavailable=True)
        form = AskForm(question="", purpose=asker.default_purpose, project="", confirm=False)
        return _page(request, asker, form, unavailable=True, status=503)
    if found is None:
        raise Http404("No such question.")
    page_number = request.GET.get("page", "1")
    if _htmx(request):
        return _region(request, asker, found, page_number=page_number)
    form = AskForm(found.question, found.purpose or asker.default_purpose, found.project, found.confirm)
    return _page(request, asker, form, job=found, page_number=page_number)


@require_POST
@_asking
def export(request: HttpRequest, asker: Asker) -> HttpResponse:
    form = _read_form(request.POST)
    exported = export_answer(
        user=request.user,
        question=form.question,
        purpose=form.purpose or None,
        project=form.project or None,
        confirm_special=form.confirm,
        fresh_pseudonyms=form.fresh_pseudonyms and asker.role == Role.RESEARCHER,
        channel="web",
        **client_details(request),
    )
    if exported.csv is None:
        status = _EXPORT_STATUS.get(exported.answer.status, 503)
        return _page(request, asker, form, export_refused=exported.answer, status=status)
    response = HttpResponse(exported.csv, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{exported.filename}"'
    return response


def _page(
    request: HttpRequest,
    asker: Asker,
    form: AskForm,
    *,
    job: Job | None = None,
    page_number: int | str = 1,
    unavailable: bool = False,
    export_refused: Answer | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "form": form,
        "asker": asker,
        "purposes": purpose_choices(),
        "examples": examples_for(asker=asker),
        "examples_title": _EXAMPLES_TITLE.get(asker.role, "Questions about your patients"),
        "history": history_for(fetched_by=request.user),
        "unavailable": unavailable,
        "export_refused": export_refused,
        **_presented(asker, job, page_number),
    }
    return render(request, "hisplatform/ask.html", context, status=status)


def _region(
    request: HttpRequest,
    asker: Asker,
    job: Job | None,
    *,
    page_number: int | str = 1,
    unavailable: bool = False,
) -> HttpResponse:
    """The results region alone, for htmx to swap in."""
    context = {
        "asker": asker,
        "purposes": purpose_choices(),
        "unavailable": unavailable,
        **_presented(asker, job, page_number),
    }
    if job is not None and job.answer is not None:
        # The history beside the form gains this question (swapped out of band).
        context["history"] = history_for(fetched_by=request.user)
        context["history_oob"] = True
    return render(request, "hisplatform/ask_region.html", context)


def _presented(asker: Asker, job: Job | None, page_number: int | str) -> dict[str, Any]:
    """What the results region shows of a job: waiting, or its answer with one page of rows."""
    if job is None:
        return {"job": None}
    context: dict[str, Any] = {"job": job, "job_url": reverse("ask:job", args=[job.id]) if job.id else ""}
    answer = job.answer
    if answer is None:
        return context
    context["answer"] = answer
    if answer.status == ANSWERED and answer.rows:
        hidden = {str(s["shown_as"]) for s in answer.suppressed if s.get("shown_as")}
        # Headings in words; the column's own name (as the API and the CSV file give it) is its title.
        labels = column_labels(answer.columns, sql=answer.sql)
        context["chart"] = chart_spec(answer.columns, answer.rows, hidden=hidden, labels=labels)
        numeric = numeric_columns(answer.rows, len(answer.columns), hidden)
        context["headers"] = list(zip(answer.columns, labels, numeric, strict=True))
        if job.id is None:
            # Not kept, so not pageable: every row at once.
            shown, context["page"] = answer.rows, None
        else:
            current = Paginator(answer.rows, PAGE_SIZE).get_page(page_number)
            shown, context["page"] = list(current.object_list), current
        context["rows"] = [[_cell(value, numeric[i]) for i, value in enumerate(row)] for row in shown]
    if answer.confirm_required:
        context["categories"] = [describe_categories([c]) for c in answer.confirm_required]
    offer, patient = breakglass_patient(asker=asker, answer=answer)
    context["breakglass_offer"], context["breakglass_patient"] = offer, patient
    return context


def _cell(value: Any, numeric: bool) -> tuple[str, bool, str]:
    """(text shown, right-aligned, full value for the title when the text rounds it): numbers are
    rounded for reading; the CSV file keeps them whole."""
    if value is None:
        return "", numeric, ""
    if isinstance(value, bool):
        return ("yes" if value else "no"), False, ""
    if isinstance(value, float):
        text = f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"
        if "." in text and "e" not in text:
            text = text.rstrip("0").rstrip(".")
        return text, numeric, (repr(value) if text != repr(value) else "")
    return str(value), numeric, ""


urlpatterns = [
    path("", page, name="page"),
    path("jobs/<str:job_id>/", job, name="job"),
    path("export/", export, name="export"),
]

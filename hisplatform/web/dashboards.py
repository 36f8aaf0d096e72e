"""The administrator's dashboards page: a date range in, every figure through the pipeline, charts and
tables out; with htmx, changing the range swaps the figures only."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views.decorators.http import require_GET

from audit.signals import client_details
from hisplatform.dashboards import (
    BUCKETS,
    MAX_DAYS,
    dashboard_for,
    data_now,
    may_view_dashboards,
    period_from,
)

app_name = "dashboards"


def _figures_only(request: HttpRequest) -> bool:
    """An htmx request for the figures; a history restore asks for the whole page."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
        and request.headers.get("HX-Target") == "figures"
    )


@login_required
@require_GET
def page(request: HttpRequest) -> HttpResponse:
    if not may_view_dashboards(request.user):
        raise PermissionDenied("The dashboards are for administrators.")
    today = data_now().date()
    period, problems = period_from(request.GET, today=today)
    dashboard = dashboard_for(fetched_by=request.user, period=period, **client_details(request))
    context = {
        "dashboard": dashboard,
        "period": period,
        "problems": problems,
        "today": today,
        "buckets": BUCKETS.items(),
        "max_days": MAX_DAYS,
    }
    template = "hisplatform/_figures.html" if _figures_only(request) else "hisplatform/dashboards.html"
    response = render(request, template, context)
    # The same URL answers with the whole page or the figures alone; neither is kept by a browser
    # or proxy (hospital statistics, and every view must reach the server to be audited).
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    patch_cache_control(response, no_store=True, private=True)
    return response


urlpatterns = [path("", page, name="page")]

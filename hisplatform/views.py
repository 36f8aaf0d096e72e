"""Pages of the web shell: who you are and what your role lets you do."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from hisplatform.selectors import home_context_for


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "hisplatform/home.html", home_context_for(user=request.user))


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})

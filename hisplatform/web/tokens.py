"""Placeholder: the tokens pages are being built."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import path

app_name = "tokens"


@login_required
def page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Not built yet.")


urlpatterns = [path("", page, name="page")]

"""The API tokens page: make a token with your password (its secret shown once), list yours, revoke them."""

from __future__ import annotations

import secrets
from typing import Final

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from knox.settings import knox_settings

from audit.signals import client_details
from hisplatform.api_tokens import NAME_MAX, TokenError, token_create, token_list, token_revoke
from hisplatform.models import StaffProfile

app_name = "tokens"


# Each rendering of the form carries a one-time value: a reload that re-sends the form (password
# included) must not quietly make a second token. The secret itself is never stored, not even in the
# session: it is shown in the response to the request that made it, and only there.
_ONCE: Final = "tokens.form_once"


def _issue_once(request: HttpRequest) -> str:
    once = secrets.token_urlsafe(16)
    request.session[_ONCE] = [*request.session.get(_ONCE, [])[-4:], once]  # a few tabs' worth
    return once


def _spend_once(request: HttpRequest, once: str) -> bool:
    issued: list[str] = request.session.get(_ONCE, [])
    if once not in issued:
        return False
    request.session[_ONCE] = [value for value in issued if value != once]
    return True


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX,
        label="Name",
        help_text="What the token is for, so you recognise it later, e.g. \u201cward laptop script\u201d.",
    )
    password = forms.CharField(
        max_length=512,
        strip=False,
        label="Your password",
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="Asked again: a token outlives this session by weeks.",
    )
    once = forms.CharField(widget=forms.HiddenInput, max_length=64, required=False)


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # login_required let only signed-in users through
    return request.user


@login_required
@never_cache  # the page may carry a new token's secret: no cache, no back-button copy
@require_http_methods(["GET", "POST"])
def page(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if not StaffProfile.objects.filter(user_id=user.pk).exists():
        return render(request, "hisplatform/tokens_no_profile.html", status=403)
    form = TokenForm(request.POST if request.method == "POST" else None)
    created, secret = None, ""
    if form.is_bound and form.is_valid():
        if not _spend_once(request, form.cleaned_data["once"]):
            form.add_error(None, "This form was already sent (a reload?), so no token was made. "
                           "To make another, fill it in again.")  # fmt: skip
        else:
            try:
                created, secret = token_create(
                    user=user,
                    name=form.cleaned_data["name"],
                    password=form.cleaned_data["password"],
                    **client_details(request),
                )
                form = TokenForm()  # the page shows the new secret; the form starts afresh
            except TokenError as error:
                form.add_error("password" if error.code in ("password", "locked") else "name", error.message)
    context = {
        "form": form,
        "once": _issue_once(request),
        "created": created,
        "secret": secret,
        "tokens": token_list(fetched_by=user),
        "limit": knox_settings.TOKEN_LIMIT_PER_USER,
        "days": knox_settings.TOKEN_TTL.days if knox_settings.TOKEN_TTL else None,
    }
    return render(request, "hisplatform/tokens.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def revoke(request: HttpRequest, key: str) -> HttpResponse:
    user = _user(request)
    try:
        row = token_revoke(user=user, key=key, channel="web", **client_details(request))
    except TokenError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Token \u201c{row.name or row.key}\u201d revoked; it no longer works.")
    return redirect("tokens:page")


urlpatterns = [
    path("", page, name="page"),
    path("<str:key>/revoke", revoke, name="revoke"),
]

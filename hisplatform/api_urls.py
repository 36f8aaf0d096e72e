"""The REST API's addresses, version 1, and its schema and interactive documentation."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from csp.decorators import csp_update
from django.contrib.auth.decorators import login_required
from django.template import Engine
from django.templatetags.static import static
from django.urls import path, re_path, register_converter
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from audit.api import AlertDetailApi, AlertListApi, AlertTriageApi
from hisplatform.api import (
    ApiTokenAuthentication,
    AskApi,
    BreakGlassEndApi,
    BreakGlassOpenApi,
    BreakGlassReviewApi,
    CurrentTokenApi,
    ExportApi,
    QuestionHistoryApi,
)
from hisplatform.api_errors import not_found


class IdConverter:
    """An object id: at most 18 digits, so that every id the URL accepts fits the database's 64-bit
    integer (a longer one would be a database error, a 500, rather than a 404)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "api_id")


class SchemaView(SpectacularAPIView):
    """The OpenAPI 3 document, for signed-in users and token holders; not itself an operation in it."""

    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)  # type: ignore[no-any-return,no-untyped-call]

    def handle_exception(self, exc: Exception) -> Response:
        # The document is YAML or JSON; an error is the API's JSON body whatever was asked for.
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return response


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI from our own static files; its start-up script is a second request (CSP: no inline
    script). Reached in a browser, so signed-in users only, by session (login_required below)."""

    authentication_classes = [SessionAuthentication]
    permission_classes = [IsAuthenticated]
    url_name = "schema"

    # Always drf-spectacular-sidecar's copy, whatever SPECTACULAR_SETTINGS say: never a CDN.
    @staticmethod
    def _swagger_ui_resource(filename: str) -> str:
        return static(f"drf_spectacular_sidecar/swagger-ui-dist/{filename}")

    @staticmethod
    def _swagger_ui_favicon() -> str:
        return static("drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png")


def _inline_style_hash() -> str:
    """The CSP hash of the one <style> element drf-spectacular's Swagger UI page carries: allowing that
    exact text, and no other inline style, is the narrowest exception to style-src 'self'."""
    source = Engine.get_default().get_template("drf_spectacular/swagger_ui.html").source
    found = re.search(r"<style>(.*?)</style>", source, re.DOTALL)
    if found is None:
        return "'none'"  # the template no longer has one: nothing to allow
    digest = hashlib.sha256(found.group(1).encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


docs = csp_update({"style-src": [_inline_style_hash()]})(login_required(DocsView.as_view()))


urlpatterns = [
    path("v1/ask", AskApi.as_view(), name="api-ask"),
    path("v1/export", ExportApi.as_view(), name="api-export"),
    path("v1/questions", QuestionHistoryApi.as_view(), name="api-questions"),
    path("v1/alerts", AlertListApi.as_view(), name="api-alerts"),
    path("v1/alerts/<api_id:alert_id>", AlertDetailApi.as_view(), name="api-alert"),
    path("v1/alerts/<api_id:alert_id>/triage", AlertTriageApi.as_view(), name="api-alert-triage"),
    path("v1/tokens/current", CurrentTokenApi.as_view(), name="api-token-current"),
    path("v1/breakglass", BreakGlassOpenApi.as_view(), name="api-breakglass-open"),
    path("v1/breakglass/<api_id:session_id>/end", BreakGlassEndApi.as_view(), name="api-breakglass-end"),
    path(
        "v1/breakglass/<api_id:session_id>/review",
        BreakGlassReviewApi.as_view(),
        name="api-breakglass-review",
    ),
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", docs, name="api-docs"),
    # Last: any other address under /api/ is a 404 in the API's body, not the site's HTML page.
    re_path(r"^.*$", not_found),
]

"""The REST API's addresses, version 1, and its schema and interactive documentation."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from hisplatform.api import AskApi, BreakGlassEndApi, BreakGlassOpenApi, BreakGlassReviewApi, ExportApi

urlpatterns = [
    path("v1/ask", AskApi.as_view(), name="api-ask"),
    path("v1/export", ExportApi.as_view(), name="api-export"),
    path("v1/breakglass", BreakGlassOpenApi.as_view(), name="api-breakglass-open"),
    path("v1/breakglass/<int:session_id>/end", BreakGlassEndApi.as_view(), name="api-breakglass-end"),
    path(
        "v1/breakglass/<int:session_id>/review",
        BreakGlassReviewApi.as_view(),
        name="api-breakglass-review",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]

"""The REST API's one error body, {"code", "message", "details"?}, and its pagination."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

# DRF's exception classes -> the stable code a client branches on.
_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "invalid_request",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error DRF raises, in the body every other error of the API has."""
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not an API error: Django's handler answers (500 page, logged without the body)
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "error")
    body: dict[str, Any] = {"code": code}
    if isinstance(exc, exceptions.ValidationError):
        body["message"] = "The request is not valid."
        body["details"] = (
            response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        )
    else:
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        body["message"] = str(detail or exc)
    wait = getattr(exc, "wait", None)
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        body["retry_after_seconds"] = int(wait + 0.999)
    response.data = body
    if response.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        response.data["message"] = f"This address does not accept {context['request'].method}."
    return response


class Pagination(PageNumberPagination):
    """Pages of 50 by default; a client may ask for up to 200 with ?page_size=."""

    page_size_query_param = "page_size"
    max_page_size = 200

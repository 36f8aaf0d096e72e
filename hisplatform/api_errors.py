"""The REST API's one error body, {"code", "message", "details"?}, and its pagination.

Imported by DRF's settings while DRF itself loads: nothing here may import DRF's generic views or
drf-spectacular (the base view that uses these lives in hisplatform/api.py).
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

logger = logging.getLogger(__name__)

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


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"
    default_detail = "The request body is too large."


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Every error of the API, DRF's own and unexpected ones alike, in the one body."""
    response = drf_exception_handler(exc, context)
    if response is None:
        # A defect, not the client's doing: logged with its traceback for us, nothing of it for them.
        logger.error("Unhandled error in %s", context.get("view").__class__.__name__, exc_info=exc)
        set_rollback()
        return Response(
            {"code": "server_error", "message": "Something went wrong on our side; it has been logged."},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), None)
    if code is None:  # Django's Http404 and PermissionDenied, or an API exception of ours
        code = str(getattr(exc, "default_code", "forbidden" if response.status_code == 403 else "not_found"))
    body: dict[str, Any] = {"code": code}
    if isinstance(exc, exceptions.ValidationError):
        body["message"] = "The request is not valid."
        body["details"] = (
            response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        )
    else:
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        body["message"] = str(detail or exc)
    if isinstance(exc, exceptions.Throttled):
        # DRF rounds the wait down, to 0 (and then omits the header) in the last second of a window.
        wait = max(1, math.ceil(getattr(exc, "wait", None) or 1))
        body["retry_after_seconds"] = wait
        response["Retry-After"] = str(wait)
    if response.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        body["message"] = f"This address does not accept {context['request'].method}."
    response.data = body
    return response


@csrf_exempt  # an answer about nothing: a POST to a wrong address is a 404, not a CSRF refusal page
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """An address under /api/ that does not exist, answered in the API's body rather than an HTML page.

    This view catches every other address under /api/, so Django's APPEND_SLASH never sees one: a GET of
    /api/docs is sent on to /api/docs/ here.
    """
    if request.method in ("GET", "HEAD") and not request.path.endswith("/"):
        try:
            match = resolve(f"{request.path}/")
        except Resolver404:
            match = None
        if match is not None and match.func is not not_found:
            return HttpResponsePermanentRedirect(f"{request.path}/")
    return JsonResponse({"code": "not_found", "message": "There is nothing at this address."}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a failure outside DRF's views (middleware, a URL resolver) under /api/ still answers
    in the API's body; everywhere else, the site's own 500 page."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"code": "server_error", "message": "Something went wrong on our side; it has been logged."},
            status=500,
        )
    return defaults.server_error(request)


class Pagination(PageNumberPagination):
    """Pages of 50 by default; a client may ask for 1 to 200 with ?page_size=. Anything else in `page`
    or `page_size` is a 400 saying so, not silently the default (the schema says what is allowed)."""

    page_size_query_param = "page_size"
    max_page_size = 200
    last_page_strings = ()  # ?page=last would be the one non-number the schema does not mention

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return int(self.page_size or 50)
        if not re.fullmatch(r"[0-9]{1,3}", raw) or not 1 <= int(raw) <= self.max_page_size:
            raise exceptions.ValidationError(
                {"page_size": [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return int(raw)

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        raw = request.query_params.get(self.page_query_param)
        if raw is not None and not (re.fullmatch(r"[0-9]{1,18}", raw) and int(raw) >= 1):
            raise exceptions.ValidationError({"page": ["A whole number from 1."]})
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        limits = {
            self.page_query_param: {"minimum": 1, "maximum": 999_999_999_999_999_999},
            self.page_size_query_param: {"minimum": 1, "maximum": self.max_page_size},
        }
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"] = {**parameter["schema"], **limits.get(parameter["name"], {})}
        return parameters

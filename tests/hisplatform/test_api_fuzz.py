"""API fuzzing: schemathesis generates requests from the OpenAPI schema and sends them to the live WSGI
application with real tokens; no 5xx, and every response matches what the schema promises."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from knox.models import AuthToken
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.throttling import SimpleRateThrottle
from schemathesis import BaseSchema, Case, CheckContext, Config, Response
from schemathesis.specs.openapi.checks import positive_data_acceptance

from accessctl.models import MaskingRule, PolicyRule
from accessctl.readpolicy import forget_catalogs
from accessctl.services import policy_load_defaults
from audit.models import Alert
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import NOON, _make_people

# Operations the privacy office is the caller of; a clinician's token is used for the rest.
_OFFICER_PATHS = re.compile(r"^/api/v1/(alerts|breakglass/\{session_id\}/review)")


class Callers:
    def __init__(self, people: dict[str, User], alert: Alert) -> None:
        self.people = people
        self.alert = alert
        self.clinician = AuthToken.objects.create(user=people["dr.carter"])[1]
        self.officer = AuthToken.objects.create(user=people["sec.ito"])[1]


@pytest.fixture
def callers(
    transactional_db: None,
    settings: SettingsWrapper,
    sqlite_warehouse: WarehouseTarget,
    monkeypatch: pytest.MonkeyPatch,
) -> Callers:
    """The demo hospital's people with a token each for a clinician and a security officer, and one alert.

    Committed for real (transactional_db): the application is called through its WSGI handler, which
    opens and closes database connections per request as in production, so no test transaction can
    wrap it.
    """
    if not PolicyRule.objects.exists() or not MaskingRule.objects.exists():
        policy_load_defaults()
    forget_catalogs()
    settings.WAREHOUSE_URL = sqlite_warehouse.url
    settings.NLQ_NOW = NOON.strftime("%Y-%m-%d %H:%M:%S")
    # Rates out of reach: the fuzzer is to exercise the endpoints, not the throttles (tested on their own).
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "10000/minute", "user": "10000/minute",
                                                                "ask": "10000/minute"})  # fmt: skip
    cache.clear()
    people = _make_people(sqlite_warehouse)
    now = timezone.now()
    alert = Alert.objects.create(
        username="dr.okafor", role="clinician", day=NOON.date(), created_at=now, updated_at=now, risk=80,
        summary="Many records outside the ward", first_event_at=now, last_event_at=now,
        reasons=[{"code": "vip", "kind": "rule", "text": "Opened a VIP record.", "patients": [10001]}],
    )  # fmt: skip
    return Callers(people, alert)


# NUL characters are refused by every text field (tests/hisplatform/test_api.py); a schema cannot say so
# short of a pattern on each field, so the fuzzer is told not to put them in valid requests.
_CONFIG = Config.from_str("[generation]\nallow-x00 = false\n")


def _api_schema() -> BaseSchema:
    """The document /api/schema/ serves, made by the same generator at collection time (no database
    yet, so not fetched over HTTP), bound to the WSGI application the cases are sent to."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(
        json.loads(OpenApiJsonRenderer().render(document)), config=_CONFIG
    )
    loaded.app = get_wsgi_application()
    return loaded


# schemathesis.pytest.from_fixture would fetch it from the running app, but its lazy loader breaks on
# pytest 9 (it sets Node._nodeid, which pytest 9 no longer has); the eager loader works.
schema = _api_schema()


def valid_requests_pass_validation(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """positive_data_acceptance, less the refusals no schema can state: a request the schema allows may
    still be refused by a rule (an unknown care unit, a triage step without its note: 400 with the
    rule's code, 403, 404, 409, 422), but never as malformed (400 invalid_request or malformed_request),
    too large or of the wrong type."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    code = ""
    if response.status_code == 400:
        code = str(json.loads(response.content or b"{}").get("code", ""))
    if response.status_code in (413, 415) or code in ("invalid_request", "malformed_request"):
        raise AssertionError(f"A request the schema allows was refused as malformed: {response.text[:500]}")
    return True


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,  # the same cases on every run: a failure here is a regression, never luck
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_answers_every_generated_request_as_its_schema_says(
    case: Case[Any], callers: Callers
) -> None:
    token = callers.officer if _OFFICER_PATHS.match(case.path) else callers.clinician
    if case.path == "/api/v1/tokens/current":
        token = AuthToken.objects.create(user=callers.people["dr.carter"])[1]  # each call revokes its own
    alert_id: Any = (case.path_parameters or {}).get("alert_id")
    if isinstance(alert_id, int) and alert_id % 2 == 0:
        # Half the generated ids name the alert that exists, so that answers (not only 404s) are checked.
        case.path_parameters = {**(case.path_parameters or {}), "alert_id": callers.alert.pk}
    case.call_and_validate(
        headers={"Authorization": f"Token {token}"},
        excluded_checks=[positive_data_acceptance],
        additional_checks=[valid_requests_pass_validation],
    )

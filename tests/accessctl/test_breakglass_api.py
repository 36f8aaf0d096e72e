"""Break-glass through the REST API: open with reason, justification and password; end; review."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from accessctl.models import BreakGlassSession
from hisplatform.warehouse.executor import execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import People
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def _client(people: People, username: str) -> APIClient:
    client = APIClient()
    client.force_login(people[username])
    return client


def test_open_end_and_review_over_the_api(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget, settings: SettingsWrapper
) -> None:
    settings.WAREHOUSE_URL = sqlite_warehouse.url
    patient = int(
        str(execute_readonly("SELECT MIN(subject_id) FROM patients", target=sqlite_warehouse).rows[0][0])
    )
    okafor = _client(sqlite_people, "dr.okafor")
    body = {
        "reason": "unconscious",
        "justification": "Unconscious patient arrived on the ward, medication history needed now.",
        "password": PASSWORD,
        "scope": "patient",
        "subject_id": patient,
    }
    wrong = okafor.post("/api/v1/breakglass", {**body, "password": "not my password"}, format="json")
    assert (wrong.status_code, wrong.json()["code"]) == (403, "password")
    invalid = okafor.post("/api/v1/breakglass", {**body, "minutes": 90}, format="json")
    assert (invalid.status_code, invalid.json()["code"]) == (400, "invalid_request")
    assert "minutes" in invalid.json()["details"]
    researcher = _client(sqlite_people, "res.garcia").post("/api/v1/breakglass", body, format="json")
    assert (researcher.status_code, researcher.json()["code"]) == (403, "role")

    opened = okafor.post("/api/v1/breakglass", body, format="json")
    assert opened.status_code == 201, opened.content
    session = opened.json()
    assert (session["scope"], session["subject_id"], session["review"]) == ("patient", patient, "pending")

    home = _client(sqlite_people, "sec.ito").get("/")
    assert f"Break-glass opened by dr.okafor (patient {patient})" in home.content.decode()

    early = _client(sqlite_people, "sec.ito").post(
        f"/api/v1/breakglass/{session['id']}/review", {"outcome": "appropriate", "notes": "ok"}, format="json"
    )
    assert (early.status_code, early.json()["code"]) == (400, "open")
    not_mine = _client(sqlite_people, "dr.carter").post(f"/api/v1/breakglass/{session['id']}/end")
    assert (not_mine.status_code, not_mine.json()["code"]) == (404, "not_found")
    ended = okafor.post(f"/api/v1/breakglass/{session['id']}/end")
    assert (ended.status_code, ended.json()["end_reason"]) == (200, "ended")

    reviewed = _client(sqlite_people, "sec.ito").post(
        f"/api/v1/breakglass/{session['id']}/review",
        {"outcome": "appropriate", "notes": "Matches the admission note; the patient was unconscious."},
        format="json",
    )
    assert (reviewed.status_code, reviewed.json()["review"]) == (200, "appropriate")
    assert BreakGlassSession.objects.get(pk=session["id"]).reviewed_by == "sec.ito"


def test_the_openapi_schema_lists_the_access_endpoints(db: None) -> None:
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    schema = out.getvalue()
    for path in ("/api/v1/ask:", "/api/v1/breakglass:", "/api/v1/breakglass/{session_id}/end:"):
        assert path in schema

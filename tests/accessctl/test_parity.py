"""The same question gives the same answer through `answer_question`, the `ask` command and the API."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from audit.models import AuditEvent
from hisplatform.queries import answer_question
from hisplatform.warehouse.executor import execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import NOON, People

pytestmark = pytest.mark.django_db

# The fields that must agree; audit_event differs (each channel records its own event).
_COMPARED = (
    "status",
    "code",
    "message",
    "interpretation",
    "sql",
    "columns",
    "rows",
    "masked",
    "notices",
    "policy",
)


def _questions(target: WarehouseTarget) -> list[tuple[str, str, str | None]]:
    def patient(sql: str) -> int:
        return int(str(execute_readonly(sql, target=target).rows[0][0]))

    current = patient(
        "SELECT MIN(t.subject_id) FROM transfers t JOIN care_units cu ON cu.careunit = t.careunit "
        "JOIN departments d ON d.department_id = cu.department_id JOIN patient_identity p "
        "ON p.subject_id = t.subject_id WHERE d.code = 'CARD' AND t.outtime IS NULL "
        "AND NOT p.vip_flag AND NOT p.employee_flag"
    )
    elsewhere = patient(
        "SELECT MIN(t.subject_id) FROM transfers t JOIN care_units cu ON cu.careunit = t.careunit "
        "JOIN departments d ON d.department_id = cu.department_id "
        "WHERE d.code = 'NEURO' AND t.outtime IS NULL "
        "AND t.subject_id NOT IN (SELECT subject_id FROM transfers WHERE careunit IN (SELECT careunit FROM "
        "care_units WHERE department_id = 3))"
    )
    return [
        ("dr.carter", f"what is the gender of patient {current}?", None),
        ("dr.carter", f"what was the first drug prescribed to patient {current}?", None),
        ("dr.carter", f"what is the gender of patient {elsewhere}?", None),
        ("dr.carter", "how many patients are currently admitted?", None),
        ("dr.carter", f"what is the gender of patient {current}?", "HRESCH"),
        ("head.nguyen", "what are the top 3 most frequent lab tests?", None),
        ("res.garcia", f"what is the gender of patient {current}?", None),
        ("admin.walsh", "how many patients are currently admitted?", None),
        ("sec.ito", f"what is the gender of patient {current}?", None),
        ("sec.ito", "tell me a joke about hospitals", None),
    ]


def _via_command(username: str, question: str, purpose: str | None) -> dict[str, Any]:
    out = io.StringIO()
    args = ["ask", question, "--user", username, "--now", NOON.strftime("%Y-%m-%d %H:%M:%S"), "--json"]
    if purpose:
        args += ["--purpose", purpose]
    call_command(*args, stdout=out)
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def _via_api(people: People, username: str, question: str, purpose: str | None) -> dict[str, Any]:
    client = APIClient()
    client.force_login(people[username])
    body: dict[str, Any] = {"question": question}
    if purpose:
        body["purpose"] = purpose
    response = client.post("/api/v1/ask", body, format="json")
    assert response.status_code == 200, response.content
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_ask_command_and_api_agree_with_the_pipeline(
    dialect: str,
    request: pytest.FixtureRequest,
    settings: SettingsWrapper,
) -> None:
    target: WarehouseTarget = request.getfixturevalue(
        "sqlite_warehouse" if dialect == "sqlite" else "pg_warehouse"
    )
    people: People = request.getfixturevalue("sqlite_people" if dialect == "sqlite" else "pg_people")
    settings.WAREHOUSE_URL = target.url
    settings.NLQ_NOW = NOON.strftime("%Y-%m-%d %H:%M:%S")
    statuses = set()
    for username, question, purpose in _questions(target):
        direct = answer_question(
            user=people[username], question=question, purpose=purpose, now=NOON
        ).as_dict()
        command = _via_command(username, question, purpose)
        api = _via_api(people, username, question, purpose)
        for name in _COMPARED:
            assert command[name] == direct[name], (username, question, name)
            assert api[name] == direct[name], (username, question, name)
        events = AuditEvent.objects.filter(
            seq__in=[direct["audit_event"], command["audit_event"], api["audit_event"]]
        )
        assert {event.details["channel"] for event in events} == {"api", "cli"}
        statuses.add(direct["status"])
    assert statuses == {"answered", "denied", "abstained"}


def test_api_refuses_bad_input_with_a_code_and_an_audit_event(sqlite_people: People) -> None:
    client = APIClient()
    client.force_login(sqlite_people["dr.carter"])
    before = AuditEvent.objects.count()
    response = client.post("/api/v1/ask", {"question": ["not", "text"], "purpose": "PLAY"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request"
    assert set(body["details"]) == {"question", "purpose"}
    assert AuditEvent.objects.count() == before + 1
    assert AuditEvent.objects.latest("seq").status == "error"


def test_api_needs_a_signed_in_user(db: None) -> None:
    response = APIClient().post("/api/v1/ask", {"question": "how many patients are there?"}, format="json")
    assert response.status_code in (401, 403)


def test_ask_command_for_an_unknown_user_is_recorded(db: None) -> None:
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("ask", "how many patients are there?", "--user", "nobody", "--json", stdout=out)
    assert exited.value.code == 1
    body = json.loads(out.getvalue())
    assert body["code"] == "unknown_user"
    assert AuditEvent.objects.get(seq=body["audit_event"]).username == "nobody"


# Questions whose SQL differs most between the engines: date arithmetic under a statistic (PostgreSQL
# casts EXTRACT(EPOCH ...) to double precision) and a top-k with no ORDER BY in its outer query.
_ACROSS_ENGINES = [
    ("dr.carter", "top 5 most common diagnoses"),
    ("res.garcia", "avg LOS male vs female"),
    ("admin.walsh", "average length of stay by department"),
    ("admin.walsh", "average turnaround time per lab test in minutes"),
    ("admin.walsh", "how many patients are currently admitted?"),
]


@pytest.mark.parametrize(("username", "question"), _ACROSS_ENGINES)
def test_sqlite_and_postgresql_warehouses_give_the_same_answer(
    pg_people: People,
    sqlite_warehouse: WarehouseTarget,
    pg_warehouse: WarehouseTarget,
    username: str,
    question: str,
) -> None:
    on_sqlite, on_pg = (
        answer_question(user=pg_people[username], question=question, now=NOON, target=target)
        for target in (sqlite_warehouse, pg_warehouse)
    )
    assert (on_sqlite.status, on_sqlite.code) == ("answered", "")
    assert (on_pg.status, on_pg.code, on_pg.message) == ("answered", "", on_sqlite.message)

    def rounded(rows: list[list[Any]]) -> list[list[Any]]:
        # Julian days in SQLite, epoch seconds in PostgreSQL: the same figures to 6 places.
        return sorted([round(v, 6) if isinstance(v, float) else v for v in row] for row in rows)

    assert rounded(on_pg.rows) == rounded(on_sqlite.rows)

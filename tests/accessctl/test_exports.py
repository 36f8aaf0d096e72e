"""CSV exports: the same controls as answers, audited as exports with the file's fingerprint."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pytest
from django.core.management import call_command
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from audit.models import AuditEvent
from hisplatform.queries import Answer, answer_csv, answer_sql
from hisplatform.warehouse.executor import execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import People

pytestmark = pytest.mark.django_db

_BY_UNIT = (
    "SELECT careunit, COUNT(DISTINCT subject_id) AS patients FROM transfers "
    "WHERE careunit IS NOT NULL GROUP BY careunit ORDER BY careunit"
)


@pytest.fixture
def warehouse(settings: SettingsWrapper, sqlite_warehouse: WarehouseTarget) -> WarehouseTarget:
    settings.WAREHOUSE_URL = sqlite_warehouse.url
    settings.NLQ_NOW = "2026-11-25 12:00:00"
    return sqlite_warehouse


def _client(people: People, username: str) -> APIClient:
    client = APIClient()
    client.force_login(people[username])
    return client


def _rows(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode())))


def test_an_export_is_the_answer_as_csv_and_is_audited_as_an_export(
    sqlite_people: People, warehouse: WarehouseTarget
) -> None:
    client = _client(sqlite_people, "res.garcia")
    question = "average length of stay by department"
    asked = client.post("/api/v1/ask", {"question": question}, format="json").json()
    exported = client.post("/api/v1/export", {"question": question}, format="json")
    assert exported.status_code == 200
    assert exported["Content-Type"] == "text/csv; charset=utf-8"
    assert exported["Content-Disposition"].startswith('attachment; filename="answer-')
    rows = _rows(exported.content)
    assert rows[0] == asked["columns"]
    assert rows[1:] == [["" if v is None else str(v) for v in row] for row in asked["rows"]]
    event = AuditEvent.objects.get(seq=int(exported["X-Audit-Event"]))
    assert event.kind == "export"
    assert event.status == "answered"
    assert event.details["export"]["sha256"] == hashlib.sha256(exported.content).hexdigest()
    assert event.details["export"]["rows"] == len(rows) - 1


def test_exports_keep_small_cells_suppressed(sqlite_people: People, warehouse: WarehouseTarget) -> None:
    from hisplatform.queries import export_answer

    export = export_answer(user=sqlite_people["admin.walsh"], question="lab volume by test last week")
    assert export.csv is not None
    rows = _rows(export.csv.encode())
    counts = [row[1] for row in rows[1:]]
    assert "<11" in counts
    assert not any(value.isdigit() and 1 <= int(value) <= 10 for value in counts)


def test_fresh_pseudonyms_link_to_nothing_else(sqlite_people: People, warehouse: WarehouseTarget) -> None:
    from hisplatform.queries import answer_sql, export_answer

    researcher = sqlite_people["res.garcia"]
    question = "how many patients are currently admitted?"
    # Pseudonyms show up only in rows; ask for rows through SQL, export through the same question path.
    shown = answer_sql(user=researcher, sql="SELECT subject_id FROM patients", target=warehouse)
    project = {row[0] for row in shown.rows}
    first = export_answer(user=researcher, question=question, fresh_pseudonyms=True)
    second = export_answer(user=researcher, question=question, fresh_pseudonyms=True)
    events = AuditEvent.objects.filter(kind="export").order_by("seq")
    batches = [event.details["export"]["pseudonym_batch"] for event in events]
    assert len(set(batches)) == 2
    assert all(len(batch) == 16 for batch in batches)
    assert first.answer.status == second.answer.status == "answered"
    assert project  # the project's own pseudonyms exist; the fresh ones are checked below
    from accessctl.pseudonyms import project_key, pseudonym

    raw = 10_000_001
    fresh = {pseudonym(project_key("RP-2026-014", batch=b).key, "patient", raw) for b in batches}
    assert len(fresh) == 2
    assert pseudonym(project_key("RP-2026-014").key, "patient", raw) not in fresh


def test_a_refused_export_says_why_and_is_audited(sqlite_people: People, warehouse: WarehouseTarget) -> None:
    response = _client(sqlite_people, "admin.walsh").post(
        "/api/v1/export", {"question": "what is the gender of patient 10001?"}, format="json"
    )
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "isolating_query"
    event = AuditEvent.objects.get(seq=body["audit_event"])
    assert (event.kind, event.status) == ("export", "denied")
    assert "export" not in event.details


def test_an_invalid_export_request_is_refused_and_audited(
    sqlite_people: People, warehouse: WarehouseTarget
) -> None:
    response = _client(sqlite_people, "res.garcia").post(
        "/api/v1/export", {"question": "x", "fresh_pseudonyms": "perhaps"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert AuditEvent.objects.filter(kind="export", status="error").exists()


def test_cells_a_spreadsheet_would_run_are_defused() -> None:
    answer = Answer("answered", "", columns=["=name", "value"], rows=[['=HYPERLINK("x")', -3], ["+1", None]])
    assert answer_csv(answer) == '\'=name,value\r\n"\'=HYPERLINK(""x"")",-3\r\n\'+1,\r\n'


def test_the_ask_command_writes_an_export(
    sqlite_people: People, warehouse: WarehouseTarget, tmp_path: Path
) -> None:
    target = tmp_path / "units.csv"
    out = io.StringIO()
    call_command(
        "ask",
        "number of admissions per day last month",
        "--user",
        "admin.walsh",
        "--csv",
        str(target),
        stdout=out,
    )
    content = target.read_bytes()
    assert content.startswith(b'"STRFTIME(')
    event = AuditEvent.objects.filter(kind="export").latest("seq")
    assert event.details["export"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert event.details["channel"] == "cli"


def test_the_audit_records_whose_rows_an_identified_answer_showed(
    sqlite_people: People, warehouse: WarehouseTarget
) -> None:
    """The accounting of disclosures needs the patients even when the answer's columns do not name them."""
    rows = execute_readonly(
        "SELECT DISTINCT c.subject_id FROM care_team c JOIN staff s ON s.staff_id = c.staff_id "
        "WHERE s.username = 'dr.carter' ORDER BY c.subject_id LIMIT 2",
        target=warehouse,
    ).rows
    first, second = (int(str(row[0])) for row in rows)
    doctor = sqlite_people["dr.carter"]
    named = answer_sql(user=doctor, sql=f"SELECT gender FROM patients WHERE subject_id = {first}")
    listed = answer_sql(user=doctor, sql=f"SELECT dob FROM patients WHERE subject_id IN ({first}, {second})")
    counted = answer_sql(user=doctor, sql=f"SELECT COUNT(*) FROM admissions WHERE subject_id = {second}")
    assert (named.columns, listed.columns, [counted.status]) == (["gender"], ["dob"], ["answered"])
    events = [AuditEvent.objects.get(seq=a.audit_event or 0) for a in (named, listed, counted)]
    assert [e.patients_touched for e in events] == [[first], sorted([first, second]), [second]]

"""Recording audit events: what the service stores, how it cleans, and how it chains."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import inspect
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from audit.chain import GENESIS_HASH, HASHED_FIELDS, canonical_bytes, event_hash, verify_chain
from audit.models import AuditChainHead, AuditEvent, EventKind, EventStatus
from audit.services import TEXT_LIMIT, AuditEntry, _called_with_fields_of, audit_record, audit_record_many
from hisplatform.models import ProjectMembership, ResearchProject

pytestmark = pytest.mark.django_db


def test_a_question_is_recorded_with_the_actor_as_they_were(cardiology_clinician: User) -> None:
    event = audit_record(
        user=cardiology_clinician,
        kind=EventKind.QUESTION,
        status=EventStatus.ANSWERED,
        client_addr="10.1.2.3",
        user_agent="Mozilla/5.0",
        purpose_of_use="treat",
        question="Which of my patients have a potassium above 6 today?",
        sql_generated="SELECT subject_id FROM labevents WHERE itemid = 50971 AND valuenum > 6",
        sql_executed="SELECT subject_id FROM labevents WHERE itemid = 50971 AND valuenum > 6 LIMIT 5000",
        decision="allow",
        obligations={"row_scope": "care_relationship", "masks": {"patients.phone": "redact"}},
        policy_trace=[{"rule": "clinician-care-relationship", "effect": "allow"}],
        tables_touched=["labevents", "patients", "labevents"],
        columns_touched=["labevents.valuenum", "labevents.subject_id"],
        row_count=2,
        patients_touched=[10000084, 10000032, 10000084],
        message="2 patients",
        duration_ms=41.23456,
    )

    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.seq, stored.prev_hash) == (1, GENESIS_HASH)
    assert stored.user_id == cardiology_clinician.pk
    assert (stored.username, stored.role) == ("carla.cardio", "clinician")
    assert stored.attributes == {"department": "CARD", "staff_id": None, "projects": []}
    assert (stored.client_addr, stored.purpose_of_use) == ("10.1.2.3", "TREAT")
    assert stored.tables_touched == ["labevents", "patients"]
    assert stored.columns_touched == ["labevents.subject_id", "labevents.valuenum"]
    assert (stored.patients_touched, stored.patients_touched_count) == ([10000032, 10000084], 2)
    assert stored.policy_trace == [{"rule": "clinician-care-relationship", "effect": "allow"}]
    assert stored.duration_ms == 41.235
    assert stored.breakglass_session_id is None
    assert stored.hash == event.hash == event_hash({name: getattr(stored, name) for name in HASHED_FIELDS})
    assert AuditChainHead.objects.get().seq == 1


def test_the_event_keeps_role_and_attributes_after_the_profile_changes(researcher: User) -> None:
    project = ResearchProject.objects.create(
        code="SEPSIS-01",
        title="Sepsis outcomes",
        purpose="Outcomes",
        ethics_reference="IRB-1",
        approved_on=dt.date(2020, 1, 1),
        expires_on=dt.date(2099, 1, 1),
    )
    ProjectMembership.objects.create(project=project, user=researcher)
    event = audit_record(user=researcher, kind=EventKind.QUESTION, status=EventStatus.ANSWERED)

    researcher.profile.role = "administrator"
    researcher.profile.save()
    project.delete()

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.role == "researcher"
    assert stored.attributes == {"department": "", "staff_id": None, "projects": ["SEPSIS-01"]}


def test_the_event_outlives_the_account(icu_nurse: User) -> None:
    event = audit_record(user=icu_nurse, kind=EventKind.LOGIN, status=EventStatus.OK)
    user_id = icu_nurse.pk

    icu_nurse.delete()

    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.user_id, stored.username, stored.role) == (user_id, "ivan.icu", "nurse")
    assert verify_chain().intact


def test_explicit_subject_attributes_win_over_the_profile(cardiology_clinician: User) -> None:
    event = audit_record(
        user=cardiology_clinician,
        kind=EventKind.QUESTION,
        status=EventStatus.DENIED,
        role="clinician",
        attributes={"department": "CARD", "care_units": ["CCU"], "breakglass": True},
        breakglass_session_id=42,
        decision="deny",
    )
    assert AuditEvent.objects.filter(
        pk=event.pk, attributes__care_units=["CCU"], breakglass_session_id=42, decision="deny"
    ).exists()


def test_a_failed_login_is_recorded_without_a_user() -> None:
    event = audit_record(
        user=None,
        kind=EventKind.LOGIN_FAILED,
        status=EventStatus.DENIED,
        username="mallory",
        client_addr="::1",
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.user_id, stored.username, stored.role, stored.attributes) == (None, "mallory", "", {})
    assert stored.client_addr == "::1"


@pytest.mark.parametrize(
    ("field", "value"),
    [("kind", "gossip"), ("status", "maybe"), ("decision", "perhaps")],
)
def test_unknown_choices_are_refused_and_nothing_is_written(field: str, value: str) -> None:
    arguments: dict[str, Any] = {"kind": EventKind.EXPORT, "status": EventStatus.OK, field: value}
    with pytest.raises(ValueError, match=f"Unknown audit {field} '{value}'"):
        audit_record(user=None, **arguments)
    assert not AuditEvent.objects.exists()
    assert not AuditChainHead.objects.exists()


@dataclasses.dataclass
class _Obligation:
    mask: str
    columns: tuple[str, ...]


def test_awkward_values_are_stored_so_that_they_still_verify() -> None:
    numbers: dict[Any, Any] = {"big": 1e16, "negative_zero": -0.0, "nan": float("nan"), "small": 1e-7, 3: "3"}
    question = "Patient Ünal's\x00 results 🙂 \ud800" + "x" * (TEXT_LIMIT + 10)
    event = audit_record(
        user=None,
        kind=EventKind.QUESTION,
        status=EventStatus.ERROR,
        question=question,
        client_addr=" 2001:0DB8:0000::0001 ",
        attributes=numbers,
        obligations=_Obligation(mask="initials", columns=("patients.name",)),
        details={"when": dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC), "units": {"ICU", "CCU"}},
        duration_ms=5,
    )

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.question.startswith("Patient Ünal's\ufffd results 🙂 ?xxx")
    assert stored.question.endswith(f" … [truncated: {len(question)} characters in all]")
    assert len(stored.question) == TEXT_LIMIT
    assert stored.client_addr == "2001:db8::1"
    assert stored.attributes == {
        "big": 10_000_000_000_000_000,
        "negative_zero": 0.0,
        "nan": "nan",
        "small": 1e-7,
        "3": "3",
    }
    assert stored.obligations == {"mask": "initials", "columns": ["patients.name"]}
    assert stored.details == {"when": "2026-11-25T08:00:00Z", "units": ["CCU", "ICU"]}
    assert stored.duration_ms == 5.0
    assert verify_chain().intact


def test_the_hash_covers_a_fixed_canonical_form() -> None:
    # Pinned: changing the canonical form would make every stored chain fail verification.
    values = dict.fromkeys(HASHED_FIELDS) | {
        "seq": 1,
        "prev_hash": GENESIS_HASH,
        "occurred_at": dt.datetime(2026, 11, 25, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "kind": "question",
        "attributes": {"b": 1, "a": [1.5, "é"]},
    }
    assert (
        canonical_bytes(values)
        == (
            '{"attributes":{"a":[1.5,"é"],"b":1},"breakglass_session_id":null,"client_addr":null,'
            '"columns_touched":null,"decision":null,"details":null,"duration_ms":null,"kind":"question",'
            '"message":null,"obligations":null,"occurred_at":"2026-11-25T07:30:00.000000Z",'
            '"patients_touched":null,"patients_touched_count":null,"policy_trace":null,'
            f'"prev_hash":"{GENESIS_HASH}","purpose_of_use":null,"question":null,"role":null,'
            '"row_count":null,"seq":1,"sql_executed":null,"sql_generated":null,"status":null,'
            '"tables_touched":null,"user_agent":null,"user_id":null,"username":null}'
        ).encode()
    )
    assert event_hash(values) == hashlib.sha256(canonical_bytes(values)).hexdigest()
    assert event_hash(values) == "de4c614618900f5b8dcccae516a215a72aa9cd69d81b3835aaa1eb6cf2f37271"


def test_the_hash_covers_every_column() -> None:
    columns = {field.attname for field in AuditEvent._meta.concrete_fields}
    assert set(HASHED_FIELDS) == columns - {"hash"}


def test_audit_record_takes_audit_entrys_fields_defaults_and_all() -> None:
    assert inspect.signature(audit_record).parameters == inspect.signature(AuditEntry).parameters
    assert list(inspect.signature(audit_record).parameters) == [
        f.name for f in dataclasses.fields(AuditEntry)
    ]


def test_a_field_added_to_the_entry_is_taken_without_being_written_twice() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
    class TicketedEntry(AuditEntry):
        ticket: str = ""

    received: list[AuditEntry] = []

    def keep(entry: AuditEntry) -> AuditEvent:
        received.append(entry)
        return AuditEvent(seq=len(received))

    record = _called_with_fields_of(TicketedEntry)(keep)
    record(user=None, kind=EventKind.EXPORT, status=EventStatus.OK, ticket="INC-42")

    assert received == [
        TicketedEntry(user=None, kind=EventKind.EXPORT, status=EventStatus.OK, ticket="INC-42")
    ]
    assert "ticket" in inspect.signature(record).parameters


def test_the_time_is_the_services_never_the_callers(record_questions) -> None:
    a_year_ago = timezone.now() - dt.timedelta(days=365)
    with pytest.raises(TypeError, match="occurred_at"):
        audit_record(user=None, kind=EventKind.LOGIN, status=EventStatus.OK, occurred_at=a_year_ago)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="occurred_at"):
        AuditEntry(user=None, kind=EventKind.LOGIN, status=EventStatus.OK, occurred_at=a_year_ago)  # type: ignore[call-arg]

    before = timezone.now()
    record_questions(3)
    audit_record_many(entries=[AuditEntry(user=None, kind=EventKind.LOGOUT, status=EventStatus.OK)] * 3)
    record_questions(2)
    after = timezone.now()

    times = list(AuditEvent.objects.order_by("seq").values_list("occurred_at", flat=True))
    assert len(times) == 8
    assert times == sorted(times)  # seq order is time order
    assert before <= times[0] <= times[-1] <= after


def test_events_chain_one_to_the_next(record_questions) -> None:
    events = record_questions(3)
    assert [event.seq for event in events] == [1, 2, 3]
    assert [event.prev_hash for event in events] == [GENESIS_HASH, events[0].hash, events[1].hash]
    assert AuditChainHead.objects.values_list("seq", "hash").get() == (3, events[2].hash)


def test_a_batch_appends_in_order_and_the_chain_continues(security_officer: User) -> None:
    batch = audit_record_many(
        entries=[
            AuditEntry(
                user=security_officer, kind=EventKind.AUDIT_ACCESS, status=EventStatus.OK, message=str(n)
            )
            for n in range(3)
        ]
    )
    single = audit_record(user=security_officer, kind=EventKind.EXPORT, status=EventStatus.OK)

    assert [event.seq for event in batch] == [1, 2, 3]
    assert [event.message for event in batch] == ["0", "1", "2"]
    assert single.prev_hash == batch[-1].hash
    assert audit_record_many(entries=[]) == []
    assert verify_chain().events == 4


def test_an_event_rolls_back_with_the_callers_transaction(record_questions) -> None:
    record_questions(1)

    def failing_view() -> None:
        with transaction.atomic():
            record_questions(1)
            raise RuntimeError("the view failed")

    with pytest.raises(RuntimeError):
        failing_view()

    again = record_questions(1)[0]
    assert again.seq == 2
    assert verify_chain().events == 2


def test_an_append_costs_five_queries_once_the_chain_exists(
    record_questions, django_assert_num_queries
) -> None:
    record_questions(1)
    # SAVEPOINT, lock and read the head, INSERT the event, move the head, RELEASE SAVEPOINT.
    with django_assert_num_queries(5):
        audit_record(user=None, kind=EventKind.LOGOUT, status=EventStatus.OK, role="nurse", attributes={})

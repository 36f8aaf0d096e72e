"""The audit admin shows events to staff and offers no way to add, change or delete one."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from audit.models import Alert, AuditEvent, EventKind, EventStatus
from audit.services import audit_record

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/audit/auditevent/"


@pytest.fixture
def events(admin_client: Client, cardiology_clinician, researcher) -> None:
    # Event 1 is the admin's own sign-in (recorded when the test client logs in); then these two.
    audit_record(user=cardiology_clinician, kind=EventKind.QUESTION, status=EventStatus.ANSWERED)
    audit_record(user=researcher, kind=EventKind.EXPORT, status=EventStatus.DENIED, decision="deny")


def test_the_list_searches_by_username_and_filters_by_kind(admin_client: Client, events: None) -> None:
    everyone = admin_client.get(CHANGELIST)
    carla = admin_client.get(CHANGELIST, {"q": "carla.cardio"})
    exports = admin_client.get(CHANGELIST, {"kind__exact": "export", "role__exact": "researcher"})

    assert everyone.status_code == carla.status_code == exports.status_code == 200
    assert [(e.username, e.kind) for e in everyone.context["cl"].result_list] == [
        ("admin", EventKind.AUDIT_ACCESS),  # looking at the list is itself recorded first
        ("rita.research", EventKind.EXPORT),
        ("carla.cardio", EventKind.QUESTION),
        ("admin", EventKind.LOGIN),
    ]
    assert [e.username for e in carla.context["cl"].result_list] == ["carla.cardio"]
    assert [e.seq for e in exports.context["cl"].result_list] == [3]
    looks = AuditEvent.objects.filter(kind=EventKind.AUDIT_ACCESS).order_by("seq")
    assert [e.details["query"] for e in looks] == [
        {},
        {"q": ["carla.cardio"]},
        {"kind__exact": ["export"], "role__exact": ["researcher"]},
    ]


def test_an_event_can_be_viewed_but_not_changed(admin_client: Client, events: None) -> None:
    page = admin_client.get(f"{CHANGELIST}2/change/")
    assert page.status_code == 200
    assert b"carla.cardio" in page.content
    assert b'name="_save"' not in page.content
    assert admin_client.post(f"{CHANGELIST}2/change/", {"status": "ok"}).status_code == 403


@pytest.mark.parametrize("url", [f"{CHANGELIST}add/", f"{CHANGELIST}2/delete/"])
def test_there_is_no_way_to_add_or_delete(admin_client: Client, events: None, url: str) -> None:
    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403


def test_bulk_delete_is_not_offered(admin_client: Client, events: None) -> None:
    page = admin_client.get(CHANGELIST)
    assert "delete_selected" not in page.context["cl"].model_admin.get_actions(page.wsgi_request)


QUESTION = "what is the home address of patient 10001"


@pytest.fixture
def asked(cardiology_clinician) -> AuditEvent:
    return audit_record(
        user=cardiology_clinician,
        kind=EventKind.QUESTION,
        status=EventStatus.ANSWERED,
        question=QUESTION,
        sql_executed="SELECT address FROM patient_identity WHERE subject_id = 10001",
        patients_touched=[10001],
    )


def test_question_text_sql_and_patients_are_withheld_from_staff_who_are_not_security_officers(
    admin_client: Client, asked: AuditEvent
) -> None:
    page = admin_client.get(f"{CHANGELIST}{asked.seq}/change/")
    assert page.status_code == 200
    assert QUESTION.encode() not in page.content
    assert b"patient_identity" not in page.content
    assert b"10001" not in page.content
    assert page.content.count(b"Withheld: visible to security officers only.") == 4  # + attributes
    look = AuditEvent.objects.filter(kind=EventKind.AUDIT_ACCESS).latest("seq")
    assert (look.username, look.details["event"], look.details["protected_shown"]) == (
        "admin",
        str(asked.seq),
        False,
    )


def test_a_security_officer_sees_the_question_and_the_look_is_recorded(
    client: Client, security_officer, asked: AuditEvent
) -> None:
    security_officer.is_staff = True
    security_officer.save()
    security_officer.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client.force_login(security_officer)
    page = client.get(f"{CHANGELIST}{asked.seq}/change/")
    assert page.status_code == 200
    assert QUESTION.encode() in page.content
    look = AuditEvent.objects.filter(kind=EventKind.AUDIT_ACCESS).latest("seq")
    assert (look.username, look.details["protected_shown"]) == ("sofia.security", True)


def test_alerts_are_for_the_privacy_office_only(
    admin_client: Client, client: Client, security_officer
) -> None:
    from django.utils import timezone

    now = timezone.now()
    alert = Alert.objects.create(
        username="carla.cardio", role="clinician", day=now.date(), created_at=now, updated_at=now, risk=97,
        summary="Opened a VIP patient's record", first_event_at=now, last_event_at=now,
    )  # fmt: skip
    assert admin_client.get(f"/admin/audit/alert/{alert.pk}/change/").status_code == 403
    security_officer.is_staff = True
    security_officer.save()
    client.force_login(security_officer)
    assert client.get(f"/admin/audit/alert/{alert.pk}/change/").status_code == 200
    assert AuditEvent.objects.filter(kind=EventKind.AUDIT_ACCESS, username="sofia.security").count() == 1


@pytest.mark.parametrize(
    "query",
    [
        {"question__icontains": "address"},
        {"question__startswith": "what"},
        {"patients_touched__icontains": "10001"},
        {"message__icontains": "patient"},
        {"details__icontains": "hiv"},
        {"sql_executed__isnull": "False"},
    ],
)
def test_staff_who_are_not_officers_cannot_search_what_is_withheld(
    admin_client: Client, asked: AuditEvent, query: dict[str, str]
) -> None:
    page = admin_client.get(CHANGELIST, query)
    assert page.status_code == 400  # Django refuses a filter the admin does not allow
    assert QUESTION.encode() not in page.content


def test_a_refusal_naming_a_patient_is_withheld_too(admin_client: Client, cardiology_clinician) -> None:
    refused = audit_record(
        user=cardiology_clinician,
        kind=EventKind.QUESTION,
        status=EventStatus.DENIED,
        message="You may not see this: patient 10007 is outside your care relationships.",
        details={
            "refused_patients": ["patient 10007"],
            "interpretation": "Showing the HIV status of patient 10007.",
        },
    )
    page = admin_client.get(f"{CHANGELIST}{refused.seq}/change/")
    assert page.status_code == 200
    assert b"10007" not in page.content
    assert b"HIV status" not in page.content
    history = admin_client.get(f"{CHANGELIST}{refused.seq}/history/")
    assert history.status_code == 200
    look = AuditEvent.objects.filter(kind=EventKind.AUDIT_ACCESS).latest("seq")
    assert look.message == f"audit event {refused.seq} history viewed"


def test_refused_looks_are_recorded_too(admin_client: Client, client: Client, cardiology_clinician) -> None:
    from django.utils import timezone

    now = timezone.now()
    alert = Alert.objects.create(
        username="carla.cardio", role="clinician", day=now.date(), created_at=now, updated_at=now, risk=97,
        summary="Opened a VIP patient's record", first_event_at=now, last_event_at=now,
    )  # fmt: skip
    assert admin_client.get("/admin/audit/alert/").status_code == 403
    assert admin_client.get(f"/admin/audit/alert/{alert.pk}/change/").status_code == 403
    assert admin_client.get("/admin/audit/auditevent/1/delete/").status_code == 403
    assert admin_client.get("/admin/audit/checkpoint/").status_code == 200
    looks = AuditEvent.objects.filter(kind=EventKind.AUDIT_ACCESS).order_by("seq")
    assert [(e.status, e.message) for e in looks] == [
        ("denied", "refused: alert list viewed"),
        ("denied", f"refused: alert {alert.pk} viewed"),
        ("ok", "audit event 1 deletion page asked for"),
        ("ok", "checkpoint list viewed"),
    ]

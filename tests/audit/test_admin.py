"""The audit admin shows events to staff and offers no way to add, change or delete one."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import EventKind, EventStatus
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
        ("rita.research", EventKind.EXPORT),
        ("carla.cardio", EventKind.QUESTION),
        ("admin", EventKind.LOGIN),
    ]
    assert [e.username for e in carla.context["cl"].result_list] == ["carla.cardio"]
    assert [e.seq for e in exports.context["cl"].result_list] == [3]


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

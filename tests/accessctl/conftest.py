"""The demo hospital's people as accounts linked to their warehouse staff records, and the policy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from accessctl.models import MaskingRule, PolicyRule
from accessctl.readpolicy import forget_catalogs
from accessctl.services import policy_load_defaults
from hisplatform.demo import DEMO_STAFF
from hisplatform.models import ProjectMembership, ResearchProject, StaffProfile
from hisplatform.warehouse.executor import execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget
from tests.conftest import REFERENCE_DATE
from tests.factories import PASSWORD, UserFactory

# Noon on the demo hospital's reference day: the census, current stays and care teams are as seeded.
NOON = dt.datetime.combine(REFERENCE_DATE, dt.time(12, 0), tzinfo=dt.UTC)

People = dict[str, User]


@pytest.fixture
def default_policy(db: None) -> None:
    """The shipped policy (migration 0002 loads it; a flushing test before this one may have removed it)."""
    if not PolicyRule.objects.exists() or not MaskingRule.objects.exists():
        policy_load_defaults()
    forget_catalogs()


def _make_people(target: WarehouseTarget) -> People:
    staff_ids = {
        str(row[0]): int(str(row[1]))
        for row in execute_readonly(
            "SELECT username, staff_id FROM staff WHERE username IS NOT NULL", target=target
        ).rows
    }
    people: People = {}
    for person in DEMO_STAFF:
        user = UserFactory.create(
            username=person.username,
            first_name=person.given_name,
            last_name=person.family_name,
            email=f"{person.username}@demo-hospital.example",
        )
        StaffProfile.objects.update_or_create(
            user=user,
            defaults={
                "role": person.role,
                "department": person.department,
                "staff_id": staff_ids.get(person.username),
                "title": person.title,
            },
        )
        people[person.username] = user
    active = ResearchProject.objects.create(
        code="RP-2026-014",
        title="Outcomes of sepsis in the critically ill",
        purpose="Retrospective cohort study.",
        ethics_reference="REC 26/EM/0147",
        approved_on=REFERENCE_DATE - dt.timedelta(days=60),
        expires_on=REFERENCE_DATE + dt.timedelta(days=305),
    )
    ProjectMembership.objects.create(project=active, user=people["res.garcia"])
    return people


@pytest.fixture
def sqlite_people(default_policy: None, sqlite_warehouse: WarehouseTarget) -> People:
    return _make_people(sqlite_warehouse)


@pytest.fixture
def pg_people(default_policy: None, pg_warehouse: WarehouseTarget) -> People:
    return _make_people(pg_warehouse)


@pytest.fixture
def expired_researcher(default_policy: None) -> User:
    user = UserFactory.create(username="res.lapsed")
    StaffProfile.objects.create(user=user, role="researcher")
    project = ResearchProject.objects.create(
        code="RP-2023-002",
        title="Readmissions after heart failure (closed)",
        purpose="Completed study.",
        ethics_reference="REC 23/LO/0031",
        approved_on=REFERENCE_DATE - dt.timedelta(days=1000),
        expires_on=REFERENCE_DATE - dt.timedelta(days=270),
    )
    ProjectMembership.objects.create(project=project, user=user)
    return user


def rows_of(target: WarehouseTarget) -> Callable[[str], list[tuple[object, ...]]]:
    """Run trusted SQL on the warehouse (test set-up only: the raw truth to compare answers with)."""
    return lambda sql: execute_readonly(sql, target=target, row_cap=100_000).rows


__all__ = ["NOON", "PASSWORD", "People", "rows_of"]

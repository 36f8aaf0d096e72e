"""Shared fixtures: personas named for what they may do, and seeded demo warehouses."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import psycopg
import pytest
from django.contrib.auth.models import User

from hisplatform.models import Role
from hisplatform.warehouse.targets import WarehouseTarget, warehouse_target
from tests.audit.flush import audit_tables_flushable
from tests.factories import StaffProfileFactory

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PG_SERVER = os.environ.get("PG_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432")
REFERENCE_DATE = dt.date(2026, 11, 25)


# Slow tests of what the application database plays little part in: run once, in the PostgreSQL pass
# (`make test` runs the suite twice); the fast Django-client tests of the same pages run in both.
_ONCE: Final = ("tests/browser/", "tests/hisplatform/test_api_fuzz.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
        return
    once = pytest.mark.skip(reason="runs in the PostgreSQL application-database pass")
    root = Path(str(config.rootpath))
    for item in items:
        if Path(str(item.path)).relative_to(root).as_posix().startswith(_ONCE):
            item.add_marker(once)


@pytest.fixture(autouse=True, scope="session")
def _audit_tables_flushable() -> Iterator[None]:
    """Let transactional tests' teardown flush the append-only audit tables (tests only)."""
    with audit_tables_flushable():
        yield


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts with an empty cache (one process's memory here): throttling counters, kept answers
    and a verification's running mark from one test must not decide another's outcome."""
    from django.core.cache import cache

    cache.clear()


def _persona(username: str, role: Role, department: str = "") -> User:
    profile = StaffProfileFactory.create(user__username=username, role=role, department=department)
    return profile.user


@pytest.fixture
def cardiology_clinician(db: None) -> User:
    return _persona("carla.cardio", Role.CLINICIAN, "CARD")


@pytest.fixture
def icu_nurse(db: None) -> User:
    return _persona("ivan.icu", Role.NURSE, "CRITC")


@pytest.fixture
def researcher(db: None) -> User:
    return _persona("rita.research", Role.RESEARCHER)


@pytest.fixture
def administrator(db: None) -> User:
    return _persona("adam.admin", Role.ADMINISTRATOR)


@pytest.fixture
def security_officer(db: None) -> User:
    return _persona("sofia.security", Role.SECURITY_OFFICER)


@pytest.fixture(scope="session")
def sqlite_warehouse(tmp_path_factory: pytest.TempPathFactory) -> WarehouseTarget:
    """A small demo hospital (seed 7) in a SQLite file, shared by the whole run."""
    from hisplatform.warehouse.loader import load_demo

    path = tmp_path_factory.mktemp("warehouse") / "warehouse.sqlite3"
    target = warehouse_target(f"sqlite:///{path}")
    load_demo(target, patients=200, seed=7, reference_date=REFERENCE_DATE)
    return target


@pytest.fixture(scope="session")
def pg_warehouse() -> Iterator[WarehouseTarget]:
    """The same small demo hospital in a PostgreSQL database of its own, dropped afterwards."""
    from hisplatform.warehouse.loader import load_demo

    name = f"his_test_wh_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    target = warehouse_target(f"{PG_SERVER}/{name}")
    try:
        load_demo(target, patients=200, seed=7, reference_date=REFERENCE_DATE)
        yield target
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

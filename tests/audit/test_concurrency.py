"""Concurrent appenders never fork the chain: threads, each with its own connection, and processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection, transaction

from audit.appender import stop_appender
from audit.chain import verify_chain
from audit.models import AuditEvent, EventKind, EventStatus
from audit.services import AuditEntry, audit_record, audit_record_many

WRITERS = 8
EVENTS_EACH = 25

# Django's SQLite test database defaults to a shared-cache in-memory database, where a second writer
# gets "database table is locked" at once instead of waiting: not how the file database that the
# application uses behaves. Thread tests need a file; the process test below always uses one.
needs_file_database = pytest.mark.skipif(
    "connection.vendor == 'sqlite' and connection.is_in_memory_db()",
    reason="SQLite test database is in memory (shared cache); set DATABASES['default']['TEST']['NAME']",
)


def _in_threads(work: Callable[[int], None], count: int) -> list[BaseException]:
    """Run work(i) in `count` threads released together; each thread closes its own connection."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            start.wait()
            work(index)
        except BaseException as exc:  # collected and asserted on by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


@needs_file_database
@pytest.mark.django_db(transaction=True)
def test_threads_appending_at_once_make_one_contiguous_chain() -> None:
    def append(writer: int) -> None:
        for n in range(EVENTS_EACH):
            audit_record(
                user=None,
                kind=EventKind.QUESTION,
                status=EventStatus.ANSWERED,
                username=f"writer{writer}",
                message=str(n),
            )

    assert _in_threads(append, WRITERS) == []

    rows = list(AuditEvent.objects.order_by("seq").values_list("seq", "username", "message"))
    assert [seq for seq, _, _ in rows] == list(range(1, WRITERS * EVENTS_EACH + 1))
    for writer in range(WRITERS):  # each writer's events kept its own order
        assert [int(m) for _, user, m in rows if user == f"writer{writer}"] == list(range(EVENTS_EACH))
    times = list(AuditEvent.objects.order_by("seq").values_list("occurred_at", flat=True))
    assert times == sorted(times)  # stamped under the lock: seq order is time order across writers
    report = verify_chain()
    assert (report.intact, report.events) == (True, WRITERS * EVENTS_EACH)


@pytest.fixture
def group_commit(settings: Any) -> Iterator[None]:
    settings.AUDIT_GROUP_COMMIT = True
    try:
        yield
    finally:
        stop_appender()


@needs_file_database
@pytest.mark.django_db(transaction=True)
def test_requests_outside_transactions_share_appends_and_keep_one_chain(group_commit: None) -> None:
    def append(writer: int) -> None:
        for n in range(EVENTS_EACH):
            event = audit_record(
                user=None,
                kind=EventKind.QUESTION,
                status=EventStatus.ANSWERED,
                username=f"w{writer}",
                message=str(n),
            )
            stored = AuditEvent.objects.get(seq=event.seq)  # stored when audit_record returns
            assert (stored.username, stored.message, stored.hash) == (f"w{writer}", str(n), event.hash)

    assert _in_threads(append, WRITERS) == []
    rows = list(AuditEvent.objects.order_by("seq").values_list("seq", "username", "message", "occurred_at"))
    assert [seq for seq, _, _, _ in rows] == list(range(1, WRITERS * EVENTS_EACH + 1))
    for writer in range(WRITERS):
        assert [int(m) for _, user, m, _ in rows if user == f"w{writer}"] == list(range(EVENTS_EACH))
    # Events appended together carry the same moment: fewer moments than events means shared appends.
    assert len({at for _, _, _, at in rows}) < WRITERS * EVENTS_EACH
    report = verify_chain()
    assert (report.intact, report.events) == (True, WRITERS * EVENTS_EACH)


@needs_file_database
@pytest.mark.django_db(transaction=True)
def test_an_event_inside_a_transaction_is_appended_by_it_and_rolls_back_with_it(group_commit: None) -> None:
    def failing_work() -> None:
        with transaction.atomic():
            audit_record(user=None, kind=EventKind.LOGIN, status=EventStatus.OK)
            raise RuntimeError("the caller's work failed")

    with pytest.raises(RuntimeError):
        failing_work()
    assert not AuditEvent.objects.exists()
    event = audit_record(user=None, kind=EventKind.LOGIN, status=EventStatus.OK)
    assert AuditEvent.objects.get().seq == event.seq == 1


@needs_file_database
@pytest.mark.django_db(transaction=True)
def test_batches_and_single_events_interleave_without_forking() -> None:
    def append(writer: int) -> None:
        for _ in range(5):
            if writer % 2:
                audit_record(user=None, kind=EventKind.EXPORT, status=EventStatus.OK)
            else:
                entries = [
                    AuditEntry(user=None, kind=EventKind.LOGIN, status=EventStatus.OK) for _ in range(7)
                ]
                audit_record_many(entries=entries)

    assert _in_threads(append, 4) == []
    report = verify_chain()
    assert (report.intact, report.events) == (True, 2 * 5 + 2 * 5 * 7)


@needs_file_database
@pytest.mark.django_db(transaction=True)
def test_verify_while_others_append_sees_an_intact_chain() -> None:
    reports = []

    def work(index: int) -> None:
        if index == 0:  # the verifier, walking in small chunks while the chain grows under it
            for _ in range(10):
                reports.append(verify_chain(chunk_size=3))
        else:
            for _ in range(30):
                audit_record(user=None, kind=EventKind.QUESTION, status=EventStatus.ANSWERED)

    assert _in_threads(work, 3) == []
    assert [report.problem for report in reports] == [None] * 10
    assert verify_chain().events == 60


PROCESSES = 4
THREADS_EACH = 3
EVENTS_PER_THREAD = 15
_WRITER = f"""
import sys, threading, time
from pathlib import Path
from typing import Any
import django
django.setup()
from django.db import connection
from audit.services import audit_record

process, go = sys.argv[1], Path(sys.argv[2])
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.01)
errors = []

def append(thread):
    try:
        for n in range({EVENTS_PER_THREAD}):
            audit_record(user=None, kind="question", status="answered", username=f"p{{process}}t{{thread}}",
                         message=str(n))
    except BaseException as exc:
        errors.append(repr(exc))
    finally:
        connection.close()

threads = [threading.Thread(target=append, args=(t,)) for t in range({THREADS_EACH})]
for t in threads: t.start()
for t in threads: t.join()
sys.exit("; ".join(errors) if errors else 0)
"""


def _database_url(tmp_path: Path) -> str:
    """The database the child processes share: this test's PostgreSQL database, or a migrated SQLite file."""
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        user = quote(db["USER"] or "")
        password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
        return f"postgresql://{user}{password}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    _manage(url, "migrate", "--noinput", "-v0", check=True)
    return url


def _manage(url: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=_child_env(url),
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def _child_env(url: str) -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": url}


def _tamper_with_event(url: str, seq: int) -> None:
    """Edit one committed event the way an owner of the database could."""
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_event DISABLE TRIGGER USER")
            cursor.execute("UPDATE audit_event SET row_count = 999 WHERE seq = %s", [seq])
            cursor.execute("ALTER TABLE audit_event ENABLE TRIGGER USER")
        return
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        (trigger,) = db.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'audit_event_no_update'"
        ).fetchone()
        db.execute("DROP TRIGGER audit_event_no_update")
        db.execute("UPDATE audit_event SET row_count = 999 WHERE seq = ?", [seq])
        db.execute(trigger)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_processes_appending_at_once_make_one_chain_and_the_command_exits_accordingly(tmp_path: Path) -> None:
    url = _database_url(tmp_path)
    go = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(index), str(go)],
            cwd=settings.BASE_DIR,
            env=_child_env(url),
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(PROCESSES)
    ]
    time.sleep(0.2)
    go.touch()
    failures = [writer.communicate(timeout=120)[1] for writer in writers if writer.wait(timeout=120) != 0]
    assert failures == []

    total = PROCESSES * THREADS_EACH * EVENTS_PER_THREAD
    intact = _manage(url, "audit_verify")
    assert (intact.returncode, intact.stdout.split(",")[0]) == (0, f"Audit chain intact: {total} events")

    _tamper_with_event(url, seq=7)
    broken = _manage(url, "audit_verify")
    assert broken.returncode == 1
    assert "CommandError: Audit chain BROKEN at event seq 7 (edited)" in broken.stderr


@needs_file_database
@pytest.mark.django_db(transaction=True)
def test_one_refused_event_does_not_fail_the_events_appended_with_it(group_commit: None) -> None:
    outcomes: dict[int, str] = {}

    def append(writer: int) -> None:
        try:
            audit_record(
                user=None,
                kind=EventKind.QUESTION,
                status=EventStatus.ANSWERED,
                username=f"w{writer}",
                row_count=2**70 if writer == 3 else 1,  # too large for the column: the database refuses it
            )
            outcomes[writer] = "stored"
        except Exception:
            outcomes[writer] = "refused"

    assert _in_threads(append, WRITERS) == []
    assert outcomes == {writer: "refused" if writer == 3 else "stored" for writer in range(WRITERS)}
    assert sorted(AuditEvent.objects.values_list("username", flat=True)) == sorted(
        f"w{writer}" for writer in range(WRITERS) if writer != 3
    )
    assert verify_chain().intact

"""`audit_verify`: an intact chain passes; each kind of tampering is caught at the first bad event."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.chain import HASHED_FIELDS, event_hash, verify_chain
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _verify(*args: str) -> str:
    out = io.StringIO()
    call_command("audit_verify", *args, stdout=out)
    return out.getvalue().strip()


def _broken(*args: str) -> str:
    with pytest.raises(CommandError) as failure:
        _verify(*args)
    assert failure.value.returncode == 1
    return str(failure.value)


def test_an_empty_store_is_intact() -> None:
    assert (
        _verify()
        == "Audit chain intact: 0 events (the store is empty).\nCheckpoints: no signed checkpoints yet."
    )


def test_an_untouched_chain_is_intact(record_questions) -> None:
    events = record_questions(5)
    assert _verify() == (
        f"Audit chain intact: 5 events, head {events[-1].hash[:16]} (seq 5).\n"
        "Checkpoints: no signed checkpoints yet; the events are covered by the hash chain only."
    )
    assert _verify("--chunk-size", "2") == _verify()


def test_an_edited_event_is_named(record_questions, guards_lifted) -> None:
    record_questions(5)
    with guards_lifted() as cursor:
        cursor.execute("UPDATE audit_event SET question = 'nothing to see' WHERE seq = 3")
    assert _broken("--chunk-size", "2") == (
        "Audit chain BROKEN at event seq 3 (edited): event 3 was edited: its contents no longer match "
        "its hash. 2 events verified before it."
    )


def test_an_edited_event_with_a_recomputed_hash_breaks_the_next_link(record_questions, guards_lifted) -> None:
    record_questions(5)
    event = AuditEvent.objects.get(seq=3)
    event.row_count = 0
    forged = event_hash({name: getattr(event, name) for name in HASHED_FIELDS})
    with guards_lifted() as cursor:
        cursor.execute("UPDATE audit_event SET row_count = 0, hash = %s WHERE seq = 3", [forged])
    assert _broken() == (
        "Audit chain BROKEN at event seq 4 (broken_link): event 4's prev_hash does not match the hash of "
        "event 3: the event before it was rewritten with a recomputed hash, or events were reordered. "
        "3 events verified before it."
    )


@pytest.mark.parametrize("chunk_size", ["1", "2", "5000"])
def test_a_deleted_event_is_named(record_questions, guards_lifted, chunk_size: str) -> None:
    record_questions(5)
    with guards_lifted() as cursor:
        cursor.execute("DELETE FROM audit_event WHERE seq = 3")
    assert _broken("--chunk-size", chunk_size) == (
        "Audit chain BROKEN at event seq 3 (deleted): event 3 missing (deleted); the chain resumes at "
        "event 4. 2 events verified before it."
    )


def test_several_deleted_events_are_named_as_a_range(record_questions, guards_lifted) -> None:
    record_questions(6)
    with guards_lifted() as cursor:
        cursor.execute("DELETE FROM audit_event WHERE seq IN (1, 2, 3)")
    assert (
        "at event seq 1 (deleted): events 1-3 missing (deleted); the chain resumes at event 4." in _broken()
    )


def test_reordered_events_are_named(record_questions, guards_lifted) -> None:
    record_questions(5)
    with guards_lifted() as cursor:  # swap the positions of events 3 and 4
        cursor.execute("UPDATE audit_event SET seq = 1000 WHERE seq = 3")
        cursor.execute("UPDATE audit_event SET seq = 3 WHERE seq = 4")
        cursor.execute("UPDATE audit_event SET seq = 4 WHERE seq = 1000")
    assert _broken() == (
        "Audit chain BROKEN at event seq 3 (reordered): event 3 is out of place: its contents do not match "
        "its hash and its prev_hash does not match the hash of event 2 (events reordered, moved or "
        "replaced). 2 events verified before it."
    )


def test_truncated_newest_events_are_named(record_questions, guards_lifted) -> None:
    record_questions(5)
    with guards_lifted() as cursor:
        cursor.execute("DELETE FROM audit_event WHERE seq >= 4")
    assert _broken() == (
        "Audit chain BROKEN at event seq 4 (truncated): the chain head records 5 events but only 3 are "
        "present: events 4-5 are missing (truncated). 3 events verified before it."
    )


def test_a_store_emptied_behind_the_head_is_truncated(record_questions, guards_lifted) -> None:
    record_questions(2)
    with guards_lifted() as cursor:
        cursor.execute("DELETE FROM audit_event")
    assert "at event seq 1 (truncated): the chain head records 2 events but only 0 are present" in _broken()


def test_a_removed_head_is_reported(record_questions, guards_lifted) -> None:
    record_questions(2)
    with guards_lifted() as cursor:
        cursor.execute("DELETE FROM audit_chain_head")
    assert "(head_missing): 2 events are present but the chain head row is missing." in _broken()


def test_a_rewritten_newest_event_is_caught_by_the_head(record_questions, guards_lifted) -> None:
    record_questions(3)
    event = AuditEvent.objects.get(seq=3)
    event.question = "changed"
    forged = event_hash({name: getattr(event, name) for name in HASHED_FIELDS})
    with guards_lifted() as cursor:
        cursor.execute(
            "UPDATE audit_event SET question = %s, hash = %s WHERE seq = 3", [event.question, forged]
        )
    assert "at event seq 3 (head_mismatch): event 3's hash differs from the one the chain head recorded" in (
        _broken()
    )


def test_an_event_written_around_the_service_is_reported(record_questions, guards_lifted) -> None:
    events = record_questions(3)
    with guards_lifted() as cursor:  # the head moves back to event 2, as if event 3 had bypassed it
        cursor.execute("UPDATE audit_chain_head SET seq = 2, hash = %s", [events[1].hash])
    assert "at event seq 3 (beyond_head): events 3-3 lie beyond the chain head (seq 2)" in _broken()


def _drop_or_disable_one_guard(cursor: Any) -> None:
    if connection.vendor == "postgresql":
        cursor.execute("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
    else:
        cursor.execute("DROP TRIGGER audit_event_no_update")


def test_an_intact_chain_without_its_guards_fails(record_questions) -> None:
    record_questions(2)
    with connection.cursor() as cursor:
        _drop_or_disable_one_guard(cursor)
    name = "audit_event_append_only" if connection.vendor == "postgresql" else "audit_event_no_update"
    assert _broken() == (
        "Audit chain intact (2 events), UNPROTECTED: the chain is intact but the database no longer "
        f"refuses changes to it: trigger(s) {name} missing or disabled (re-run the audit migration)."
    )


def test_verify_reports_the_chain_it_walked(record_questions) -> None:
    events = record_questions(4)
    report = verify_chain(chunk_size=3)
    assert (report.intact, report.events, report.head_seq, report.head_hash) == (True, 4, 4, events[-1].hash)


def test_a_bad_chunk_size_is_refused() -> None:
    with pytest.raises(CommandError, match="--chunk-size must be at least 1"):
        _verify("--chunk-size", "0")


def _manage(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.django_db(
    transaction=True
)  # the rename must be seen, and the failure must not poison a transaction
def test_a_missing_table_is_a_clear_error_not_a_traceback(record_questions) -> None:
    record_questions(1)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_chain_head RENAME TO audit_chain_head_elsewhere")
    try:
        message = _broken()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_chain_head_elsewhere RENAME TO audit_chain_head")
    assert message.startswith("Could not verify the audit chain in the ")
    assert ": table audit_chain_head missing (" in message
    assert message.endswith("); run `manage.py migrate` on this database.")
    assert _verify().startswith("Audit chain intact: 1 events")


def test_an_unmigrated_database_fails_with_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never_migrated.sqlite3'}"
    result = _manage(url, "audit_verify")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "CommandError: Could not verify the audit chain in the SQLite database "
        f"{tmp_path / 'never_migrated.sqlite3'}: tables audit_event, audit_chain_head missing "
        "(no such table: audit_chain_head); run `manage.py migrate` on this database."
    )


def test_an_unreachable_database_fails_with_one_line() -> None:
    # Port 1 on loopback: nothing listens, so the connection is refused at once.
    result = _manage("postgresql://postgres@127.0.0.1:1/his_audit2_nowhere", "audit_verify")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    first_line, *rest = result.stderr.strip().splitlines()
    assert rest == []
    assert first_line.startswith(
        "CommandError: Could not verify the audit chain in the postgresql database his_audit2_nowhere on "
        "127.0.0.1:1: the database cannot be reached ("
    )
    assert first_line.endswith("); check that it is up and DATABASE_URL is right.")

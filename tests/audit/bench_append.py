"""Audit append throughput with the hash chain (events/s, one writer), on a throwaway database.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/his_audit_bench \\
        .venv/bin/python -m tests.audit.bench_append [--repeat 5]

Creates test_<name>, migrates it, measures, drops it. Prints medians over the repeats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any


def _entry_kwargs() -> dict[str, Any]:
    # A typical answered question: the size of what the pipeline records, not an empty row.
    return {
        "user": None,
        "kind": "question",
        "status": "answered",
        "username": "carla.cardio",
        "role": "clinician",
        "attributes": {"department": "CARD", "staff_id": 1201, "projects": [], "care_units": ["CCU"]},
        "client_addr": "10.20.30.40",
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        "purpose_of_use": "TREAT",
        "question": "Which of my patients had a potassium above 6 in the last 24 hours?",
        "sql_generated": "SELECT subject_id, valuenum FROM labevents WHERE itemid = 50971 AND valuenum > 6",
        "sql_executed": "SELECT subject_id, valuenum FROM labevents WHERE itemid = 50971 AND valuenum > 6 "
        "AND subject_id IN (SELECT subject_id FROM care_scope) LIMIT 5000",
        "decision": "allow",
        "obligations": {"row_scope": "care_relationship", "masks": {"patients.phone": "redact"}},
        "policy_trace": [{"rule": "clinician-care", "effect": "allow"}],
        "tables_touched": ["labevents", "patients"],
        "columns_touched": ["labevents.subject_id", "labevents.valuenum"],
        "row_count": 3,
        "patients_touched": [10000032, 10000084, 10000117],
        "message": "3 rows",
        "duration_ms": 18.4,
    }


def _rate(run: Callable[[], int], repeat: int) -> float:
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        events = run()
        rates.append(events / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--singles", type=int, default=1000, help="single appends per run")
    parser.add_argument("--batches", type=int, default=10, help="batches per run")
    options = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.db import connection

    from audit.chain import verify_chain
    from audit.services import AuditEntry, audit_record, audit_record_many

    if connection.vendor == "sqlite":  # a file, as in production, not Django's in-memory test database
        connection.settings_dict["TEST"]["NAME"] = os.path.join(tempfile.mkdtemp(), "bench.sqlite3")
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        kwargs = _entry_kwargs()
        entry = AuditEntry(**kwargs)

        def singles() -> int:
            for _ in range(options.singles):
                audit_record(**kwargs)
            return int(options.singles)

        def threads(count: int) -> Callable[[], int]:
            def run() -> int:
                def writer() -> None:
                    try:
                        for _ in range(options.singles // count):
                            audit_record(**kwargs)
                    finally:
                        connection.close()

                workers = [threading.Thread(target=writer) for _ in range(count)]
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
                return int(options.singles // count * count)

            return run

        def batches(size: int) -> Callable[[], int]:
            def run() -> int:
                for _ in range(options.batches):
                    audit_record_many(entries=[entry] * size)
                return int(options.batches * size)

            return run

        print(f"audit append, {connection.vendor}, median of {options.repeat} runs:")
        print(f"  audit_record (one event per transaction): {_rate(singles, options.repeat):8.0f} events/s")
        rate = _rate(threads(8), options.repeat)
        print(f"  audit_record from 8 threads at once:       {rate:8.0f} events/s")
        for size in (100, 1000):
            rate = _rate(batches(size), options.repeat)
            print(f"  audit_record_many, batches of {size:>4}:       {rate:8.0f} events/s")
        report = verify_chain()
        print(f"  chain verified: {report.intact}, {report.events} events")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()

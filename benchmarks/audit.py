"""The audit store's figures on PostgreSQL: appends with the hash chain, scoring, event-to-alert time with
a Celery worker on Redis, and the store at millions of events. Runs in a process of its own (its settings
differ from the other sections'), against a throwaway PostgreSQL database:

    python -m benchmarks.audit [--repeats 5] [--store-events 1000000] [--json PATH]

The embedded default's appends, on a throwaway SQLite file instead:

    BENCH_AUDIT_APP_DB=sqlite python -m benchmarks.audit --parts append
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

ROOT: Final = Path(__file__).resolve().parents[1]
PG_SERVER: Final = os.environ.get("BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
REDIS: Final = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/14")
WAREHOUSE: Final = ROOT / "var" / "bench" / "audit-warehouse.sqlite3"
DATABASE: Final = f"his_bench_audit_{uuid.uuid4().hex[:8]}"
_ON_SQLITE: Final = os.environ.get("BENCH_AUDIT_APP_DB", "postgresql") == "sqlite"

# The settings of this process: set before Django starts, and passed on to the worker it starts.
ENVIRONMENT: Final = {
    "DJANGO_SETTINGS_MODULE": "hisplatform.settings",
    "DEBUG": "1",
    "DATABASE_URL": f"sqlite:///{WAREHOUSE.parent / DATABASE}.sqlite3"
    if _ON_SQLITE
    else f"{PG_SERVER}/{DATABASE}",
    "WAREHOUSE_URL": f"sqlite:///{WAREHOUSE}",
    "CELERY_BROKER_URL": REDIS,
    "CELERY_RESULT_BACKEND": REDIS,
    "CACHE_URL": REDIS,
    "CELERY_TASK_ALWAYS_EAGER": "0",
    "AUDIT_SCORE_ON_COMMIT": "0",
    "AUDIT_GROUP_COMMIT": "1",
    "LOG_LEVEL": "WARNING",
}
os.environ.update(ENVIRONMENT)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

from audit.accesses import Access  # noqa: E402
from audit.appender import stop_appender  # noqa: E402
from audit.checkpoints import checkpoint_create  # noqa: E402
from audit.evaluate import evaluate, replay  # noqa: E402
from audit.features import FeatureContext  # noqa: E402
from audit.models import Alert, AuditEvent  # noqa: E402
from audit.pipeline import sweep  # noqa: E402
from audit.relations import NONE, load_relations  # noqa: E402
from audit.reports import disclosures_for_patient, weekly_report  # noqa: E402
from audit.services import AuditEntry, audit_record, audit_record_many  # noqa: E402
from audit.simulate import simulate  # noqa: E402
from hisplatform.models import Role, StaffProfile  # noqa: E402
from hisplatform.warehouse.loader import load_demo  # noqa: E402
from hisplatform.warehouse.targets import warehouse_target  # noqa: E402

PATIENTS: Final = 1000
REFERENCE: Final = dt.date(2026, 11, 25)


def _median_rate(run: Callable[[], int], repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        count = run()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def _entry(access: Access) -> AuditEntry:
    """An audit event as the pipeline writes one for this access (question, SQL, obligations and all)."""
    return AuditEntry(
        user=None,
        kind=access.kind if access.kind in ("question", "export", "login", "logout") else "question",
        status=access.status if access.status in ("answered", "denied", "abstained", "ok") else "answered",
        username=access.username,
        role=access.role,
        attributes={
            "department": access.department,
            "staff_id": access.staff_id,
            "projects": list(access.projects),
        },
        client_addr=access.client_addr,
        user_agent=access.user_agent,
        purpose_of_use=access.purpose or "TREAT",
        question=access.question,
        sql_generated="SELECT labevents.valuenum FROM labevents WHERE labevents.subject_id = 10001",
        sql_executed="WITH __scope AS (SELECT subject_id FROM care_team WHERE staff_id = 1) SELECT ...",
        decision="allow",
        obligations={"lane": "identified", "masks": {}},
        tables_touched=access.tables,
        columns_touched=access.columns,
        row_count=access.rows,
        patients_touched=access.patients,
        message="Answered.",
        duration_ms=42.0,
    )


def _seed_warehouse() -> None:
    if not WAREHOUSE.exists():
        WAREHOUSE.parent.mkdir(parents=True, exist_ok=True)
        load_demo(
            warehouse_target(f"sqlite:///{WAREHOUSE}"), patients=PATIENTS, seed=42, reference_date=REFERENCE
        )


def bench_append(repeats: int) -> dict[str, float]:
    """Events per second with the hash chain: one at a time, from concurrent requests, in batches."""
    access = Access(
        seq=0, at=dt.datetime.now(dt.UTC), username="bench.user", role="clinician", patients=(10001,)
    )
    entry = _entry(access)
    fields = {f: getattr(entry, f) for f in entry.__dataclass_fields__}

    def singles() -> int:
        for _ in range(500):
            audit_record(**fields)
        return 500

    def threads(count: int, each: int) -> Callable[[], int]:
        def run() -> int:
            def writer() -> None:
                try:
                    for _ in range(each):
                        audit_record(**fields)
                finally:
                    connection.close()

            workers = [threading.Thread(target=writer) for _ in range(count)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            return count * each

        return run

    def batches() -> int:
        for _ in range(5):
            audit_record_many(entries=[entry] * 1000)
        return 5000

    return {
        "single": _median_rate(singles, repeats),
        "threads_8": _median_rate(threads(8, 250), repeats),
        "threads_32": _median_rate(threads(32, 100), repeats),
        "batch_1000": _median_rate(batches, repeats),
    }


def bench_scoring(repeats: int) -> dict[str, Any]:
    """The engine over simulated traffic (features, weekly baselines, rules), and the stored pipeline."""
    target = warehouse_target(f"sqlite:///{WAREHOUSE}")
    relations = load_relations(target)
    meta, accesses = simulate(
        relations=relations, target=target, days=60, train_days=30, seed=7, instances=10
    )
    samples = []
    report = None
    for _ in range(repeats):
        report = evaluate(
            accesses,
            meta=meta,
            relations=relations,
            zone=ZoneInfo("UTC"),
            train_days=30,
            budget=5,
            window_days=30,
        )
        samples.append(report.seconds_replay)
    assert report is not None
    replay = statistics.median(samples)
    parallel = _parallel_replay(accesses, meta, relations, processes=2)
    # The stored path: the same traffic recorded as audit events, then scored by the sweep.
    stored = [a for a, _ in accesses][:50_000]
    for start in range(0, len(stored), 5000):
        audit_record_many(entries=[_entry(a) for a in stored[start : start + 5000]])
    started = time.perf_counter()
    swept = sweep()
    sweep_seconds = time.perf_counter() - started
    started = time.perf_counter()
    checkpoint = checkpoint_create()
    checkpoint_seconds = time.perf_counter() - started
    covered = (checkpoint.seq_to - checkpoint.seq_from + 1) if checkpoint is not None else 0
    return {
        "accesses": len(accesses),
        "engine_events_per_s": len(accesses) / replay,
        "engine_events_per_s_2_processes": len(accesses) / parallel,
        "train_seconds": report.seconds_train,
        "judge_user_days_per_s": report.eval_user_days / max(report.seconds_score, 1e-9),
        "sweep_events": swept.events,
        "sweep_events_per_s": swept.events / sweep_seconds,
        "checkpoint_events_per_s": covered / checkpoint_seconds if covered else 0.0,
    }


_SHARED: dict[str, Any] = {}


def _replay_share(share: int) -> int:
    accesses, meta, relations, processes = (
        _SHARED[k] for k in ("accesses", "meta", "relations", "processes")
    )
    mine = [(a, label) for a, label in accesses if zlib.crc32(a.username.encode()) % processes == share]
    cohorts = {code: list(p.get("cohort", ())) for code, p in (meta.get("projects") or {}).items()}
    replay(mine, FeatureContext(relations, cohorts, ZoneInfo("UTC")))
    return len(mine)


def _parallel_replay(accesses: list[Any], meta: dict[str, Any], relations: Any, *, processes: int) -> float:
    """Seconds to compute every user-day's features with users split between processes, as Celery
    workers split them (each reads the others' days from the store for the group signal)."""
    _SHARED.update(accesses=accesses, meta=meta, relations=relations, processes=processes)
    context = multiprocessing.get_context("fork")
    started = time.perf_counter()
    with context.Pool(processes) as pool:
        done = sum(pool.map(_replay_share, range(processes)))
    assert done == len(accesses)
    return time.perf_counter() - started


def _worker() -> subprocess.Popen[bytes]:
    env = {**os.environ, **ENVIRONMENT, "AUDIT_SCORE_ON_COMMIT": "1"}
    env["DATABASE_URL"] = f"{PG_SERVER}/{connection.settings_dict['NAME']}"  # the throwaway database
    command = [sys.executable, "-m", "celery", "-A", "hisplatform", "worker", "-P", "threads", "-c", "2",
               "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def bench_latency(samples: int) -> dict[str, float]:
    """Seconds from an event's append to its alert, scored by a Celery worker on Redis."""
    from hisplatform.tasks import ping

    relations = load_relations(warehouse_target(f"sqlite:///{WAREHOUSE}"))
    vips = [s for s, f in relations.patients.items() if f.vip]
    clinicians = [(i, s) for i, s in relations.staff.items() if s.role == "clinician"]
    worker = _worker()
    try:
        ping.apply_async(args=("ready",)).get(timeout=120)  # the worker is up and reads Redis
        settings.AUDIT_SCORE_ON_COMMIT = True
        latencies: list[float] = []
        now = time.time()
        for index in range(samples + 1):
            staff_id, member = clinicians[index % len(clinicians)]
            vip = next(v for v in vips if relations.relation(staff_id, member.department, v, now) == NONE)
            username = f"latency{index}"
            started = time.perf_counter()
            audit_record(
                user=None,
                kind="question",
                status="answered",
                username=username,
                role="clinician",
                attributes={"department": member.department, "staff_id": staff_id, "projects": []},
                question=f"what is the address of patient {vip}",
                patients_touched=[vip],
                row_count=1,
            )
            while not Alert.objects.filter(username=username).exists():
                if time.perf_counter() - started > 60:
                    raise RuntimeError("No alert within 60 s: is the worker running?")
                time.sleep(0.01)
            if index:  # the first loads the warehouse's relationships into the worker
                latencies.append(time.perf_counter() - started)
        latencies.sort()
        return {
            "median_s": statistics.median(latencies),
            "p95_s": latencies[int(0.95 * (len(latencies) - 1))],
        }
    finally:
        settings.AUDIT_SCORE_ON_COMMIT = False
        worker.terminate()
        worker.wait(timeout=30)


def bench_store(events: int, repeats: int) -> dict[str, Any]:
    """Fill the store to `events`, then time what must stay fast there."""
    rng = random.Random(3)  # noqa: S311 - traffic, not secrets
    patients = list(load_relations(warehouse_target(f"sqlite:///{WAREHOUSE}")).patients)
    now = dt.datetime.now(dt.UTC)
    have = AuditEvent.objects.count()
    started = time.perf_counter()
    while have < events:
        size = min(10_000, events - have)
        batch = [
            _entry(Access(seq=0, at=now, username=f"user{rng.randrange(400)}", role="clinician",
                          patients=tuple(sorted(rng.sample(patients, rng.randint(1, 3)))), rows=3,
                          question="latest potassium", tables=("labevents",),
                          columns=("labevents.valuenum",)))
            for _ in range(size)
        ]  # fmt: skip
        audit_record_many(entries=batch)
        have += size
    fill = time.perf_counter() - started
    officer, _ = User.objects.get_or_create(username="bench.officer")
    StaffProfile.objects.update_or_create(user=officer, defaults={"role": Role.SECURITY_OFFICER})
    append = bench_append(repeats)

    def timed(run: Callable[[], Any]) -> float:
        samples = []
        for _ in range(repeats):
            begun = time.perf_counter()
            run()
            samples.append((time.perf_counter() - begun) * 1000)
        return statistics.median(samples)

    patient = patients[0]
    disclosures = timed(lambda: disclosures_for_patient(fetched_by=officer, subject_id=patient))
    monday = now.date() - dt.timedelta(days=now.weekday())
    report = timed(lambda: weekly_report(fetched_by=officer, week_start=monday))  # the week of every event
    return {
        "events": AuditEvent.objects.count(),
        "fill_events_per_s": events / fill if fill else 0.0,
        "append": append,
        "disclosures_ms": disclosures,
        "weekly_report_ms": report,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--store-events", type=int, default=1_000_000)
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--parts", default="append,scoring,latency,store")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    _seed_warehouse()
    if _ON_SQLITE:  # a file, as in production, not Django's in-memory test database; removed afterwards
        connection.settings_dict["TEST"]["NAME"] = str(WAREHOUSE.parent / f"test_{DATABASE}.sqlite3")
    old = setup_databases(verbosity=0, interactive=False)
    try:
        result: dict[str, Any] = {}
        for part, run in (
            ("append", lambda: bench_append(args.repeats)),
            ("scoring", lambda: bench_scoring(max(1, args.repeats // 2))),
            ("latency", lambda: bench_latency(args.latency_samples)),
            ("store", lambda: bench_store(args.store_events, args.repeats)),
        ):
            if part in parts:
                started = time.perf_counter()
                result[part] = run()
                print(f"  ({part}: {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    finally:
        stop_appender()
        teardown_databases(old, verbosity=0)
    print_audit(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def print_audit(result: dict[str, Any]) -> None:
    print(f"\n== audit store on {'SQLite' if _ON_SQLITE else 'PostgreSQL'} (medians) ==")
    if "append" in result:
        _print_append(result["append"])
    if "scoring" in result:
        _print_scoring(result["scoring"])
    if "latency" in result:
        latency = result["latency"]
        print(
            f"  event to alert with a Celery worker on Redis: median {latency['median_s']:.2f} s, "
            f"p95 {latency['p95_s']:.2f} s (goal 5 s)"
        )
    if "store" in result:
        _print_store(result["store"])


def _print_append(append: dict[str, float]) -> None:
    print(
        f"  append with the hash chain: {append['single']:,.0f} events/s one at a time, "
        f"{append['threads_8']:,.0f}/s from 8 concurrent requests, {append['threads_32']:,.0f}/s from 32 "
        f"(group commit), {append['batch_1000']:,.0f}/s in batches of 1,000 (goal 2,000)"
    )


def _print_scoring(scoring: dict[str, Any]) -> None:
    print(
        f"  scoring engine over {scoring['accesses']:,} simulated accesses: "
        f"{scoring['engine_events_per_s']:,.0f} events/s of features in one process, "
        f"{scoring['engine_events_per_s_2_processes']:,.0f}/s in two (goal 20,000), baselines "
        f"trained in {scoring['train_seconds']:.1f} s, "
        f"{scoring['judge_user_days_per_s']:,.0f} user-days/s scored"
    )
    print(
        f"  stored pipeline (audit_score sweep, database included): {scoring['sweep_events_per_s']:,.0f} "
        f"events/s over {scoring['sweep_events']:,} events; signed checkpoint "
        f"{scoring['checkpoint_events_per_s']:,.0f} events/s"
    )


def _print_store(store: dict[str, Any]) -> None:
    print(
        f"  at {store['events']:,} events: append {store['append']['single']:,.0f}/s one at a time, "
        f"{store['append']['threads_8']:,.0f}/s from 8 requests, "
        f"{store['append']['batch_1000']:,.0f}/s in batches; "
        f"accounting of disclosures for a patient {store['disclosures_ms']:.1f} ms; weekly report "
        f"{store['weekly_report_ms']:,.0f} ms (filled at {store['fill_events_per_s']:,.0f} events/s)"
    )


if __name__ == "__main__":
    sys.exit(main())

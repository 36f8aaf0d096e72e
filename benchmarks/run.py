"""`make bench`: seed time, database size and raw query times on SQLite and PostgreSQL, as medians."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hisplatform.settings")
os.environ.setdefault("DEBUG", "1")
django.setup()

import psycopg  # noqa: E402

from benchmarks.access import (  # noqa: E402
    bench_decide_rewrite,
    bench_pipeline_overhead,
    hospital_sql,
    throwaway_app_database,
)
from benchmarks.disclosure import bench_masking, bench_results, print_disclosure  # noqa: E402
from benchmarks.nlq import SHARED, bench_understanding  # noqa: E402
from benchmarks.scrub import bench_scrub  # noqa: E402
from benchmarks.warehouse_queries import QUERIES  # noqa: E402
from hisplatform.warehouse.loader import load_demo  # noqa: E402
from hisplatform.warehouse.targets import WarehouseTarget, warehouse_target, writer_connection  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")


def _median_ms(run: Any, repeats: int) -> float:
    run()  # warm the caches once; the budget is about a warm process
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _busiest_patient(target: WarehouseTarget) -> int:
    with writer_connection(target) as conn:
        row = conn.execute(
            "SELECT subject_id FROM labevents GROUP BY subject_id ORDER BY COUNT(*) DESC, subject_id LIMIT 1"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _size_bytes(target: WarehouseTarget) -> int:
    if target.sqlite_path is not None:
        return target.sqlite_path.stat().st_size
    with writer_connection(target) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


def _query_times(target: WarehouseTarget, ref: dt.date, repeats: int) -> dict[str, float]:
    subject = _busiest_patient(target)
    times: dict[str, float] = {}
    if target.sqlite_path is not None:
        conn = sqlite3.connect(f"file:{target.sqlite_path}?mode=ro", uri=True)
        params: dict[str, Any] = {"ref": ref.isoformat(), "subject": subject}
        for query in QUERIES:
            times[query.name] = _median_ms(lambda q=query: conn.execute(q.sqlite, params).fetchall(), repeats)
        conn.close()
    else:
        with psycopg.connect(target.conninfo) as pg:
            pg_params: dict[str, Any] = {"ref": ref.isoformat(), "subject": subject}
            for query in QUERIES:
                times[query.name] = _median_ms(
                    lambda q=query: pg.execute(q.postgres, pg_params).fetchall(), repeats
                )
    return times


def _gold_sql() -> list[str]:
    path = SHARED / "valid" / "annotated.json"
    if not path.exists():
        return []
    return [item["query"] for item in json.loads(path.read_text()) if item.get("query") not in (None, "null")]


def bench_access(target: WarehouseTarget, ref: dt.date, repeats: int) -> dict[str, Any]:
    noon = dt.datetime.combine(ref, dt.time(12, 0), tzinfo=dt.UTC)
    result: dict[str, Any] = {}
    with throwaway_app_database():
        gold = _gold_sql()
        if gold and target.dialect == "sqlite":  # EHRSQL's gold SQL is written for SQLite
            result["decide_rewrite"] = bench_decide_rewrite(target, gold, noon)
        ours = hospital_sql(target, noon)
        result["decide_rewrite_compiled"] = bench_decide_rewrite(target, ours, noon)
        result["pipeline"] = bench_pipeline_overhead(target, noon, repeats)
    return result


def bench_warehouse(
    dialect: str, patients: int, seed: int, ref: dt.date, repeats: int, sections: set[str]
) -> dict[str, Any]:
    if dialect == "sqlite":
        path = ROOT / "var" / "bench" / f"warehouse-{patients}.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        target = warehouse_target(f"sqlite:///{path}")
    else:
        name = f"his_bench_{patients}"
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        target = warehouse_target(f"{PG_SERVER}/{name}")
    report = load_demo(target, patients=patients, seed=seed, reference_date=ref)
    result = {
        "dialect": dialect,
        "patients": patients,
        "lab_rows": report.row_counts.get("labevents", 0),
        "total_rows": sum(report.row_counts.values()),
        "seed_seconds": round(report.seconds, 1),
        "size_mb": round(_size_bytes(target) / 1e6, 1),
        "query_ms": {k: round(v, 2) for k, v in _query_times(target, ref, repeats).items()}
        if "warehouse" in sections
        else {},
    }
    if "access" in sections:
        result["access"] = bench_access(target, ref, repeats)
    if "disclosure" in sections:
        noon = dt.datetime.combine(ref, dt.time(12, 0), tzinfo=dt.UTC)
        with throwaway_app_database():
            result["disclosure"] = {"masking": bench_masking(target, noon, repeats)}
    if dialect == "postgres":
        # 1.5 GB at the default size: give the space back (the SQLite file is kept for later runs).
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return result


def _print_access(access: dict[str, Any], repeats: int) -> None:
    for key, what in (
        ("decide_rewrite", "EHRSQL valid gold queries"),
        ("decide_rewrite_compiled", "queries our compiler wrote for the hospital question set"),
    ):
        decide = access.get(key)
        if decide:
            print(
                f"  decide + rewrite, {decide['rules']:,} policy rules, {decide['queries']} {what}: "
                f"p50 {decide['warm']['p50_ms']} ms, p99 {decide['warm']['p99_ms']} ms "
                f"(decision cache cleared before each: p50 {decide['uncached']['p50_ms']} ms, "
                f"p99 {decide['uncached']['p99_ms']} ms); of which re-parsing the rewritten SQL "
                f"(the guard's last check): p50 {decide['reparse_p50_ms']} ms"
            )
    pipeline = access["pipeline"]
    print(
        f"  the pipeline against the SQL it runs, medians of {repeats} "
        "(raw: the generated SQL without access control):"
    )
    for row in pipeline["questions"]:
        parts = [f"raw {row['raw_ms']:7.1f} ms"]
        for username, who in (("head.nguyen", "department head"), ("dr.carter", "clinician")):
            r = row[username]
            parts.append(
                f"{who}: scoped SQL {r['executed_ms']:7.1f} ms ({r['scope_effect']:+.0%} vs raw), "
                f"pipeline {r['pipeline_ms']:7.1f} ms ({r['overhead']:+.0%})"
            )
        print("    " + " | ".join(parts) + f"  {row['question']}")
    overhead = pipeline["median_overhead"]
    if overhead:
        print(
            "    median pipeline overhead over the SQL it runs: "
            f"department head {overhead['head.nguyen']:+.0%}, clinician {overhead['dr.carter']:+.0%}"
        )


def _bench_audit(repeats: int) -> dict[str, Any]:
    """The audit store's section runs in a process of its own: its settings (PostgreSQL, Redis, a worker)
    are not this process's. It prints its own figures."""
    out = ROOT / "var" / "bench" / "audit.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    events = os.environ.get("BENCH_AUDIT_EVENTS", "1000000")
    command = [sys.executable, "-m", "benchmarks.audit", "--repeats", str(repeats), "--store-events", events]
    subprocess.run([*command, "--json", str(out)], cwd=ROOT, check=True)  # noqa: S603
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _bench_web() -> dict[str, Any]:
    """POST /api/v1/ask on gunicorn under load runs in a process of its own: it starts its own stack
    (PostgreSQL databases, gunicorn, a Celery worker, locust) with production's settings, which are not
    this process's. It prints its own figures. BENCH_WEB_SECONDS (20), BENCH_WEB_RUNS (3), BENCH_WEB_USERS (8)
    and BENCH_WEB_PATIENTS (1,000) size it."""
    out = ROOT / "var" / "bench" / "web.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "benchmarks.web", "--json", str(out)], cwd=ROOT, check=True)  # noqa: S603
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=int(os.environ.get("BENCH_PATIENTS", "20000")))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reference-date", type=dt.date.fromisoformat, default=dt.date(2026, 11, 25))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dialects", default="sqlite,postgres")
    parser.add_argument(
        "--sections",
        default="nlq,warehouse,access,disclosure,scrub,audit,web",
        help="comma-separated: nlq, warehouse, access, disclosure, scrub, audit, web",
    )
    args = parser.parse_args(argv)
    sections = set(args.sections.split(","))

    understanding = bench_understanding() if "nlq" in sections else None
    results = (
        [
            bench_warehouse(d, args.patients, args.seed, args.reference_date, args.repeats, sections)
            for d in args.dialects.split(",")
        ]
        if {"warehouse", "access", "disclosure"} & sections
        else []
    )
    # Pure functions over results and notes: no warehouse needed.
    disclosure = bench_results(args.repeats) if "disclosure" in sections else None
    scrubbing = bench_scrub(args.repeats) if "scrub" in sections else None
    audit = _bench_audit(args.repeats) if "audit" in sections else None
    web = _bench_web() if "web" in sections else None
    for result in results:
        print(
            f"\n== warehouse on {result['dialect']}: {result['patients']:,} patients, "
            f"{result['lab_rows']:,} lab rows, {result['total_rows']:,} rows in all =="
        )
        print(f"  seed (generate + bulk load + indexes): {result['seed_seconds']:.1f} s")
        print(f"  database size: {result['size_mb']:.1f} MB")
        for name, ms in result["query_ms"].items():
            print(f"  raw query, median of {args.repeats}: {ms:9.2f} ms  {name}")
        if "access" in result:
            _print_access(result["access"], args.repeats)
        if "disclosure" in result:
            print_disclosure(result["disclosure"], result["dialect"])
    if disclosure is not None:
        anonymity, suppression = disclosure["k_anonymity"], disclosure["suppression"]
        print("\n== disclosure control on results ==")
        print(
            f"  k-anonymity (k=5, l=2) over {anonymity['rows']:,} research rows, "
            f"{anonymity['quasi_identifiers']} quasi-identifiers: median {anonymity['median_ms']} ms "
            f"({anonymity['cells_per_s']:,} cells/s)"
        )
        print(
            f"  small-cell + complementary suppression, {suppression['cells']:,} cells: "
            f"median {suppression['median_ms']} ms ({suppression['cells_per_s']:,} cells/s)"
        )
    out = ROOT / "var" / "bench" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "nlq": understanding,
                "warehouse": results,
                "disclosure": disclosure,
                "scrubbing": scrubbing,
                "audit": audit,
                "web": web,
            },
            indent=2,
        )
    )
    print(f"\nResults written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

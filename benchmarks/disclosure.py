"""Disclosure control's costs: structured masking in the research lane (pseudonyms, date shifts,
withheld keys, done inside the query), k-anonymity and small-cell suppression on results, and note
scrubbing. Runs against a throwaway application database (benchmarks.access)."""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from collections.abc import Callable
from typing import Any, Final

from django.contrib.auth.models import User

from accessctl.decision import decide
from accessctl.models import Purpose
from accessctl.pseudonyms import project_key
from accessctl.readpolicy import catalog_of, column_classes, read_policy
from accessctl.rewrite import inspect, rewrite
from accessctl.sdc import QI, Aggregate, k_anonymise, suppress_small_cells
from accessctl.services import policy_load_defaults
from accessctl.subjects import subject_for
from hisplatform.models import ProjectMembership, ResearchProject, Role, StaffProfile
from hisplatform.warehouse.executor import QueryResult, execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget

# Lab results as a researcher reads them: every column masked or passed through a view, three of
# them through the keyed HMAC (two pseudonyms and the date shift).
MASKED_SQL: Final = (
    "SELECT subject_id, hadm_id, row_id, itemid, charttime, valuenum, valueuom, flag FROM labevents"
)
ROWS: Final = 50_000
PROJECT: Final = "RP-BENCH-001"


def _researcher(now: dt.datetime) -> User:
    policy_load_defaults()
    user, _ = User.objects.get_or_create(username="bench.researcher")
    StaffProfile.objects.update_or_create(user=user, defaults={"role": Role.RESEARCHER, "department": ""})
    project, _ = ResearchProject.objects.get_or_create(
        code=PROJECT,
        defaults={
            "title": "Benchmark cohort",
            "purpose": "Measuring disclosure control.",
            "ethics_reference": "BENCH",
            "approved_on": now.date() - dt.timedelta(days=1),
            "expires_on": now.date() + dt.timedelta(days=30),
        },
    )
    ProjectMembership.objects.get_or_create(project=project, user=user)
    return user


def _median_s(run: Callable[[], object], repeats: int) -> float:
    run()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def bench_masking(target: WarehouseTarget, now: dt.datetime, repeats: int) -> dict[str, Any]:
    """Cells per second of the research view of lab results against the same rows unmasked."""
    user = _researcher(now)
    subject = subject_for(user=user, clock=now, data_now=now)
    catalog = catalog_of(target)
    inspected = inspect(
        MASKED_SQL, dialect=target.dialect, catalog=catalog.columns, known_tables=catalog.columns
    )
    classes = set(column_classes(inspected.columns).values())
    decision = decide(
        subject=subject, purpose=Purpose.HRESCH, data_classes=classes, patient_rows=True, coded=False,
        project=PROJECT,
    )  # fmt: skip
    assert decision.allowed, decision.reason
    policy = read_policy(
        decision=decision, subject=subject, dialect=target.dialect, catalog=catalog, allowed_classes=classes,
        only=inspected.tables,
    )  # fmt: skip
    masked_sql = rewrite(inspected, policy).sql.replace(f"LIMIT {policy.row_cap + 1}", f"LIMIT {ROWS}")
    key = project_key(PROJECT).key

    def run(sql: str, pseudonym_key: bytes | None = None) -> QueryResult:
        return execute_readonly(
            sql, target=target, row_cap=ROWS, max_result_bytes=10**9, timeout_ms=600_000,
            pseudonym_key=pseudonym_key,
        )  # fmt: skip

    masked = _median_s(lambda: run(masked_sql, key), repeats)
    raw = _median_s(lambda: run(f"{MASKED_SQL} LIMIT {ROWS}"), repeats)
    shown = run(masked_sql, key)
    cells = len(shown.rows) * len(shown.columns)
    return {
        "rows": len(shown.rows),
        "cells": cells,
        "masked_s": round(masked, 3),
        "raw_s": round(raw, 3),
        "cells_per_s": round(cells / masked),
        "masking_only_cells_per_s": round(cells / max(masked - raw, 1e-9)),
    }


def bench_results(repeats: int) -> dict[str, Any]:
    """k-anonymity over 10,000 research rows and suppression over a 720-cell cross tab, cells per second."""
    rng = random.Random(11)  # noqa: S311 - reproducible benchmark data
    start = dt.datetime(2024, 1, 1)
    rows = [
        [
            rng.choice("mf"),
            rng.randint(18, 95) if rng.random() > 0.02 else "90+",
            f"{rng.randint(10, 99):02d}{rng.randint(0, 999):03d}"[:5],
            (start + dt.timedelta(minutes=rng.randint(0, 2 * 365 * 24 * 60))).strftime("%Y-%m-%d %H:%M:%S"),
            rng.choice(("icd10|i10", "icd10|e119", "icd10|j189", "icd10|n179", "icd10|i5023")),
            round(rng.gauss(7, 2), 1),
        ]
        for _ in range(10_000)
    ]
    columns = ["gender", "age", "postcode", "admittime", "icd_code", "value"]
    quasi = {0: QI.SEX, 1: QI.AGE, 2: QI.POSTCODE, 3: QI.DATE}
    subjects = [rng.randint(1, 4_000) for _ in rows]
    anonymise = _median_s(
        lambda: k_anonymise(columns, rows, quasi=quasi, sensitive=[4], k=5, l=2, subjects=subjects), repeats
    )
    table = Aggregate(
        columns=["unit", "month", "patients", "percent"],
        rows=[[u, m, rng.randint(0, 60), 0.0] for u in range(60) for m in range(12)],
        dimensions=[0, 1],
        measures=[2, 3],
        patients=[rng.randint(0, 60) for _ in range(720)],
        margins=True,
    )
    suppress = _median_s(lambda: suppress_small_cells(table, threshold=11), repeats)
    return {
        "k_anonymity": {
            "rows": len(rows),
            "quasi_identifiers": len(quasi),
            "median_ms": round(anonymise * 1000, 1),
            "cells_per_s": round(len(rows) * len(columns) / anonymise),
        },
        "suppression": {
            "cells": 720 * 4,
            "median_ms": round(suppress * 1000, 2),
            "cells_per_s": round(720 * 4 / suppress),
        },
    }


def print_disclosure(result: dict[str, Any], dialect: str) -> None:
    masking = result["masking"]
    print(
        f"  structured masking (research view of {masking['rows']:,} lab results: pseudonyms, date shift, "
        f"withheld row ids): {masking['cells_per_s']:,} cells/s end to end "
        f"({masking['masked_s']} s masked vs {masking['raw_s']} s raw on {dialect}; masking alone "
        f"{masking['masking_only_cells_per_s']:,} cells/s)"
    )

"""Access control's costs: decide + rewrite with 1,000 policy rules, and the whole pipeline against the
raw SQL of the same questions on a large warehouse. Runs against a throwaway application database."""

from __future__ import annotations

import datetime as dt
import functools
import json
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import sqlglot
from django.contrib.auth.models import User
from django.test.utils import setup_databases, teardown_databases

from accessctl.decision import decide
from accessctl.models import DataClass, PolicyRule, Purpose
from accessctl.policy import _decide_class
from accessctl.readpolicy import catalog_of, column_classes, read_policy
from accessctl.rewrite import inspect, rewrite
from accessctl.services import policy_load_defaults, policy_version_bump
from accessctl.subjects import subject_for
from audit.models import AuditEvent
from hisplatform.demo import DEMO_STAFF
from hisplatform.models import Role, StaffProfile
from hisplatform.queries import answer_question
from hisplatform.warehouse.executor import execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget
from nlquery.engine import compile_sql, plan_question
from nlquery.plan import Unanswerable

ROOT: Final = Path(__file__).resolve().parents[1]
RULES: Final = 1_000
# Population questions over the lab and prescription tables: where a warehouse spends its time.
QUESTIONS: Final = (
    "what are the top 5 most frequent lab tests since 1 year ago?",
    "count the number of patients who received a glucose lab test since 1 year ago.",
    "how many lab tests were done in the last 30 days?",
    "what are the top 3 most common lab tests of patients aged 60 or above?",
    "what are the 3 most frequently prescribed drugs?",
)


@contextmanager
def throwaway_app_database() -> Iterator[None]:
    """A fresh, migrated application database for the run (the demo's own is left alone)."""
    old = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        teardown_databases(old, verbosity=0)


def _people(target: WarehouseTarget) -> dict[str, User]:
    rows = execute_readonly(
        "SELECT username, staff_id FROM staff WHERE username IS NOT NULL", target=target
    ).rows
    staff_ids = {str(name): int(str(staff)) for name, staff in rows}
    people: dict[str, User] = {}
    for person in DEMO_STAFF:
        user, _ = User.objects.get_or_create(username=person.username)
        StaffProfile.objects.update_or_create(
            user=user,
            defaults={
                "role": person.role,
                "department": person.department,
                "staff_id": staff_ids.get(person.username),
            },
        )
        people[person.username] = user
    return people


def _thousand_rules() -> int:
    """The shipped policy, padded to 1,000 rules spread over every role and data class, as a hospital's
    policy grows: time-limited allows for other purposes and conditional denies that do not match."""
    policy_load_defaults()
    rng = random.Random(7)  # noqa: S311 - a reproducible benchmark policy, not a secret
    extra = []
    shipped = PolicyRule.objects.count()
    for number in range(RULES - shipped):
        extra.append(
            PolicyRule(
                role=rng.choice(Role.values),
                data_class=rng.choice(DataClass.values),
                purposes=rng.choice(["HOPERAT", "HRESCH", "TREAT|ETREAT", "*"]),
                condition=rng.choice(["hours:02-04", "hours:22-23,!weekday", "breakglass,hours:01-02"]),
                effect=rng.choice(["allow", "deny"]),
                obligations="",
                reason=f"Padding rule {number} for the benchmark.",
            )
        )
    for rule in extra:
        if rule.effect == "allow":
            rule.obligations = "scope:care,lane:identified"
    PolicyRule.objects.bulk_create(extra)
    policy_version_bump()
    return PolicyRule.objects.count()


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 3),
    }


def hospital_sql(target: WarehouseTarget, now: dt.datetime) -> list[str]:
    """The SQL our compiler writes for the hospital question set on this warehouse (the pipeline's
    own input), for the questions it answers."""
    items = json.loads((ROOT / "nlquery" / "questions" / "hospital.json").read_text())["items"]
    stamp = now.strftime("%Y-%m-%d %H:%M:%S")
    compiled: list[str] = []
    for item in items:
        plan = plan_question(item["question"], target)
        if not isinstance(plan, Unanswerable):
            compiled.append(compile_sql(plan, target.dialect, stamp))
    return compiled


def bench_decide_rewrite(target: WarehouseTarget, gold_sql: list[str], now: dt.datetime) -> dict[str, Any]:
    """Decide + rewrite per query for a clinician, with the decision cache warm and cleared."""
    people = _people(target)
    rules = _thousand_rules()
    subject = subject_for(user=people["dr.carter"], clock=now, data_now=now)
    catalog = catalog_of(target)

    def one(sql: str) -> str:
        inspected = inspect(
            sql, dialect=target.dialect, catalog=catalog.columns, known_tables=catalog.columns
        )
        classes = set(column_classes(inspected.columns).values())
        decision = decide(
            subject=subject,
            purpose=Purpose.TREAT,
            data_classes=classes,
            patient_rows=bool(set(inspected.tables) & catalog.patient_tables()),
            coded=bool({"diagnoses_icd", "procedures_icd"} & set(inspected.tables)),
        )
        if decision.allowed:
            policy = read_policy(
                decision=decision,
                subject=subject,
                dialect=target.dialect,
                catalog=catalog,
                allowed_classes=classes,
                only=inspected.tables,
            )
            return rewrite(inspected, policy, consume=True).sql
        return ""

    def timed(before: Callable[[], None]) -> list[float]:
        samples = []
        for sql in gold_sql:
            before()
            started = time.perf_counter()
            one(sql)
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    for sql in gold_sql[:20]:
        one(sql)  # warm: the semantic layer, the policy, the catalog
    warm = timed(lambda: None)
    cold = timed(_decide_class.cache_clear)
    # The guard's last check parses its own output again: how much of the time that is.
    reparse = []
    for text in filter(None, map(one, gold_sql)):
        started = time.perf_counter()
        sqlglot.parse(text, read=target.dialect)
        reparse.append((time.perf_counter() - started) * 1000)
    return {
        "rules": rules,
        "queries": len(gold_sql),
        "warm": _percentiles(warm),
        "uncached": _percentiles(cold),
        "reparse_p50_ms": round(statistics.median(reparse), 3) if reparse else None,
    }


def bench_pipeline_overhead(target: WarehouseTarget, now: dt.datetime, repeats: int) -> dict[str, Any]:
    """For a department head and a clinician, medians over `repeats` runs of: the generated SQL run
    raw (no access control), the SQL the pipeline executes (scoped and masked) run directly, and
    the whole pipeline (understand, compile, decide, rewrite, execute, record). The pipeline's
    overhead is the whole against the SQL it executes; the scope's effect, the executed SQL against
    the raw one."""
    people = _people(target)
    if not PolicyRule.objects.exists():
        policy_load_defaults()
    stamp = now.strftime("%Y-%m-%d %H:%M:%S")

    def median_ms(run: Callable[[], object]) -> float:
        run()
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            run()
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    results: list[dict[str, Any]] = []
    for question in QUESTIONS:
        plan = plan_question(question, target)
        if isinstance(plan, Unanswerable):
            continue
        sql = compile_sql(plan, target.dialect, stamp)
        raw = median_ms(functools.partial(execute_readonly, sql, target=target))
        row: dict[str, Any] = {"question": question, "raw_ms": round(raw, 2)}
        for username in ("head.nguyen", "dr.carter"):
            user = people[username]
            answer = answer_question(user=user, question=question, now=now, target=target)
            assert answer.status == "answered", (username, question, answer.message)
            executed_sql = AuditEvent.objects.get(seq=answer.audit_event or 0).sql_executed
            executed = median_ms(functools.partial(execute_readonly, executed_sql, target=target))
            piped = median_ms(
                functools.partial(answer_question, user=user, question=question, now=now, target=target)
            )
            row[username] = {
                "executed_ms": round(executed, 2),
                "pipeline_ms": round(piped, 2),
                "overhead": round(piped / executed - 1, 3),
                "scope_effect": round(executed / raw - 1, 3),
            }
        results.append(row)
    users = ("head.nguyen", "dr.carter")
    return {
        "questions": results,
        "median_overhead": {u: round(statistics.median(r[u]["overhead"] for r in results), 3) for u in users}
        if results
        else {},
    }

"""Understand + compile latency per EHRSQL valid question in a warm process, and the process's memory."""

from __future__ import annotations

import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

from hisplatform.warehouse.targets import warehouse_target
from nlquery.ehrsql import NOW
from nlquery.engine import predict_sql

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "ehrsql"


def bench_understanding() -> dict[str, Any] | None:
    if not (SHARED / "valid" / "data.json").exists():
        print(f"\n== nlquery: skipped, EHRSQL valid split not found at {SHARED}")
        return None
    questions = [
        item["question"] for item in json.loads((SHARED / "valid" / "data.json").read_text())["data"]
    ]
    target = warehouse_target(f"sqlite:///{SHARED / 'mimic_iv.sqlite'}")
    started = time.perf_counter()
    # The first call loads the dictionaries, the matcher, spaCy and the model.
    predict_sql("What is the gender of patient 10014078?", target, now=NOW, labels=False)
    build_s = time.perf_counter() - started
    samples = []
    for question in questions:
        t0 = time.perf_counter()
        predict_sql(question, target, now=NOW, labels=False)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    result = {
        "questions": len(samples),
        "build_s": round(build_s, 2),
        "p50_ms": round(statistics.median(samples), 3),
        "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 3),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(f"\n== nlquery understand + compile: {len(samples)} EHRSQL valid questions, warm process ==")
    print(f"  warm-up (value dictionaries, matcher, kind model): {result['build_s']} s")
    print(f"  per question: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    print(f"  process peak memory: {result['max_rss_mb']} MB")
    return result

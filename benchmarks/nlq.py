"""Latency of the question-understanding steps built so far, per EHRSQL valid question, warm process."""

from __future__ import annotations

import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

from hisplatform.warehouse.targets import warehouse_target
from nlquery.kinds import guess_kind
from nlquery.matcher import value_matcher
from nlquery.patterns import find_patterns
from nlquery.timeexpr import find_time_constraints

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
    matcher = value_matcher(target)
    guess_kind("warm up")
    build_s = time.perf_counter() - started
    samples = []
    for question in questions:
        t0 = time.perf_counter()
        matcher.find(question)
        find_time_constraints(question)
        find_patterns(question)
        guess_kind(question)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    result = {
        "questions": len(samples),
        "build_s": round(build_s, 2),
        "p50_ms": round(statistics.median(samples), 3),
        "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 3),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(
        f"\n== nlquery understanding so far (values, time, patterns, kind): {len(samples)} valid questions =="
    )
    print(f"  warm-up (dictionaries, matcher, model): {result['build_s']} s")
    print(f"  per question: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    print(f"  process peak memory: {result['max_rss_mb']} MB")
    return result

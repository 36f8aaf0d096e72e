"""Measure the note scrubber on generated notes: recall per kind of identifier, precision and speed."""

from __future__ import annotations

import datetime as dt
import time
from argparse import ArgumentParser, ArgumentTypeError
from typing import Any, Final

from django.core.management.base import BaseCommand

from accessctl.scrub import Names, scrubber
from accessctl.scrub_eval import Report, evaluate, sample_notes

# The goals the scrubber is held to (tests/accessctl/test_scrub.py checks the same on 300 notes).
RECALL_GOAL: Final = 0.98
RECALL_GOAL_KINDS: Final = ("NAME", "MRN", "NATIONAL_ID", "PHONE")
PRECISION_GOAL: Final = 0.85


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ArgumentTypeError(f"expected a whole number of notes, not {value!r}") from None
    if not 1 <= number <= 100_000:
        raise ArgumentTypeError(f"notes must be between 1 and 100,000, not {number}")
    return number


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ArgumentTypeError(f"expected a date as YYYY-MM-DD, not {value!r}") from None


class Command(BaseCommand):
    help = (
        "Scrub generated clinical notes whose identifiers are known and print recall per kind, precision, "
        "notes per second and mean note length. Needs no warehouse: the deny-list comes from the generator."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--notes", type=_count, default=300, help="notes to scrub (default 300)")
        parser.add_argument("--seed", type=int, default=7, help="demo hospital seed (default 7)")
        parser.add_argument(
            "--reference-date",
            type=_date,
            default=dt.date(2026, 11, 25),
            help="YYYY-MM-DD (default 2026-11-25)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        notes, names_of = sample_notes(
            options["notes"], seed=options["seed"], reference_date=options["reference_date"]
        )
        started = time.perf_counter()
        scrubber().scrub("Warm-up: Mr. Smith, 617-555-0100.", names=Names())
        load_seconds = time.perf_counter() - started
        report = evaluate(notes, names_of)
        self._print(report, options["seed"], load_seconds)

    def _print(self, report: Report, seed: int, load_seconds: float) -> None:
        out = self.stdout.write
        out(f"{report.notes} generated notes (seed {seed}), mean length {report.mean_length:,.0f} characters")
        out("recall (an identifier is caught when every letter and digit of it is covered):")
        for kind, value in report.recall.items():
            out(f"  {kind:12} {report.caught[kind]:6}/{report.gold[kind]:<6} {value:7.2%}")
        out(
            f"precision (found spans overlapping an identifier): {report.correct}/{report.detected} "
            f"{report.precision:.2%}"
        )
        kb_per_second = report.characters / 1000 / report.seconds if report.seconds else 0.0
        out(
            f"speed: {report.notes_per_second:.1f} notes/s, {kb_per_second:.1f} KB/s "
            f"(one process, warm; start-up: model load and first note {load_seconds:.1f} s)"
        )
        for kind, examples in sorted(report.leaks.items()):
            out(f"  missed {kind}: " + "; ".join(repr(example) for example in examples))
        recall = report.recall
        short = [kind for kind in RECALL_GOAL_KINDS if recall.get(kind, 1.0) < RECALL_GOAL]
        if report.precision < PRECISION_GOAL:
            short.append("precision")
        out("goals: " + (f"NOT met ({', '.join(short)})" if short else "met"))

"""Score the engine on an EHRSQL split: RS(0), RS(5), RS(10), RS(N) and accuracy per kind of question."""

from __future__ import annotations

import json
import time
from argparse import ArgumentParser
from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from hisplatform.warehouse.targets import warehouse_target
from nlquery.ehrsql import ABSTAIN, NOW, evaluate, load_split
from nlquery.engine import predict_sql
from nlquery.kinds import kind_of_sql


class Command(BaseCommand):
    help = "Predict every question of an EHRSQL split and print the reliability scores and per-kind accuracy."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--split", type=Path, required=True, help="folder with data.json, label.json, answer.json"
        )
        parser.add_argument(
            "--db", type=Path, default=None, help="the benchmark database (default: ../mimic_iv.sqlite)"
        )
        parser.add_argument("--show-wrong", type=int, default=0, help="print this many wrong answers")
        parser.add_argument(
            "--templates",
            action="store_true",
            help="also report per question template (from the split's annotated.json, when present)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        split: Path = options["split"]
        db: Path = options["db"] or split.parent / "mimic_iv.sqlite"
        for needed in (split / "data.json", split / "label.json", split / "answer.json", db):
            if not needed.is_file():
                raise CommandError(f"{needed} is missing.")
        data, labels, answers = load_split(split)
        target = warehouse_target(f"sqlite:///{db}")
        started = time.perf_counter()
        predictions = {
            item["id"]: predict_sql(item["question"], target, now=NOW, labels=False) or ABSTAIN
            for item in data
        }
        seconds = time.perf_counter() - started
        report = evaluate(answers, predictions, db)
        self.stdout.write(f"{len(data)} questions, predicted in {seconds:.1f} s")
        for name, value in (("RS(0)", report.rs(0)), ("RS(5)", report.rs(5)), ("RS(10)", report.rs(10)),
                            ("RS(N)", report.rs_n)):  # fmt: skip
            self.stdout.write(f"  {name:6} {value:7.2f}")
        kinds = {key: kind_of_sql(sql) for key, sql in labels.items()}
        totals = Counter(kinds.values())
        correct = Counter(kinds[k] for k, s in report.scores.items() if s == 1)
        wrong = Counter(kinds[k] for k, s in report.scores.items() if s == -1)
        self.stdout.write("  kind          questions  correct  abstained  wrong")
        for kind, total in totals.most_common():
            right, bad = correct[kind] / total, wrong[kind] / total
            self.stdout.write(f"  {kind:13} {total:9}  {right:7.1%}  {1 - right - bad:9.1%}  {bad:5.1%}")
        self._per_template(split, report.scores, options["templates"])
        questions = {item["id"]: item["question"] for item in data}
        shown = 0
        for key, result in report.scores.items():
            if result == -1 and shown < options["show_wrong"]:
                shown += 1
                self.stdout.write(
                    f"\nWRONG {key}: {questions[key]}\n  predicted: {predictions[key]}\n  gold: {labels[key]}"
                )

    def _per_template(self, split: Path, scores: dict[str, int], wanted: bool) -> None:
        annotated = split / "annotated.json"
        if not wanted or not annotated.is_file():
            return
        template = {item["id"]: item["template"] for item in json.loads(annotated.read_text())}
        totals = Counter(template[k] for k in scores)
        correct = Counter(template[k] for k, s in scores.items() if s == 1)
        wrong = Counter(template[k] for k, s in scores.items() if s == -1)
        self.stdout.write("\n  questions  correct  wrong  template")
        for name, total in sorted(totals.items(), key=lambda kv: (correct[kv[0]] / kv[1], kv[0])):
            self.stdout.write(f"  {total:9}  {correct[name]:7}  {wrong[name]:5}  {name}")

"""Label an EHRSQL split's questions with the plan families that answer them, and report coverage."""

from __future__ import annotations

import json
import os
import time
from argparse import ArgumentParser
from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from nlquery.ehrsql import load_split
from nlquery.kinds import kind_of_sql
from nlquery.labeling import label_questions, sqlite_target
from nlquery.matcher import value_matcher
from nlquery.semantic import semantic_layer


class Command(BaseCommand):
    help = "Label each question of an EHRSQL split with the families whose plan gives its gold answer."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--split", type=Path, required=True)
        parser.add_argument("--db", type=Path, default=None)
        parser.add_argument("--out", type=Path, default=None, help="write id -> families as JSON")
        parser.add_argument("--limit", type=int, default=0)
        parser.add_argument(
            "--families", default="", help="comma-separated family name prefixes to try (default: all)"
        )
        parser.add_argument(
            "--grep", default="", help="only questions whose gold SQL contains this text (case-insensitive)"
        )
        parser.add_argument("--show-misses", type=int, default=0, help="print this many uncovered questions")

    def handle(self, *args: Any, **options: Any) -> None:
        split: Path = options["split"]
        db: Path = options["db"] or split.parent / "mimic_iv.sqlite"
        if not db.is_file():
            raise CommandError(f"{db} is missing.")
        data, gold_sql, answers = load_split(split)
        if options["grep"]:
            needle = options["grep"].lower()
            data = [d for d in data if needle in gold_sql[d["id"]].lower()]
        if options["limit"]:
            data = data[: options["limit"]]
        target = sqlite_target(db)
        started = time.perf_counter()
        items = [(d["id"], d["question"], answers[d["id"]], gold_sql[d["id"]]) for d in data]
        prefixes = tuple(p for p in options["families"].split(",") if p)
        labels = label_questions(
            items,
            value_matcher(target),
            semantic_layer(),
            target,
            prefixes=prefixes,
            workers=os.cpu_count() or 1,
        )
        self.stdout.write(f"{len(items)} questions labelled in {time.perf_counter() - started:.1f} s")
        kinds = {key: kind_of_sql(gold_sql[key]) for key, _, _, _ in items}
        covered = Counter(kinds[k] for k, v in labels.items() if v)
        total = Counter(kinds.values())
        for kind, n in total.most_common():
            self.stdout.write(f"  {kind:13} {n:5}  covered {covered[kind] / n:6.1%}")
        ambiguous = sum(1 for v in labels.values() if len(v) > 1)
        self.stdout.write(f"  ambiguous (several families): {ambiguous}")
        families = Counter(f for v in labels.values() for f in v)
        for name, n in families.most_common():
            self.stdout.write(f"    {name:28} {n}")
        misses = [(key, question) for key, question, _, _ in items if not labels[key]]
        for key, question in misses[: options["show_misses"]]:
            self.stdout.write(f"\n  MISS {key}: {question}\n    gold: {gold_sql[key]}")
        if options["out"]:
            options["out"].write_text(json.dumps(labels, indent=0))

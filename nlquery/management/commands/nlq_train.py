"""Rebuild the shipped plan-family model from the EHRSQL train split."""

from __future__ import annotations

import json
import os
import tempfile
import time
from argparse import ArgumentParser
from collections import Counter
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from hisplatform.warehouse.loader import load_demo
from hisplatform.warehouse.targets import WarehouseTarget, warehouse_target
from nlquery import classifier
from nlquery.calibration import best_threshold, held_out_outcomes
from nlquery.ehrsql import load_split
from nlquery.families import FAMILIES, Found
from nlquery.labeling import label_questions, sqlite_target
from nlquery.matcher import ValueMatcher, value_matcher
from nlquery.reading import read_question
from nlquery.semantic import semantic_layer

QUESTIONS = Path(__file__).resolve().parents[2] / "questions"
EXAMPLES = (QUESTIONS / "examples.json", QUESTIONS / "training.json")


def _examples(path: Path, ehrsql: ValueMatcher) -> list[tuple[Found, str]]:
    """Featurised (question, family) pairs of an examples file, read against the warehouse it is about."""
    if not path.is_file():
        raise CommandError(f"{path} is missing.")
    doc = json.loads(path.read_text(encoding="utf-8"))
    matcher = ehrsql if doc.get("warehouse", "ehrsql") == "ehrsql" else value_matcher(_demo_hospital())
    out = []
    for item in doc["items"]:
        family = item["family"]
        if family not in FAMILIES and family != classifier.UNANSWERABLE:
            raise CommandError(f"{path}: unknown family {family!r} for {item['question']!r}")
        out.append((read_question(item["question"], matcher), family))
    return out


def _demo_hospital() -> WarehouseTarget:
    """The demo hospital the tests use (200 patients, seed 7), built once in a temporary file."""
    global _DEMO
    if _DEMO is None:
        folder = Path(tempfile.mkdtemp(prefix="nlq-train-"))
        _DEMO = warehouse_target(f"sqlite:///{folder / 'demo.sqlite3'}")
        load_demo(_DEMO, patients=200, seed=7, reference_date=date(2026, 11, 25))
    return _DEMO


_DEMO: WarehouseTarget | None = None


class Command(BaseCommand):
    help = (
        "Label the EHRSQL train split with the plan families that answer each question (by running "
        "them on the split's database), then train the family classifier and write the model."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--split", type=Path, required=True, help="folder with data.json and answer.json")
        parser.add_argument("--out", type=Path, default=classifier.MODEL_PATH, help="model file to write")
        parser.add_argument(
            "--db", type=Path, default=None, help="the split's database (default ../mimic_iv.sqlite)"
        )
        parser.add_argument(
            "--folds",
            type=int,
            default=5,
            help="held-out folds to calibrate the confidence threshold on (0: keep the default)",
        )
        parser.add_argument(
            "--examples",
            type=Path,
            nargs="*",
            default=list(EXAMPLES),
            help="our own labelled examples (JSON files like nlquery/questions/examples.json)",
        )
        parser.add_argument(
            "--labels",
            type=Path,
            default=None,
            help="reuse (or, if absent, save) the labels in this JSON file",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        split: Path = options["split"]
        if split.name in ("valid", "test"):
            raise CommandError(f"Train on the train split only; {split.name} is for measuring.")
        for name in ("data.json", "answer.json"):
            if not (split / name).is_file():
                raise CommandError(f"{split / name} is missing: --split must be an EHRSQL split folder.")
        db: Path = options["db"] or split.parent / "mimic_iv.sqlite"
        if not db.is_file():
            raise CommandError(f"{db} is missing: --db must name the split's database.")
        started = time.perf_counter()
        data, gold_sql, answers = load_split(split)
        target = sqlite_target(db)
        matcher = value_matcher(target)
        cached: Path | None = options["labels"]
        if cached is not None and cached.is_file():
            labels: dict[str, list[str]] = json.loads(cached.read_text())
        else:
            items = [(d["id"], d["question"], answers[d["id"]], gold_sql[d["id"]]) for d in data]
            labels = label_questions(items, matcher, semantic_layer(), target, workers=os.cpu_count() or 1)
            if cached is not None:
                cached.write_text(json.dumps(labels))
        founds = [read_question(d["question"], matcher) for d in data]
        targets = [labels.get(d["id"]) or [classifier.UNSUPPORTED] for d in data]
        own = 0
        for path in options["examples"]:
            examples = _examples(path, matcher)
            founds += [found for found, _ in examples]
            targets += [[family] for _, family in examples]
            own += len(examples)
        texts = [classifier.featurise(found) for found in founds]
        known = classifier.layer_text(semantic_layer())
        model = classifier.fit(texts, targets, known)
        if options["folds"] > 1:
            outcomes = held_out_outcomes(texts, founds, targets, known, folds=options["folds"])
            threshold, rs10 = best_threshold(outcomes)
            model = replace(model, threshold=threshold)
            self.stdout.write(
                f"Threshold {threshold:.3f} calibrated on {options['folds']} held-out folds "
                f"(RS(10) there {rs10:.2f}, unanswerable questions weighted to 20%)."
            )
        classifier.save(model, options["out"])
        counts = Counter(len(labels.get(d["id"], [])) > 0 for d in data)
        self.stdout.write(
            f"Trained on {counts[True]} of {len(data)} questions ({counts[False]} answered by no family) "
            f"and {own} own examples, "
            f"{len(model.shape.classes_)} shapes, {len(model.event.classes_)} events; "
            f"wrote {options['out']} in {time.perf_counter() - started:.1f} s."
        )

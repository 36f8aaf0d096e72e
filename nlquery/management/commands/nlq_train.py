"""Rebuild the shipped question-kind model from the EHRSQL train split."""

from __future__ import annotations

import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from hisplatform.warehouse.targets import warehouse_target
from nlquery.kinds import MODEL_PATH, train
from nlquery.matcher import value_matcher


class Command(BaseCommand):
    help = "Train the question-kind classifier on an EHRSQL split folder (train only) and write the model."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--split", type=Path, required=True, help="folder with data.json and label.json")
        parser.add_argument("--out", type=Path, default=MODEL_PATH, help=f"model file (default {MODEL_PATH})")
        parser.add_argument(
            "--db",
            type=Path,
            default=None,
            help="the split's database, for value names (default ../mimic_iv.sqlite)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        split: Path = options["split"]
        if split.name == "valid" or split.name == "test":
            raise CommandError(f"Train on the train split only; {split.name} is for measuring.")
        for name in ("data.json", "label.json"):
            if not (split / name).is_file():
                raise CommandError(f"{split / name} is missing: --split must be an EHRSQL split folder.")
        db: Path = options["db"] or split.parent / "mimic_iv.sqlite"
        if not db.is_file():
            raise CommandError(f"{db} is missing: --db must name the split's database.")
        started = time.perf_counter()
        train(split, value_matcher(warehouse_target(f"sqlite:///{db}")), options["out"])
        self.stdout.write(f"Wrote {options['out']} in {time.perf_counter() - started:.1f} s.")

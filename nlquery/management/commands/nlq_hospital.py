"""Ask the hospital's own question set of the warehouse and report accuracy and abstention per kind."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from hisplatform.warehouse.targets import warehouse_target
from nlquery.hospital_eval import QUESTIONS, evaluate_hospital, load_questions


class Command(BaseCommand):
    help = (
        "Score the engine on nlquery/questions/hospital.json against the configured warehouse (the demo "
        "hospital the questions were written for: `seed_demo` with 200 patients, seed 7)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--questions", type=Path, default=QUESTIONS)

    def handle(self, *args: Any, **options: Any) -> None:
        now, items = load_questions(options["questions"])
        report = evaluate_hospital(items, warehouse_target(), now)
        for line in report.lines():
            self.stdout.write(line)

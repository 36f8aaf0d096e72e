"""Predict SQL for EHRSQL-format questions: {id: SQL or "null"}."""

from __future__ import annotations

import datetime as dt
import json
from argparse import ArgumentParser, ArgumentTypeError
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from hisplatform.warehouse.executor import WarehouseError
from hisplatform.warehouse.targets import warehouse_target
from nlquery.ehrsql import ABSTAIN, NOW
from nlquery.engine import predict_sql


def _timestamp(value: str) -> str:
    try:
        dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ArgumentTypeError(f"expected YYYY-MM-DD HH:MM:SS, not {value!r}") from None
    return value


class Command(BaseCommand):
    help = "Write {id: SQL or 'null'} for the questions of an EHRSQL data.json, on WAREHOUSE_URL's dialect."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--questions", type=Path, required=True, help="EHRSQL data.json")
        parser.add_argument("--out", type=Path, required=True, help="where to write the predictions")
        parser.add_argument(
            "--now",
            type=_timestamp,
            default=NOW,
            help=f"the time relative phrases count from (default EHRSQL's {NOW})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            items = json.loads(options["questions"].read_text())["data"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CommandError(f"{options['questions']} is not an EHRSQL data.json ({error}).") from None
        target = warehouse_target()
        try:
            predictions = {
                item["id"]: predict_sql(item["question"], target, now=options["now"], labels=False) or ABSTAIN
                for item in items
            }
        except WarehouseError as error:
            raise CommandError(error.message) from None
        options["out"].write_text(json.dumps(predictions, indent=1))
        answered = sum(1 for sql in predictions.values() if sql != ABSTAIN)
        self.stdout.write(f"Wrote {len(predictions)} predictions ({answered} answered) to {options['out']}.")

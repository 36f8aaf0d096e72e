"""`manage.py audit_eval DATASET`: detection quality of the anomaly engine on labelled traffic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.accesses import read_dataset
from audit.evaluate import Report, evaluate
from audit.relations import load_relations
from hisplatform.warehouse.executor import WarehouseError


class Command(BaseCommand):
    help = (
        "Replay a labelled dataset (from simulate_access) through the production features, baselines and "
        "rules: train on the first days, score the rest, and report recall per scenario at the alert budget, "
        "PR-AUC, false alerts per 1,000 user-days, time to detect and whether reasons name the behaviour."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", type=Path, help="a .jsonl.gz file written by simulate_access")
        parser.add_argument("--train-days", type=int, default=None, help="default: the dataset's own")
        parser.add_argument(
            "--budget", type=int, default=None, help="alerts per 1,000 user-days (default AUDIT_ALERT_BUDGET)"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--json", action="store_true", help="print the report as one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["dataset"]
        if not path.is_file():
            raise CommandError(
                f"No dataset at {path}; write one with `manage.py simulate_access --out {path}`."
            )
        try:
            meta, accesses = read_dataset(path)
        except (OSError, ValueError) as error:
            raise CommandError(f"Cannot read {path}: {error}") from None
        train_days = options["train_days"] or int(meta.get("train_days") or 0)
        if train_days < 1:
            raise CommandError("Say how many days to train on (--train-days); the dataset does not.")
        budget = options["budget"] or int(settings.AUDIT_ALERT_BUDGET)
        try:
            relations = load_relations()
        except WarehouseError as error:
            raise CommandError(
                f"The warehouse cannot be read ({error.message}); seed it with seed_demo."
            ) from None
        try:
            report = evaluate(
                accesses,
                meta=meta,
                relations=relations,
                zone=ZoneInfo(settings.TIME_ZONE),
                train_days=train_days,
                budget=budget,
                window_days=int(settings.AUDIT_TRAINING_DAYS),
                seed=options["seed"],
            )
        except (ValueError, KeyError) as error:
            raise CommandError(f"{path} could not be evaluated: {error}") from None
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
            return
        self.stdout.write(_text(report))


def _text(report: Report) -> str:
    data = report.as_dict()
    lines = [
        f"Accesses: {report.accesses:,}; trained on {report.train_days} days "
        f"({', '.join(f'{role}: {n:,} user-days' for role, n in sorted(report.baselines.items()))}).",
        f"Scored {report.eval_user_days:,} user-days over {report.eval_days} days at a budget of "
        f"{report.budget} alerts per 1,000 user-days.",
        f"Alerts: {report.alerts} ({report.false_alerts} false: {data['false_alerts_per_1000_user_days']} "
        f"per 1,000 user-days). PR-AUC over user-days: {data['pr_auc']}.",
        "",
        f"{'scenario':<26}{'found':>8}{'recall':>8}{'named':>8}{'median h to detect':>20}",
    ]
    for kind, row in data["scenarios"].items():
        hours = "-" if row["median_hours_to_detect"] is None else f"{row['median_hours_to_detect']:.1f}"
        lines.append(
            f"{kind:<26}{row['detected']:>4}/{row['instances']:<3}{row['recall']:>8.2f}"
            f"{row['explanation_names_behaviour']:>8}{hours:>20}"
        )
    lines.append("")
    lines.append(
        f"Time: replay {report.seconds_replay:.1f} s, training {report.seconds_train:.1f} s, "
        f"scoring {report.seconds_score:.1f} s."
    )
    return "\n".join(lines)

"""`manage.py simulate_access`: write the demo hospital's labelled synthetic access traffic for audit_eval."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.accesses import write_dataset
from audit.relations import load_relations
from audit.simulate import SimulationError, simulate
from hisplatform.warehouse.executor import WarehouseError
from hisplatform.warehouse.targets import WarehouseConfigError, warehouse_target


class Command(BaseCommand):
    help = (
        "Simulate the demo hospital's staff at work (shifts, sessions, role-typical questions about their "
        "patients, benign oddities) over the days ending at the warehouse's cut-off, inject misuse scenarios "
        "after the training days, and write the labelled accesses as JSON Lines (gzip) for audit_eval."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", type=Path, required=True, help="the dataset to write (.jsonl.gz)")
        parser.add_argument("--days", type=int, default=60, help="days of traffic (default 60)")
        parser.add_argument(
            "--train-days", type=int, default=30, help="leading days with no injected scenarios (default 30)"
        )
        parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
        parser.add_argument(
            "--instances", type=int, default=10, help="instances of each scenario kind (default 10)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        out: Path = options["out"]
        days: int = options["days"]
        train_days: int = options["train_days"]
        if days < 1:
            raise CommandError("--days must be at least 1.")
        if train_days < 0:
            raise CommandError("--train-days cannot be negative.")
        if days <= train_days:
            raise CommandError(
                f"--days ({days}) must be more than --train-days ({train_days}): scenarios are injected in "
                "the days after the training period."
            )
        if options["instances"] < 0:
            raise CommandError("--instances cannot be negative.")
        if out.is_dir():
            raise CommandError(
                f"--out {out} is a directory; give a file name such as {out / 'access.jsonl.gz'}."
            )
        if not out.parent.is_dir():
            raise CommandError(f"The folder {out.parent} does not exist; create it or choose another --out.")
        started = time.monotonic()
        try:
            target = warehouse_target()
        except WarehouseConfigError as error:
            raise CommandError(str(error)) from None
        try:
            relations = load_relations(target)
        except WarehouseError as error:
            hint = (
                ""
                if "seed_demo" in error.message
                else " Seed the demo hospital first: `manage.py seed_demo`."
            )
            raise CommandError(
                f"Cannot read the warehouse ({target.describe()}): {error.message}{hint}"
            ) from None
        try:
            meta, rows = simulate(
                relations=relations,
                target=target,
                days=days,
                train_days=train_days,
                seed=options["seed"],
                instances=options["instances"],
            )
        except SimulationError as error:
            raise CommandError(str(error)) from None
        try:
            written = write_dataset(out, meta, rows)
        except OSError as error:
            raise CommandError(f"Cannot write {out}: {error.strerror or error}.") from None
        counts = meta["counts"]
        kinds = Counter(str(s["kind"]) for s in meta["scenarios"])
        self.stdout.write(
            f"Wrote {out}: {written} accesses by {counts['users']} users over {counts['user_days']} "
            f"user-days, {meta['start']} to {meta['end']} (training until {meta['train_end']})."
        )
        self.stdout.write(
            f"Scenarios: {len(meta['scenarios'])} ({counts['labelled']} labelled accesses)"
            + "".join(f"\n  {kind}: {kinds[kind]}" for kind in sorted(kinds))
        )
        self.stdout.write(f"Took {time.monotonic() - started:.1f} s.")

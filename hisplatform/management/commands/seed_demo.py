"""Generate the demo hospital into the warehouse and create the demo accounts."""

from __future__ import annotations

import datetime as dt
import sqlite3
from argparse import ArgumentParser, ArgumentTypeError
from typing import Any

import psycopg
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from hisplatform.services import demo_accounts_seed
from hisplatform.warehouse.loader import load_demo
from hisplatform.warehouse.targets import (
    WarehouseConfigError,
    WarehouseTarget,
    warehouse_target,
    writer_connection,
)


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ArgumentTypeError(f"expected a date as YYYY-MM-DD, not {value!r}") from None


def _patients(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ArgumentTypeError(f"expected a whole number of patients, not {value!r}") from None
    # Below 50 the privacy cases (VIPs, staff-patients, minors...) cannot all be present; the upper
    # bound keeps a typo from filling the disk.
    if not 50 <= number <= 2_000_000:
        raise ArgumentTypeError(f"patients must be between 50 and 2,000,000, not {number}")
    return number


class Command(BaseCommand):
    help = (
        "Generate the demo hospital (deterministic for a seed) into WAREHOUSE_URL and create demo accounts."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--patients", type=_patients, default=1000, help="number of patients (default 1000)"
        )
        parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
        parser.add_argument(
            "--reference-date",
            type=_date,
            default=None,
            help="the hospital's 'today', YYYY-MM-DD (default today)",
        )
        parser.add_argument("--no-accounts", action="store_true", help="load the warehouse only")

    def handle(self, *args: Any, **options: Any) -> None:
        reference_date: dt.date = options["reference_date"] or timezone.localdate()
        try:
            target = warehouse_target()
            self.stdout.write(f"Seeding {options['patients']} patients into {target.describe()} ...")
            report = load_demo(
                target,
                patients=options["patients"],
                seed=options["seed"],
                reference_date=reference_date,
                progress=lambda line: self.stdout.write(f"  {line}"),
            )
            staff_ids = _demo_staff_ids(target)
        except WarehouseConfigError as error:
            raise CommandError(str(error)) from None
        except (psycopg.Error, sqlite3.Error) as error:
            # Nothing was replaced: SQLite builds a new file, PostgreSQL loads in one transaction.
            raise CommandError(
                f"The warehouse could not be loaded ({type(error).__name__}: {error}); "
                "the previous warehouse, if any, is unchanged."
            ) from None
        except OSError as error:
            raise CommandError(
                f"The warehouse file could not be written ({error.strerror or error}); "
                "check the disk space and permissions. The previous warehouse, if any, is unchanged."
            ) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded {report.patients} patients, {sum(report.row_counts.values()):,} rows "
                f"({report.row_counts.get('labevents', 0):,} lab results) in {report.seconds:.1f} s."
            )
        )
        if options["no_accounts"]:
            return
        accounts = demo_accounts_seed(staff_ids=staff_ids, reference_date=reference_date)
        self.stdout.write(f"Created {len(accounts)} demo accounts; list them with `manage.py demo_accounts`.")


def _demo_staff_ids(target: WarehouseTarget) -> dict[str, int]:
    with writer_connection(target) as conn:
        rows = conn.execute("SELECT username, staff_id FROM staff WHERE username IS NOT NULL").fetchall()
    return {str(username): int(staff_id) for username, staff_id in rows}

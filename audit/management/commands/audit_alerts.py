"""`manage.py audit_alerts --user OFFICER`: the privacy office's queue, one alert in full, and triage."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.alerts import AlertError, alert_detail, alert_triage, review_queue
from audit.models import AlertState, EventStatus
from audit.services import audit_access_record


class Command(BaseCommand):
    help = (
        "For security officers: list open alerts by risk and break-glass sessions awaiting review (default); "
        "--show ID prints an alert's reasons, notes and events; --triage ID moves it on (--state, --assign, "
        "--note). Every read and every step is recorded in the audit trail."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="the security officer's username")
        parser.add_argument("--show", type=int, metavar="ID", help="print one alert in full")
        parser.add_argument("--triage", type=int, metavar="ID", help="change one alert")
        parser.add_argument("--state", choices=AlertState.values, help="with --triage: the new state")
        parser.add_argument("--assign", metavar="USERNAME", help='with --triage: the assignee ("" unassigns)')
        parser.add_argument("--note", default="", help="with --triage: what was found or done")

    def handle(self, *args: Any, **options: Any) -> None:
        officer = User.objects.filter(username=options["user"], is_active=True).first()
        if officer is None:
            audit_access_record(
                user=None,
                status=EventStatus.DENIED,
                username=str(options["user"])[:150],
                client_addr="cli",
                what="refused: alerts asked for by an unknown or inactive account",
            )
            raise CommandError(f"No active account {options['user'][:150]!r}.")
        try:
            if options["triage"] is not None:
                alert = alert_triage(
                    officer=officer,
                    alert_id=options["triage"],
                    state=options["state"],
                    note=options["note"],
                    assignee=options["assign"],
                )
                assignee = alert.assignee.get_username() if alert.assignee else "nobody"
                self.stdout.write(
                    f"Alert {alert.pk} is {alert.get_state_display().lower()}, assigned to {assignee}."
                )
            elif options["show"] is not None:
                self._show(officer, options["show"])
            else:
                self._queue(officer)
        except AlertError as error:
            raise CommandError(error.message) from None

    def _queue(self, officer: User) -> None:
        items = review_queue(fetched_by=officer)
        if not items:
            self.stdout.write("Nothing waiting: no open alerts, no break-glass session awaiting review.")
            return
        for item in items:
            risk = f"{item.risk:5.1f}" if item.risk is not None else "  -  "
            self.stdout.write(
                f"{item.kind:<10} {item.id:>6} {risk} {item.state:<13} {item.when:%Y-%m-%d %H:%M} "
                f"{item.username:<16} {item.summary}"
            )

    def _show(self, officer: User, alert_id: int) -> None:
        alert, notes, events = alert_detail(fetched_by=officer, alert_id=alert_id)
        assignee = alert.assignee.get_username() if alert.assignee else "nobody"
        self.stdout.write(
            f"Alert {alert.pk}: {alert.username} ({alert.role.replace('_', ' ')}) on {alert.day}, risk "
            f"{alert.risk:.1f}, {alert.get_state_display().lower()}, assigned to {assignee}."
        )
        self.stdout.write("Reasons:")
        for reason in alert.reasons:
            self.stdout.write(f"  - {reason.get('text', '')}")
        self.stdout.write(f"Events ({len(events)}):")
        for event in events:
            patients = ", ".join(str(p) for p in (event.patients_touched or [])[:5])
            self.stdout.write(
                f"  #{event.seq} {event.occurred_at:%H:%M:%S} {event.kind} {event.status} "
                f"[{patients}] {event.question[:120]}"
            )
        for note in notes:
            moved = f" ({note.state_from} -> {note.state_to})" if note.state_to else ""
            self.stdout.write(
                f"Note by {note.author_name} at {note.created_at:%Y-%m-%d %H:%M}{moved}: {note.text}"
            )

"""The scoring pipeline on real questions: queued on commit, swept when the broker is down, alerts, triage."""

from __future__ import annotations

import datetime as dt
import io
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from pytest_django.fixtures import Settings as SettingsWrapper

from accessctl.models import BreakGlassSession, MaskingRule, Notification, PolicyRule
from accessctl.services import breakglass_open, policy_load_defaults
from audit.alerts import AlertError, alert_detail, alert_triage, review_queue
from audit.detect import load_baseline
from audit.models import (
    Alert,
    AlertLabel,
    AlertNote,
    AuditEvent,
    BaselineModel,
    EventKind,
    EventScore,
    EventStatus,
    ScoringProgress,
    UserDay,
)
from audit.pipeline import active_baselines, baseline_train, score_events, unscored_count
from audit.relations import NONE, TEAM, forget_relations, load_relations
from audit.services import audit_record
from hisplatform.celery import app as celery_app
from hisplatform.queries import Answer, answer_sql
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import NOON, PASSWORD, People, _make_people

pytestmark = pytest.mark.django_db

CaptureCallbacks = Callable[..., Any]


@pytest.fixture
def scoring(settings: SettingsWrapper, sqlite_warehouse: WarehouseTarget) -> Iterator[WarehouseTarget]:
    settings.WAREHOUSE_URL = sqlite_warehouse.url
    settings.AUDIT_SCORE_ON_COMMIT = True
    forget_relations()
    yield sqlite_warehouse
    forget_relations()


@pytest.fixture
def people(db: None, sqlite_warehouse: WarehouseTarget) -> People:
    """The demo accounts on the small test hospital, under the shipped policy."""
    if not PolicyRule.objects.exists() or not MaskingRule.objects.exists():
        policy_load_defaults()
    return _make_people(sqlite_warehouse)


@pytest.fixture
def broker_down(settings: SettingsWrapper) -> Iterator[None]:
    """A Redis broker nobody listens on: publishing fails at once, as when Redis is down."""
    conf = celery_app.conf  # read from Django settings under the CELERY_ namespace, once
    saved = (conf.CELERY_TASK_ALWAYS_EAGER, conf.CELERY_BROKER_URL)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    conf.CELERY_TASK_ALWAYS_EAGER = False
    conf.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    _forget_connections()  # the producer pool was made for the in-memory broker
    try:
        yield
    finally:
        conf.CELERY_TASK_ALWAYS_EAGER, conf.CELERY_BROKER_URL = saved
        _forget_connections()


def _forget_connections() -> None:
    # Celery keeps both pools privately; clearing them is what it does itself after a fork.
    setattr(celery_app, "_pool", None)  # noqa: B010
    if "amqp" in celery_app.__dict__:
        setattr(celery_app.amqp, "_producer_pool", None)  # noqa: B010


def _ask(people: People, username: str, sql: str, target: WarehouseTarget) -> Answer:
    return answer_sql(user=people[username], sql=sql, now=NOON, target=target)


def _carter_patients(target: WarehouseTarget) -> list[int]:
    """Patients on dr.carter's care team at NOON."""
    relations = load_relations(target)
    staff_id = next(i for i, s in relations.staff.items() if s.username == "dr.carter")
    return sorted(
        s for s in relations.team if relations.relation(staff_id, "CARD", s, NOON.timestamp()) == TEAM
    )


def test_an_answered_question_is_scored_when_it_commits(
    people: People, scoring: WarehouseTarget, django_capture_on_commit_callbacks: CaptureCallbacks
) -> None:
    first, second = _carter_patients(scoring)[:2]
    with django_capture_on_commit_callbacks(execute=True):
        answer = _ask(
            people,
            "dr.carter",
            f"SELECT gender FROM patients WHERE subject_id IN ({first}, {second})",
            scoring,
        )
    assert answer.status == "answered"
    score = EventScore.objects.get(event_id=answer.audit_event)
    assert score.features["patients"] == 2.0
    assert score.features.get("unrelated", 0.0) == 0.0  # her own care team's patients
    day = UserDay.objects.get(username="dr.carter")
    assert (day.role, day.department, day.events, day.features["queries"]) == ("clinician", "CARD", 1, 1.0)
    assert unscored_count() == 0


def test_with_the_broker_down_events_are_kept_unscored_and_the_sweep_scores_them(
    people: People,
    scoring: WarehouseTarget,
    broker_down: None,
    django_capture_on_commit_callbacks: CaptureCallbacks,
    caplog: pytest.LogCaptureFixture,
) -> None:
    patients = _carter_patients(scoring)[:3]
    with django_capture_on_commit_callbacks(execute=True):
        answers = [
            _ask(people, "dr.carter", f"SELECT dob FROM patients WHERE subject_id = {p}", scoring)
            for p in patients
        ]
    assert [a.status for a in answers] == ["answered"] * 3  # the user never noticed the queue was down
    assert [r.getMessage() for r in caplog.records if r.name == "audit.pipeline"] == [
        "Audit scoring not queued for 1 event(s); the sweep will score them."
    ] * 3
    seqs = [a.audit_event or 0 for a in answers]
    assert AuditEvent.objects.filter(seq__in=seqs).count() == 3
    assert not EventScore.objects.exists()
    assert unscored_count() == 3
    out = io.StringIO()
    call_command("audit_score", stdout=out)
    assert out.getvalue().startswith("Scored 3 events on 1 user-days;")
    assert out.getvalue().rstrip().endswith("0 events left unscored.")
    assert sorted(EventScore.objects.values_list("event_id", flat=True)) == sorted(seqs)
    assert ScoringProgress.objects.get().scored_through == max(seqs)
    assert UserDay.objects.get(username="dr.carter").features["patients"] == 3.0
    again = io.StringIO()
    call_command("audit_score", stdout=again)
    assert again.getvalue().startswith("Scored 0 events")


def _unrelated_vip(target: WarehouseTarget, username: str) -> int:
    relations = load_relations(target)
    staff_id, member = next((i, s) for i, s in relations.staff.items() if s.username == username)
    vips = [s for s, facts in relations.patients.items() if facts.vip]
    at = NOON.timestamp()
    return next(s for s in vips if relations.relation(staff_id, member.department, s, at) == NONE)


def _vip_alert(people: People, target: WarehouseTarget, capture: CaptureCallbacks) -> tuple[Alert, int]:
    vip = _unrelated_vip(target, "dr.okafor")
    with capture(execute=True):
        breakglass_open(
            user=people["dr.okafor"],
            reason="unconscious",
            justification="Brought in unresponsive, no history available.",
            password=PASSWORD,
            scope="patient",
            subject_id=vip,
            now=NOON,
            target=target,
        )
        answer = _ask(
            people, "dr.okafor", f"SELECT gender, dob FROM patients WHERE subject_id = {vip}", target
        )
    assert answer.status == "answered"
    return Alert.objects.get(username="dr.okafor"), answer.audit_event or 0


def test_a_vip_record_opened_without_care_raises_an_alert_that_says_why_and_notifies(
    people: People, scoring: WarehouseTarget, django_capture_on_commit_callbacks: CaptureCallbacks
) -> None:
    alert, seq = _vip_alert(people, scoring, django_capture_on_commit_callbacks)
    assert alert.reasons[0]["code"] == "vip"
    assert alert.reasons[0]["text"].startswith("Opened a VIP patient's record (patient ")
    assert "with no care-team link" in alert.reasons[0]["text"]
    assert seq in alert.event_seqs
    assert alert.risk >= 95
    assert (alert.state, alert.label) == ("new", "")
    notice = Notification.objects.get(user=people["sec.ito"], subject__startswith="Access alert")
    assert notice.subject.startswith("Access alert: dr.okafor on ")
    assert [m.to for m in mail.outbox if m.subject == notice.subject] == [["sec.ito@demo-hospital.example"]]
    assert (
        str(alert.reasons[0]["patients"][0]) not in notice.body
    )  # no patient in a notice that leaves by mail


def test_scoring_the_same_events_again_changes_nothing(
    people: People, scoring: WarehouseTarget, django_capture_on_commit_callbacks: CaptureCallbacks
) -> None:
    alert, _ = _vip_alert(people, scoring, django_capture_on_commit_callbacks)
    before = UserDay.objects.get(username="dr.okafor").features
    seqs = list(AuditEvent.objects.values_list("seq", flat=True))
    score_events(seqs)
    score_events(seqs)
    assert UserDay.objects.get(username="dr.okafor").features == before
    assert EventScore.objects.count() == len(seqs)
    assert Alert.objects.get().pk == alert.pk


def test_triage_moves_the_alert_keeps_notes_and_labels_and_audits_every_step(
    people: People, scoring: WarehouseTarget, django_capture_on_commit_callbacks: CaptureCallbacks
) -> None:
    alert, _ = _vip_alert(people, scoring, django_capture_on_commit_callbacks)
    officer = people["sec.ito"]
    alert_triage(
        officer=officer, alert_id=alert.pk, state="investigating", assignee="sec.ito", note="Looking."
    )
    with pytest.raises(AlertError, match="Say what the investigation found"):
        alert_triage(officer=officer, alert_id=alert.pk, state="confirmed")
    with pytest.raises(AlertError, match="can move to: confirmed, false_positive"):
        alert_triage(officer=officer, alert_id=alert.pk, state="resolved", note="done")
    with pytest.raises(AlertError, match="Only the privacy office triages alerts"):
        alert_triage(officer=people["dr.carter"], alert_id=alert.pk, state="false_positive", note="x")
    done = alert_triage(officer=officer, alert_id=alert.pk, state="confirmed", note="No emergency on record.")
    assert (done.state, done.label, done.assignee) == ("confirmed", AlertLabel.INCIDENT, officer)
    notes = list(
        AlertNote.objects.filter(alert=alert).values_list("author_name", "state_from", "state_to", "text")
    )
    assert notes == [
        ("sec.ito", "new", "investigating", "Looking."),
        ("sec.ito", "investigating", "confirmed", "No emergency on record."),
    ]
    triage = AuditEvent.objects.filter(kind=EventKind.ALERT_TRIAGE).order_by("seq")
    assert [(e.username, e.status) for e in triage] == [
        ("sec.ito", EventStatus.OK),
        ("sec.ito", EventStatus.DENIED),
        ("sec.ito", EventStatus.DENIED),
        ("dr.carter", EventStatus.DENIED),
        ("sec.ito", EventStatus.OK),
    ]
    assert [e.details.get("state") for e in triage] == [
        "investigating",
        "confirmed",
        "resolved",
        "false_positive",
        "confirmed",
    ]


def test_nobody_triages_an_alert_about_themself(
    people: People, scoring: WarehouseTarget, django_capture_on_commit_callbacks: CaptureCallbacks
) -> None:
    alert, _ = _vip_alert(people, scoring, django_capture_on_commit_callbacks)
    officer = people["sec.ito"]
    Alert.objects.filter(pk=alert.pk).update(username="sec.ito")
    with pytest.raises(AlertError, match="about themself"):
        alert_triage(officer=officer, alert_id=alert.pk, state="false_positive", note="fine")
    # An account renamed since: the alert still names its id.
    Alert.objects.filter(pk=alert.pk).update(username="someone.else", user_id=officer.pk)
    with pytest.raises(AlertError, match="about themself"):
        alert_triage(officer=officer, alert_id=alert.pk, state="false_positive", note="fine")
    # Nor may they read it: it is not in their queue, and looks as if it did not exist.
    assert [item.id for item in review_queue(fetched_by=officer) if item.kind == "alert"] == []
    with pytest.raises(AlertError, match="There is no such alert"):
        alert_detail(fetched_by=officer, alert_id=alert.pk)


def test_retraining_leaves_out_the_days_of_confirmed_incidents(db: None, settings: SettingsWrapper) -> None:
    settings.AUDIT_TRAINING_DAYS = 30
    today = dt.date(2026, 11, 25)
    now = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    days = []
    for back in range(1, 31):
        for user in range(12):
            features = {"queries": 10.0 + user, "patients": 3.0 + back % 4, "unrelated": 0.0}
            days.append(UserDay(username=f"n{user}", role="nurse", day=today - dt.timedelta(days=back),
                                features=features, seen={}, updated_at=now))  # fmt: skip
    UserDay.objects.bulk_create(days)
    for name, back in (("n1", 3), ("n2", 5)):
        Alert.objects.create(
            username=name, role="nurse", day=today - dt.timedelta(days=back), created_at=now, updated_at=now,
            risk=99, summary="s", first_event_at=now, last_event_at=now, label=AlertLabel.INCIDENT,
        )  # fmt: skip
    Alert.objects.create(
        username="n3", role="nurse", day=today - dt.timedelta(days=4), created_at=now, updated_at=now,
        risk=99, summary="s", first_event_at=now, last_event_at=now, label=AlertLabel.BENIGN,
    )  # fmt: skip
    stored = {model.role: model for model in baseline_train(today=today)}
    assert (stored["nurse"].samples, stored["nurse"].excluded_days) == (358, 2)
    assert stored["nurse"].peer_medians["queries"] == 16.0  # 10..21 thirty times each, minus an 11 and a 12
    assert sorted(active_baselines()) == ["*", "nurse"]
    model = BaselineModel.objects.get(role="nurse", active=True)
    assert load_baseline(bytes(model.blob), model.signature).samples == 358
    baseline_train(today=today)
    assert BaselineModel.objects.filter(active=True).count() == 2
    assert BaselineModel.objects.count() == 4  # the old models are kept, inactive


def test_the_queue_shows_open_alerts_and_pending_break_glass_and_only_to_officers(
    people: People, scoring: WarehouseTarget, django_capture_on_commit_callbacks: CaptureCallbacks
) -> None:
    alert, _ = _vip_alert(people, scoring, django_capture_on_commit_callbacks)
    BreakGlassSession.objects.update(ended_at=NOON + dt.timedelta(minutes=5))
    out = io.StringIO()
    call_command("audit_alerts", "--user", "sec.ito", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:2] == ["alert", str(alert.pk)]
    assert lines[1].startswith("breakglass")
    assert "Break-glass for patient" in lines[1]
    shown = io.StringIO()
    call_command("audit_alerts", "--user", "sec.ito", "--show", str(alert.pk), stdout=shown)
    assert "Opened a VIP patient's record" in shown.getvalue()
    assert "[sql] SELECT gender, dob FROM patients WHERE subject_id = " in shown.getvalue()  # what was asked
    call_command("audit_alerts", "--user", "sec.ito", "--triage", str(alert.pk), "--state", "false_positive",
                 "--note", "Consult requested by the ward.", stdout=io.StringIO())  # fmt: skip
    assert Alert.objects.get(pk=alert.pk).label == AlertLabel.BENIGN
    with pytest.raises(CommandError, match="Only the privacy office"):
        call_command("audit_alerts", "--user", "dr.carter", stdout=io.StringIO())
    reads = AuditEvent.objects.filter(kind=EventKind.AUDIT_ACCESS).order_by("seq")
    assert [(e.username, e.status) for e in reads] == [
        ("sec.ito", "ok"),
        ("sec.ito", "ok"),
        ("dr.carter", "denied"),
    ]


@pytest.mark.django_db(transaction=True)
def test_two_scorers_of_one_user_day_never_leave_it_built_from_fewer_events(
    people: People, scoring: WarehouseTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scorer A reads the day, then is slow to write; scorer B, started after a second event, must wait for
    A and then read both events, rather than be overwritten by A's older snapshot."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():  # type: ignore[attr-defined]
        pytest.skip("needs a file database: two connections")
    from audit import pipeline

    first = _ask(people, "dr.carter", "SELECT gender FROM patients WHERE subject_id = 1", scoring)
    real = pipeline._store_days
    reading = threading.Event()

    def slow(*args: Any) -> None:
        reading.set()
        time.sleep(1.5)
        real(*args)

    monkeypatch.setattr(pipeline, "_store_days", slow)

    def scorer_a() -> None:
        try:
            pipeline.score_events([first.audit_event or 0])
        finally:
            connection.close()

    a = threading.Thread(target=scorer_a)
    a.start()
    assert reading.wait(30)
    monkeypatch.setattr(pipeline, "_store_days", real)
    second = _ask(people, "dr.carter", "SELECT gender FROM patients WHERE subject_id = 2", scoring)
    pipeline.score_events([second.audit_event or 0])
    a.join(60)
    assert UserDay.objects.get(username="dr.carter").events == 2


def test_a_concluded_alert_reopens_when_the_same_day_brings_more(
    people: People, scoring: WarehouseTarget, django_capture_on_commit_callbacks: CaptureCallbacks
) -> None:
    alert, _ = _vip_alert(people, scoring, django_capture_on_commit_callbacks)
    alert_triage(
        officer=people["sec.ito"], alert_id=alert.pk, state="false_positive", note="Emergency, fine."
    )
    relations = load_relations(scoring)
    staff_id = next(i for i, s in relations.staff.items() if s.username == "dr.okafor")
    others = [
        s
        for s, f in relations.patients.items()
        if f.vip
        and s not in alert.reasons[0]["patients"]
        and relations.relation(staff_id, "NEURO", s, time.time()) == NONE
    ]
    event = audit_record(
        user=people["dr.okafor"],
        kind=EventKind.QUESTION,
        status=EventStatus.ANSWERED,
        patients_touched=others[:1],
        row_count=1,
    )
    with django_capture_on_commit_callbacks(execute=True):
        score_events([event.seq])
    reopened = Alert.objects.get(pk=alert.pk)
    assert (reopened.state, reopened.label) == ("new", "")
    assert reopened.risk > alert.risk
    note = AlertNote.objects.filter(alert=alert).latest("created_at")
    assert (note.author_name, note.state_from, note.state_to) == ("system", "false_positive", "new")
    assert Notification.objects.filter(subject__startswith="Access alert").count() == 2

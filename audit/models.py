"""The audit store: one append-only, hash-chained table of events and the one-row head of its chain."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class EventKind(models.TextChoices):
    QUESTION = "question", "Question"
    EXPORT = "export", "Export"
    LOGIN = "login", "Login"
    LOGIN_FAILED = "login_failed", "Failed login"
    LOGOUT = "logout", "Logout"
    BREAKGLASS_OPEN = "breakglass_open", "Break-glass opened"
    BREAKGLASS_CLOSE = "breakglass_close", "Break-glass closed"
    BREAKGLASS_REVIEW = "breakglass_review", "Break-glass reviewed"
    POLICY_CHANGE = "policy_change", "Policy change"
    ALERT_TRIAGE = "alert_triage", "Alert triage"
    # An API token made or revoked (a wrong password when making one is a failed login).
    API_TOKEN = "api_token", "API token"
    # Reading the audit trail is itself audited: security staff are watched too.
    AUDIT_ACCESS = "audit_access", "Audit trail access"


class EventStatus(models.TextChoices):
    ANSWERED = "answered", "Answered"
    ABSTAINED = "abstained", "Abstained"
    DENIED = "denied", "Denied"
    ERROR = "error", "Error"
    OK = "ok", "OK"


class EventDecision(models.TextChoices):
    ALLOW = "allow", "Allow"
    DENY = "deny", "Deny"
    NONE = "none", "No decision"


class AuditEvent(models.Model):
    """One thing someone did, as it was at that moment; never updated, never deleted.

    The database refuses UPDATE, DELETE and TRUNCATE: triggers (migration 0002) for everyone and,
    on PostgreSQL, the privileges of the application's role (`create_app_role`). Consequences:
    anything computed later about an event (anomaly score, triage) lives in another table pointing
    here; on SQLite, a schema change that makes Django remake this table drops its triggers, so add
    only nullable columns without defaults or re-create the triggers in the same migration
    (`audit_verify` fails while they are missing). A new field must also be added to
    `audit.chain.HASHED_FIELDS` under a new hash version, or old events stop verifying.
    """

    # The position in the chain is the primary key: it is assigned under the append lock, so it is
    # contiguous from 1 and known before the INSERT, which lets the hash cover it. A database
    # sequence would leave gaps on rollback and could not be hashed.
    seq = models.BigIntegerField(primary_key=True)
    # UNIQUE: two events can never claim the same predecessor, so the chain cannot fork.
    prev_hash = models.CharField(max_length=64, unique=True)
    hash = models.CharField(max_length=64)
    occurred_at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=30, choices=EventKind.choices)
    status = models.CharField(max_length=20, choices=EventStatus.choices)

    # Who. The row must outlive the account and can never be updated, so SET_NULL (an UPDATE) is
    # impossible: the id stays as recorded, without a database constraint, beside copied identity.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    username = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=30, blank=True)
    # Subject attributes at the time: department, staff_id, research projects, care units...
    attributes = models.JSONField(default=dict, blank=True)

    # From where, and why.
    client_addr = models.CharField(max_length=45, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    purpose_of_use = models.CharField(max_length=20, blank=True, help_text="HL7 PurposeOfUse code.")
    # A plain id, not a foreign key: the break-glass session model lives in accessctl and an event
    # must never depend on another table's rows surviving.
    breakglass_session_id = models.BigIntegerField(null=True, blank=True, db_index=True)

    # What was asked and what ran.
    question = models.TextField(blank=True)
    sql_generated = models.TextField(blank=True)
    sql_executed = models.TextField(blank=True)

    # What policy decided.
    decision = models.CharField(max_length=10, choices=EventDecision.choices, default=EventDecision.NONE)
    obligations = models.JSONField(default=dict, blank=True)
    policy_trace = models.JSONField(default=dict, blank=True)

    # What it touched.
    tables_touched = models.JSONField(default=list, blank=True)
    columns_touched = models.JSONField(default=list, blank=True)
    row_count = models.BigIntegerField(null=True, blank=True)
    patients_touched = models.JSONField(default=list, blank=True, help_text="Sorted subject_ids.")
    patients_touched_count = models.IntegerField(default=0)

    # How it ended.
    message = models.TextField(blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    # Kind-specific facts: an export's format, a policy change's diff, a break-glass reason.
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "audit_event"
        verbose_name = "audit event"
        # The security console's searches by person and by kind of event, newest first in a time range.
        indexes = [
            models.Index(fields=["username", "occurred_at"], name="audit_event_user_time"),
            models.Index(fields=["kind", "occurred_at"], name="audit_event_kind_time"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(seq__gte=1), name="audit_event_seq_positive"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind} {self.status} by {self.username or '-'}"


class AuditChainHead(models.Model):
    """The last event of the chain (seq, hash), so that deleting the newest events shows.

    The only mutable audit row. Triggers let it move only forward and only onto an existing event;
    it is written in the same transaction as the events it names.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)

    class Meta:
        db_table = "audit_chain_head"
        verbose_name = "audit chain head"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="audit_chain_head_single_row")]

    def __str__(self) -> str:
        return f"head #{self.seq} {self.hash[:12]}"


# ---------------------------------------------------------------------------------------------------
# What is computed about events afterwards. None of it is hashed or append-only: it can be recomputed
# from the events (scores, user-days, models) or is the privacy office's own work (alerts, triage).


class EventScore(models.Model):
    """An event's features and rule hits, written once the scoring pipeline has seen it.

    An event without a row here is unscored: the sweep (`audit_score`, and beat) finds and scores it,
    so a broker or worker outage delays scoring but loses nothing.
    """

    # The event's seq; no database constraint, so that scoring never depends on the event table
    # accepting anything but SELECT.
    event = models.OneToOneField(
        AuditEvent, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    scored_at = models.DateTimeField()
    username = models.CharField(max_length=150, blank=True)
    day = models.DateField()
    features = models.JSONField(default=dict, blank=True)
    # Codes of the deterministic rules this event set off (see audit.detect.RULES).
    rules = models.JSONField(default=list, blank=True)

    class Meta:
        db_table = "audit_event_score"
        indexes = [models.Index(fields=["username", "day"])]

    def __str__(self) -> str:
        return f"score of #{self.event_id}"


class ScoringProgress(models.Model):
    """Every event up to `scored_through` has a score: where the sweep starts looking."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    scored_through = models.BigIntegerField(default=0)
    swept_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "audit_scoring_progress"
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="audit_scoring_progress_one_row")
        ]

    def __str__(self) -> str:
        return f"scored through #{self.scored_through}"


class UserDay(models.Model):
    """One user's activity on one day (the hospital's local date), with its rolling context and score."""

    username = models.CharField(max_length=150)
    user_id = models.IntegerField(null=True, blank=True)
    role = models.CharField(max_length=30, blank=True)
    department = models.CharField(max_length=20, blank=True)
    day = models.DateField()
    events = models.IntegerField(default=0)
    features = models.JSONField(default=dict, blank=True)
    # Facts the next days' context is built from: tables, columns, devices, patients, hours.
    seen = models.JSONField(default=dict, blank=True)
    anomaly = models.FloatField(
        null=True, blank=True, help_text="Isolation Forest score; higher is stranger."
    )
    percentile = models.FloatField(null=True, blank=True, help_text="Of the anomaly among the role's days.")
    risk = models.FloatField(default=0.0)
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "audit_user_day"
        constraints = [models.UniqueConstraint(fields=["username", "day"], name="audit_user_day_unique")]
        indexes = [models.Index(fields=["role", "day"]), models.Index(fields=["day", "risk"])]

    def __str__(self) -> str:
        return f"{self.username} on {self.day}"


class BaselineModel(models.Model):
    """A per-role Isolation Forest, its calibration and the peer medians that explanations cite.

    The fitted model is stored as a pickle; loading a pickle runs code, so the blob is signed with a
    key from the environment (AUDIT_MODEL_KEY, never in the database) and refused if the signature
    does not match.
    """

    role = models.CharField(max_length=30)
    trained_at = models.DateTimeField()
    window_start = models.DateField()
    window_end = models.DateField()
    samples = models.IntegerField()
    users = models.IntegerField()
    excluded_days = models.IntegerField(default=0, help_text="User-days left out as confirmed incidents.")
    feature_names = models.JSONField(default=list)
    peer_medians = models.JSONField(default=dict)
    peer_spread = models.JSONField(default=dict)
    # Raw anomaly scores at percentiles 0, 0.1, ..., 100 of the training days: score -> percentile.
    calibration = models.JSONField(default=list)
    blob = models.BinaryField()
    signature = models.CharField(max_length=64)
    active = models.BooleanField(default=True)

    class Meta:
        db_table = "audit_baseline_model"
        indexes = [models.Index(fields=["role", "active"])]

    def __str__(self) -> str:
        return f"{self.role} baseline of {self.trained_at:%Y-%m-%d}"


class AlertState(models.TextChoices):
    NEW = "new", "New"
    INVESTIGATING = "investigating", "Investigating"
    CONFIRMED = "confirmed", "Confirmed incident"
    FALSE_POSITIVE = "false_positive", "False positive"
    RESOLVED = "resolved", "Resolved"


class AlertLabel(models.TextChoices):
    """What triage concluded, kept for the next training: confirmed days are left out of baselines."""

    NONE = "", "Not yet known"
    INCIDENT = "incident", "Incident"
    BENIGN = "benign", "Benign"


class Alert(models.Model):
    """Suspicious access by one user on one day: a risk, the reasons in words, the events behind it."""

    username = models.CharField(max_length=150)
    user_id = models.IntegerField(null=True, blank=True)
    role = models.CharField(max_length=30, blank=True)
    day = models.DateField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    risk = models.FloatField(help_text="0-100.")
    # The reasons, strongest first: [{"code", "text", "value", "peer_median", "weight"}].
    reasons = models.JSONField(default=list)
    summary = models.TextField()
    first_event_at = models.DateTimeField()
    last_event_at = models.DateTimeField()
    event_seqs = models.JSONField(default=list, help_text="The events behind the alert, by seq.")
    state = models.CharField(max_length=20, choices=AlertState.choices, default=AlertState.NEW)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    label = models.CharField(max_length=10, choices=AlertLabel.choices, blank=True, default=AlertLabel.NONE)

    class Meta:
        db_table = "audit_alert"
        constraints = [models.UniqueConstraint(fields=["username", "day"], name="audit_alert_user_day")]
        indexes = [models.Index(fields=["state", "-risk"]), models.Index(fields=["day"])]
        ordering = ["-risk", "-created_at"]

    def __str__(self) -> str:
        return f"alert {self.pk}: {self.username} on {self.day} ({self.risk:.0f})"


class AlertNote(models.Model):
    """A triage step: who, when, what they wrote, and the state it moved the alert to."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_name = models.CharField(max_length=150)
    created_at = models.DateTimeField()
    text = models.TextField(blank=True)
    state_from = models.CharField(max_length=20, choices=AlertState.choices, blank=True)
    state_to = models.CharField(max_length=20, choices=AlertState.choices, blank=True)

    class Meta:
        db_table = "audit_alert_note"
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"note on alert {self.alert_id} by {self.author_name}"


class Checkpoint(models.Model):
    """A signed Merkle root over the events since the previous checkpoint.

    The signature is made with a private key kept outside the database (AUDIT_SIGNING_KEY_FILE);
    `audit_verify` checks it with the public key, so rewriting events and recomputing the hash chain,
    which anyone with database access could do, no longer goes unseen.
    """

    seq_from = models.BigIntegerField()
    seq_to = models.BigIntegerField(unique=True)
    root = models.CharField(max_length=64)
    # The previous checkpoint's root, so checkpoints form a chain of their own.
    prev_root = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    key_id = models.CharField(max_length=64, help_text="SHA-256 of the public key, hex.")
    signature = models.TextField(help_text="Ed25519 signature, base64.")

    class Meta:
        db_table = "audit_checkpoint"
        ordering = ["seq_to"]

    def __str__(self) -> str:
        return f"checkpoint #{self.seq_from}-#{self.seq_to}"

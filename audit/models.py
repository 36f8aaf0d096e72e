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

"""Access control's own records: the Casbin policy, break-glass sessions, purpose confirmations, notices."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from hisplatform.models import Role


class Purpose(models.TextChoices):
    """HL7 v3 PurposeOfUse codes the platform decides on."""

    TREAT = "TREAT", "Treatment"
    ETREAT = "ETREAT", "Emergency treatment"
    HRESCH = "HRESCH", "Healthcare research"
    HOPERAT = "HOPERAT", "Healthcare operations"
    BTG = "BTG", "Break the glass"


class DataClass(models.TextChoices):
    """What a policy rule is about: a column sensitivity class of the semantic layer, a special
    category of clinical data, or a protected kind of patient."""

    KEY = "key", "Identifiers of patients, stays and rows (key)"
    IDENTIFIER_DIRECT = "identifier_direct", "Direct identifiers: names, MRN, national ID, contact details"
    IDENTIFIER_INDIRECT = "identifier_indirect", "Indirect identifiers: dates, postcode, birth date, flags"
    DEMOGRAPHIC = "demographic", "Demographics: sex, age, language, insurance"
    CLINICAL = "clinical", "Clinical facts: results, medications, outcomes"
    CLINICAL_SPECIAL = "clinical_special", "Coded diagnoses and procedures"
    FREE_TEXT = "free_text", "Clinical notes (free text)"
    ORGANISATIONAL = "organisational", "Departments, units, staff roles"
    REFERENCE = "reference", "Code dictionaries"
    FINANCIAL = "financial", "Charges and costs"
    SPECIAL_PSYCHIATRY = "special:psychiatry", "Special category: psychiatry"
    SPECIAL_HIV = "special:hiv", "Special category: HIV"
    SPECIAL_SUBSTANCE_USE = "special:substance_use", "Special category: substance use"
    SPECIAL_REPRODUCTIVE = "special:reproductive", "Special category: reproductive health"
    SPECIAL_GENETIC = "special:genetic", "Special category: genetics"
    PATIENT_VIP = "patient:vip", "VIP patients"
    PATIENT_EMPLOYEE = "patient:employee", "Patients who are staff"


class Effect(models.TextChoices):
    ALLOW = "allow", "Allow"
    DENY = "deny", "Deny"


class PolicyRule(models.Model):
    """One Casbin policy line: role, data class, purposes, condition, effect, obligations.

    The Casbin model (accessctl/policy.py) matches a request on role and data class exactly, on
    purpose when the rule lists it (or says *), and on the condition; deny overrides allow, and no
    matching allow means deny. Rules are edited in Django admin; every process reloads within
    POLICY_RELOAD_SECONDS of a change, the one that saved it at once.
    """

    role = models.CharField(max_length=30, choices=Role.choices)
    data_class = models.CharField(max_length=30, choices=DataClass.choices)
    purposes = models.CharField(
        max_length=100,
        default="*",
        help_text="HL7 PurposeOfUse codes separated by | (TREAT|ETREAT), or * for any purpose.",
    )
    condition = models.CharField(
        max_length=200,
        blank=True,
        help_text=(
            "Comma-separated, all must hold; ! negates. breakglass: an open break-glass session; "
            "project: an approved, unexpired research project; hours:07-19: local time of day; "
            "weekday. Empty: always."
        ),
    )
    effect = models.CharField(max_length=5, choices=Effect.choices)
    obligations = models.CharField(
        max_length=500,
        blank=True,
        help_text=(
            "Comma-separated, for allow rules. scope:care | scope:department | scope:breakglass; "
            "mask:TABLE.COLUMN=KIND (redact, first4, last4, first3last4, hash, null, year); "
            "lane:identified | lane:deidentified | lane:aggregate; min_cell:11; confirm (the purpose "
            "is confirmed before special-category data is shown); reach:care_team (protected "
            "patients only through the care team or break-glass)."
        ),
    )
    reason = models.CharField(
        max_length=300,
        help_text="Why the rule exists, in words a clinician reads; shown when it denies.",
    )
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True, editable=False)

    class Meta:
        ordering = ["role", "data_class", "id"]
        verbose_name = "policy rule"
        indexes = [models.Index(fields=["role", "data_class"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.effect} {self.role} {self.data_class} [{self.purposes}]"


class PolicyState(models.Model):
    """One row whose version moves on every policy change, so every process knows to reload."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="policy_state_single_row")]

    def __str__(self) -> str:
        return f"policy version {self.version}"


class BreakGlassReason(models.TextChoices):
    CARDIAC_ARREST = "cardiac_arrest", "Cardiac or respiratory arrest"
    UNCONSCIOUS = "unconscious", "Unconscious or unable to communicate"
    EMERGENCY_ADMISSION = "emergency_admission", "Emergency admission or transfer"
    COVERING = "covering", "Covering for an absent colleague in an emergency"
    OTHER_EMERGENCY = "other_emergency", "Other life-threatening emergency"


class BreakGlassScope(models.TextChoices):
    PATIENT = "patient", "One patient"
    UNIT = "unit", "One care unit"


class BreakGlassSession(models.Model):
    """An emergency widening of one user's access, and the review item a security officer closes."""

    class EndReason(models.TextChoices):
        EXPIRED = "expired", "Expired"
        ENDED = "ended", "Ended by the user"

    class Review(models.TextChoices):
        PENDING = "pending", "Awaiting review"
        APPROPRIATE = "appropriate", "Reviewed: appropriate"
        INAPPROPRIATE = "inappropriate", "Reviewed: inappropriate"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="breakglass")
    username = models.CharField(max_length=150)
    role = models.CharField(max_length=30, choices=Role.choices)
    reason_code = models.CharField(max_length=30, choices=BreakGlassReason.choices)
    justification = models.TextField()
    scope = models.CharField(max_length=10, choices=BreakGlassScope.choices)
    subject_id = models.IntegerField(null=True, blank=True)
    careunit = models.CharField(max_length=100, blank=True)
    opened_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=10, choices=EndReason.choices, blank=True)
    # More than BREAKGLASS_ESCALATE_AFTER uses in 7 days: the review is escalated.
    escalated = models.BooleanField(default=False)
    queries = models.PositiveIntegerField(default=0)
    review = models.CharField(max_length=15, choices=Review.choices, default=Review.PENDING)
    reviewed_by = models.CharField(max_length=150, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_at"]
        verbose_name = "break-glass session"
        indexes = [models.Index(fields=["user", "opened_at"]), models.Index(fields=["review"])]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(scope="patient", subject_id__isnull=False) & models.Q(careunit=""))
                | (models.Q(scope="unit", subject_id__isnull=True) & ~models.Q(careunit="")),
                name="breakglass_scope_names_one_target",
            ),
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("opened_at")), name="breakglass_expires_after_open"
            ),
        ]

    def __str__(self) -> str:
        return f"break-glass #{self.pk} by {self.username} ({self.get_scope_display()})"

    def target(self) -> str:
        return (
            f"patient {self.subject_id}" if self.scope == BreakGlassScope.PATIENT else f"unit {self.careunit}"
        )


class PurposeConfirmation(models.Model):
    """A user's confirmation of their purpose of use before special-category data was shown."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    username = models.CharField(max_length=150)
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    categories = models.JSONField(default=list)
    question = models.TextField()
    confirmed_at = models.DateTimeField()
    audit_event_seq = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-confirmed_at"]

    def __str__(self) -> str:
        return f"{self.username} confirmed {self.purpose} at {self.confirmed_at:%Y-%m-%d %H:%M}"


class Notification(models.Model):
    """A message in the platform for one user (break-glass opened, escalations)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    subject = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)
    breakglass = models.ForeignKey(BreakGlassSession, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "read_at"])]

    def __str__(self) -> str:
        return f"to {self.user}: {self.subject}"

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
            "Comma-separated, for allow rules. scope:care | scope:department | scope:breakglass | "
            "scope:all (every patient: de-identified and aggregate lanes); "
            "mask:TABLE.COLUMN=KIND (redact, first4, last4, first3last4, hash, null, year); "
            "lane:identified | lane:deidentified | lane:aggregate; min_cell:11; confirm (the purpose "
            "is confirmed before special-category data is shown); reach:care_team (protected "
            "patients only through the care team or break-glass); k:5 and l:2 (research rows are "
            "k-anonymous and l-diverse); dp:0.5 (aggregate counts get differential-privacy noise, "
            "this epsilon charged to the user's privacy budget per query)."
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


class MaskingClass(models.TextChoices):
    """What an identifying column holds, finer than its sensitivity class: a masking profile says,
    per role, how each of these is shown (accessctl/profiles.py maps the warehouse's columns to them)."""

    PERSON_NAME = "person_name", "Names of people"
    MRN = "mrn", "Medical record numbers"
    NATIONAL_ID = "national_id", "National ID numbers"
    PHONE = "phone", "Phone numbers"
    EMAIL = "email", "E-mail addresses"
    ADDRESS = "address", "Street addresses"
    CITY = "city", "Cities"
    POSTCODE = "postcode", "Postcodes"
    BIRTH_DATE = "birth_date", "Birth dates"
    AGE = "age", "Ages"
    EVENT_DATE = "event_date", "Dates and times of care"
    PATIENT_ID = "patient_id", "Patient identifiers"
    ENCOUNTER_ID = "encounter_id", "Admission, stay and visit identifiers"
    STAFF_ID = "staff_id", "Staff identifiers"
    RECORD_ID = "record_id", "Row and record identifiers"
    FREE_TEXT = "free_text", "Clinical notes (free text)"
    OTHER_IDENTIFIER = "other_identifier", "Other direct identifiers"
    OTHER_INDIRECT = "other_indirect", "Other indirect identifiers (flags, relationships)"


class MaskingMethod(models.TextChoices):
    KEEP = "keep", "Shown as stored"
    NULL = "null", "Withheld"
    REDACT = "redact", "Redacted (xxxx)"
    FIRST3LAST4 = "first3last4", "First 3 and last 4 characters shown"
    FIRST4 = "first4", "First 4 characters shown"
    LAST4 = "last4", "Last 4 characters shown"
    PREFIX3 = "prefix3", "First 3 characters only"
    HASH = "hash", "One-way hash (unkeyed)"
    YEAR = "year", "Year only"
    BIRTH_YEAR = "birth_year", "Year only, ages over 89 as 90"
    MONTH = "month", "Month only"
    SHIFT = "shift", "Shifted by a per-patient, per-project offset"
    TOP90 = "top90", "Ages over 89 shown as 90+"
    PSEUDONYM = "pseudonym", "Keyed pseudonym (per project)"
    SCRUB = "scrub", "Identifiers scrubbed from the text"


class MaskingRule(models.Model):
    """One line of a masking profile: for this role (and optionally one research project), show this
    class of column this way. The privacy office edits profiles in admin; no code changes."""

    role = models.CharField(max_length=30, choices=Role.choices)
    masking_class = models.CharField(max_length=30, choices=MaskingClass.choices)
    project = models.CharField(
        max_length=30,
        blank=True,
        help_text="A research project code: this line applies to that project only and wins over the "
        "role's line. Empty: every project (and non-research roles).",
    )
    method = models.CharField(max_length=20, choices=MaskingMethod.choices)
    reason = models.CharField(max_length=300, blank=True)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True, editable=False)

    class Meta:
        ordering = ["role", "project", "masking_class"]
        verbose_name = "masking profile line"
        constraints = [
            models.UniqueConstraint(fields=["role", "masking_class", "project"], name="one_method_per_class")
        ]

    def __str__(self) -> str:
        project = f" ({self.project})" if self.project else ""
        return f"{self.role}{project}: {self.masking_class} -> {self.method}"


class PseudonymKey(models.Model):
    """A research project's pseudonym key generation. The key itself is never stored: it is derived
    from PSEUDONYM_SECRET (server environment) and the project and generation, so rotating means
    adding a generation, and nobody with database access alone can compute a pseudonym."""

    project = models.CharField(max_length=30)
    generation = models.PositiveIntegerField()
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=150)
    reason = models.CharField(max_length=300)

    class Meta:
        ordering = ["project", "-generation"]
        constraints = [
            models.UniqueConstraint(fields=["project", "generation"], name="one_key_per_generation")
        ]

    def __str__(self) -> str:
        return f"{self.project} key generation {self.generation}"


class PrivacyBudget(models.Model):
    """A user's differential-privacy budget: the epsilon their noisy counts have spent, and the most
    they may spend. Spent only ever grows; the privacy office raises the total in admin if it must."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    epsilon_total = models.FloatField()
    epsilon_spent = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(epsilon_spent__gte=0) & models.Q(epsilon_total__gte=0),
                name="privacy_budget_not_negative",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.epsilon_spent:g} of {self.epsilon_total:g} spent"

    @property
    def remaining(self) -> float:
        return max(0.0, self.epsilon_total - self.epsilon_spent)

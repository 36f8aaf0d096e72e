"""People: a user's staff profile (role, department, staff record) and research projects."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models


class Role(models.TextChoices):
    CLINICIAN = "clinician", "Clinician"
    NURSE = "nurse", "Nurse"
    DEPARTMENT_HEAD = "department_head", "Department head"
    RESEARCHER = "researcher", "Researcher"
    ADMINISTRATOR = "administrator", "Administrator"
    SECURITY_OFFICER = "security_officer", "Security officer"


# What each role may do, as a user reads it on the home page.
ROLE_CAPABILITIES: dict[str, list[str]] = {
    Role.CLINICIAN: [
        "Ask questions about patients you have a care relationship with: a current or recent stay in "
        "your department's units, or membership of their care team.",
        "See those patients' identified data; other patients are refused or shown as counts only.",
        "Open break-glass access in an emergency, with a reason; every query under it is reviewed.",
    ],
    Role.NURSE: [
        "Ask questions about patients in your care: a current or recent stay in your department's units, "
        "or membership of their care team.",
        "See those patients' identified data; other patients are refused or shown as counts only.",
        "Open break-glass access in an emergency, with a reason; every query under it is reviewed.",
    ],
    Role.DEPARTMENT_HEAD: [
        "Ask questions about every patient of your department, with full ID numbers.",
        "Open break-glass access in an emergency, with a reason; every query under it is reviewed.",
    ],
    Role.RESEARCHER: [
        "Ask cohort and outcome questions under an approved, unexpired research project.",
        "See de-identified rows only: pseudonyms, generalised dates, ages and places, scrubbed notes, "
        "k-anonymous results.",
    ],
    Role.ADMINISTRATOR: [
        "Ask operational questions: census, admissions, length of stay, lab volumes and turnaround.",
        "See aggregates only, with small cells suppressed; never a row about one patient.",
    ],
    Role.SECURITY_OFFICER: [
        "Review the audit trail, anomaly alerts, break-glass sessions and reports.",
        "No clinical questions: separation of duties keeps patient data out of the audit role.",
    ],
}


class StaffProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    role = models.CharField(max_length=30, choices=Role.choices)
    # The warehouse department code (departments.code); blank for roles that span departments.
    department = models.CharField(max_length=20, blank=True)
    # The warehouse staff record (staff.staff_id) this account belongs to, if any.
    staff_id = models.IntegerField(null=True, blank=True, unique=True)
    title = models.CharField(max_length=100, blank=True)

    class Meta:
        verbose_name = "staff profile"

    def __str__(self) -> str:
        return f"{self.user.get_username()} ({self.get_role_display()})"


class ResearchProject(models.Model):
    code = models.CharField(max_length=30, unique=True)
    title = models.CharField(max_length=200)
    purpose = models.TextField(help_text="What the project studies and why it needs this data.")
    ethics_reference = models.CharField(max_length=60, help_text="The approving committee's reference.")
    approved_on = models.DateField(null=True, blank=True)
    expires_on = models.DateField()
    # The approved cohort, as ICD code prefixes ("icd10|i50"); empty means the whole hospital. Queries
    # reaching patients outside it are flagged by the audit's anomaly features.
    cohort = models.JSONField(default=list, blank=True, help_text='ICD code prefixes, e.g. ["icd10|i50"].')
    members: models.ManyToManyField[User, ProjectMembership] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="ProjectMembership", related_name="projects"
    )

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code}: {self.title}"

    def is_active_on(self, day: dt.date) -> bool:
        """Approved, started and not expired on that day."""
        return self.approved_on is not None and self.approved_on <= day <= self.expires_on


class ProjectMembership(models.Model):
    project = models.ForeignKey(ResearchProject, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    added_on = models.DateField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="unique_project_member")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project.code}"

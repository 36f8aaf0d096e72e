"""The demo hospital's accounts: one staff record in the warehouse and one login for each."""

from __future__ import annotations

from dataclasses import dataclass

from hisplatform.models import Role


@dataclass(frozen=True)
class DemoStaff:
    username: str
    role: Role
    department: str  # departments.code; "" for roles that span departments
    given_name: str
    family_name: str
    title: str


# The generator gives each of these a warehouse staff record (staff.username) and, for clinical
# roles, care-team assignments of current inpatients in their department, so every role has
# something to see on the first login.
DEMO_STAFF: tuple[DemoStaff, ...] = (
    DemoStaff("dr.carter", Role.CLINICIAN, "CARD", "Grace", "Carter", "Consultant cardiologist"),
    DemoStaff("dr.okafor", Role.CLINICIAN, "NEURO", "Emeka", "Okafor", "Consultant neurologist"),
    DemoStaff("dr.lindqvist", Role.CLINICIAN, "CRITC", "Sara", "Lindqvist", "Intensivist"),
    DemoStaff("nurse.patel", Role.NURSE, "CRITC", "Priya", "Patel", "ICU staff nurse"),
    DemoStaff("nurse.moreau", Role.NURSE, "CARD", "Louis", "Moreau", "Cardiology ward nurse"),
    DemoStaff("head.nguyen", Role.DEPARTMENT_HEAD, "CARD", "Minh", "Nguyen", "Head of Cardiology"),
    DemoStaff("res.garcia", Role.RESEARCHER, "", "Lucia", "Garcia", "Clinical research fellow"),
    DemoStaff("admin.walsh", Role.ADMINISTRATOR, "", "Fiona", "Walsh", "Hospital operations manager"),
    DemoStaff("sec.ito", Role.SECURITY_OFFICER, "", "Kenji", "Ito", "Privacy officer"),
)

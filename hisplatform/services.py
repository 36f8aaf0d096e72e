"""Writes about people: the demo accounts and research projects that seed_demo creates."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.db import transaction

from hisplatform.demo import DEMO_STAFF
from hisplatform.models import ProjectMembership, ResearchProject, Role, StaffProfile


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: str
    department: str


# Role -> (group name, the permissions it holds in Django admin).
ADMIN_GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    Role.ADMINISTRATOR: (
        "Platform administrators",
        tuple(
            f"{app}.{action}_{model}"
            for app, model in (
                ("auth", "user"),
                ("hisplatform", "staffprofile"),
                ("hisplatform", "researchproject"),
                ("hisplatform", "projectmembership"),
            )
            for action in ("view", "add", "change", "delete")
        ),
    ),
    # The privacy office owns the access policy and reviews break-glass use and purpose confirmations.
    Role.SECURITY_OFFICER: (
        "Privacy office",
        (
            "audit.view_auditevent",
            "audit.view_alert",
            "audit.view_alertnote",
            "audit.view_baselinemodel",
            "audit.view_checkpoint",
            *(f"accessctl.{action}_policyrule" for action in ("view", "add", "change", "delete")),
            "accessctl.view_breakglasssession",
            "accessctl.view_purposeconfirmation",
        ),
    ),
}


def _admin_group(spec: tuple[str, tuple[str, ...]]) -> Group:
    name, permissions = spec
    group, _ = Group.objects.get_or_create(name=name)
    wanted = []
    for dotted in permissions:
        app_label, codename = dotted.split(".")
        wanted.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    group.permissions.set(wanted)
    return group


def demo_accounts_file() -> Path:
    return Path(settings.VAR_DIR) / "demo_accounts.json"


def _new_password() -> str:
    # 16 URL-safe characters from the OS CSPRNG; long enough for the password validators.
    return secrets.token_urlsafe(12)


@transaction.atomic
def demo_accounts_seed(*, staff_ids: dict[str, int], reference_date: dt.date) -> list[DemoAccount]:
    """Create or reset every demo account with a fresh password; link each to its staff record.

    The passwords are written to var/demo_accounts.json (mode 0600) so `demo_accounts` can list
    them; a real deployment creates accounts through its identity provider, not here.
    """
    accounts: list[DemoAccount] = []
    for person in DEMO_STAFF:
        password = _new_password()
        user, _ = User.objects.get_or_create(username=person.username)
        user.first_name, user.last_name = person.given_name, person.family_name
        user.email = f"{person.username}@demo-hospital.example"
        # Django admin holds the platform's own objects, never warehouse data. Separation of duties:
        # the administrator manages accounts and projects but cannot read the audit trail; the
        # security officer reads the audit trail but cannot change accounts. Nobody is a superuser.
        group = ADMIN_GROUPS.get(person.role)
        user.is_staff = group is not None
        user.is_superuser = False
        user.set_password(password)
        user.save()
        user.groups.set([_admin_group(group)] if group else [])
        StaffProfile.objects.update_or_create(
            user=user,
            defaults={
                "role": person.role,
                "department": person.department,
                "staff_id": staff_ids.get(person.username),
                "title": person.title,
            },
        )
        accounts.append(DemoAccount(person.username, password, person.role.value, person.department))

    project, _ = ResearchProject.objects.update_or_create(
        code="RP-2026-014",
        defaults={
            "title": "Outcomes of sepsis in the critically ill",
            "purpose": "Retrospective cohort study of ICU sepsis outcomes and length of stay.",
            "ethics_reference": "REC 26/EM/0147",
            "approved_on": reference_date - dt.timedelta(days=60),
            "expires_on": reference_date + dt.timedelta(days=305),
        },
    )
    expired, _ = ResearchProject.objects.update_or_create(
        code="RP-2023-002",
        defaults={
            "title": "Readmissions after heart failure (closed)",
            "purpose": "Completed study kept to show that expired approvals grant nothing.",
            "ethics_reference": "REC 23/LO/0031",
            "approved_on": reference_date - dt.timedelta(days=1000),
            "expires_on": reference_date - dt.timedelta(days=270),
        },
    )
    for username in (p.username for p in DEMO_STAFF if p.role == Role.RESEARCHER):
        researcher = User.objects.get(username=username)
        for each in (project, expired):
            ProjectMembership.objects.get_or_create(project=each, user=researcher)

    _write_accounts_file(accounts)
    return accounts


def _write_accounts_file(accounts: list[DemoAccount]) -> None:
    path = demo_accounts_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump([asdict(account) for account in accounts], handle, indent=2)
    os.replace(temporary, path)


class DemoAccountsUnreadable(Exception):
    """The accounts file exists but is damaged; re-seeding writes a new one."""


def demo_accounts_read() -> list[DemoAccount]:
    """The accounts seed_demo created, or an empty list before the first seed."""
    path = demo_accounts_file()
    if not path.exists():
        return []
    try:
        return [DemoAccount(**item) for item in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError) as error:
        raise DemoAccountsUnreadable(
            f"{path} cannot be read ({error}); run `python manage.py seed_demo` to create the accounts again."
        ) from None

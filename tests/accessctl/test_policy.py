"""The Casbin policy: stored in the application database, edited in admin, reloaded on change, deny
overriding allow, and our trace agreeing with Casbin's own answer for every request."""

from __future__ import annotations

import itertools

import casbin
import pytest
from casbin.persist.adapters.string_adapter import StringAdapter
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.test import Client

from accessctl.models import DataClass, PolicyRule, PolicyState, Purpose
from accessctl.policy import CASBIN_MODEL, Context, cond_match, decide_classes, purpose_match, validate_rule
from audit.models import AuditEvent
from hisplatform.models import Role
from hisplatform.queries import answer_question
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import NOON, People, rows_of
from tests.factories import PASSWORD, StaffProfileFactory

pytestmark = pytest.mark.django_db

DAY = Context(breakglass=False, project=False, hour=12, weekday=True)


def _privacy_officer() -> User:
    officer = StaffProfileFactory.create(user__username="priv.officer", role=Role.SECURITY_OFFICER).user
    officer.is_staff = True
    officer.save()
    officer.user_permissions.set(
        Permission.objects.filter(content_type__app_label="accessctl", codename__endswith="policyrule")
    )
    return officer


def _gender_question(target: WarehouseTarget) -> str:
    in_care = rows_of(target)(
        "SELECT MIN(t.subject_id) FROM transfers t JOIN care_units cu ON cu.careunit = t.careunit "
        "JOIN departments d ON d.department_id = cu.department_id JOIN patient_identity p "
        "ON p.subject_id = t.subject_id WHERE d.code = 'CARD' AND t.outtime IS NULL "
        "AND NOT p.vip_flag AND NOT p.employee_flag"
    )[0][0]
    return f"what is the gender of patient {in_care}?"


def test_the_default_policy_is_loaded_by_migration(default_policy: None) -> None:
    assert PolicyRule.objects.filter(role=Role.CLINICIAN, data_class="clinical", effect="allow").exists()
    assert PolicyRule.objects.filter(role=Role.SECURITY_OFFICER, effect="allow").count() == 0


def test_a_rule_added_in_admin_applies_to_the_next_question(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    question = _gender_question(sqlite_warehouse)
    carter = sqlite_people["dr.carter"]
    assert (
        answer_question(user=carter, question=question, now=NOON, target=sqlite_warehouse).status
        == "answered"
    )
    version = PolicyState.objects.get().version

    _privacy_officer()
    client = Client()
    assert client.login(username="priv.officer", password=PASSWORD)
    form = {
        "role": "clinician",
        "data_class": "demographic",
        "purposes": "TREAT",
        "condition": "",
        "effect": "deny",
        "obligations": "",
        "reason": "Demographics are paused while the registry is migrated.",
        "enabled": "on",
    }
    bad = client.post("/admin/accessctl/policyrule/add/", {**form, "purposes": "FUN"})
    assert bad.status_code == 200
    assert "unknown purpose of use FUN" in bad.content.decode()
    response = client.post("/admin/accessctl/policyrule/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    rule = PolicyRule.objects.get(reason__startswith="Demographics are paused")
    assert rule.updated_by == "priv.officer"
    assert PolicyState.objects.get().version != version
    change = AuditEvent.objects.filter(kind="policy_change").latest("seq")
    assert (change.username, change.details["after"]["effect"]) == ("priv.officer", "deny")

    denied = answer_question(user=carter, question=question, now=NOON, target=sqlite_warehouse)
    assert (denied.status, denied.code, denied.message) == (
        "denied",
        "policy_denied",
        "Demographics are paused while the registry is migrated.",
    )
    assert any(
        f"rule {rule.pk}: deny clinician demographic" in r
        for c in denied.policy["classes"]
        for r in c["rules"]
    )

    assert client.post(f"/admin/accessctl/policyrule/{rule.pk}/delete/", {"post": "yes"}).status_code == 302
    assert (
        answer_question(user=carter, question=question, now=NOON, target=sqlite_warehouse).status
        == "answered"
    )
    assert AuditEvent.objects.filter(kind="policy_change").count() == 2


def test_a_change_written_by_another_process_is_picked_up(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    # Another process changed the rows and the version; this one has the old policy loaded.
    question = _gender_question(sqlite_warehouse)
    carter = sqlite_people["dr.carter"]
    assert (
        answer_question(user=carter, question=question, now=NOON, target=sqlite_warehouse).status
        == "answered"
    )
    PolicyRule.objects.filter(role="clinician", data_class="demographic").update(enabled=False)
    PolicyState.objects.update(version=424242)
    answer = answer_question(user=carter, question=question, now=NOON, target=sqlite_warehouse)
    assert (answer.status, answer.code) == ("denied", "policy_denied")
    assert answer.message.startswith("No policy lets a clinician see demographics")


def test_deny_overrides_allow(default_policy: None) -> None:
    assert decide_classes("clinician", ["clinical"], "TREAT", DAY)["clinical"].allowed
    PolicyRule.objects.create(
        role="clinician", data_class="clinical", purposes="*", effect="deny", reason="Frozen for an inquiry."
    )
    PolicyState.objects.update(version=7)
    decision = decide_classes("clinician", ["clinical"], "TREAT", DAY)["clinical"]
    assert not decision.allowed
    assert decision.reason == "Frozen for an inquiry."
    assert [rule.effect for rule in decision.matched] == ["allow", "deny"]


def test_time_of_day_conditions(default_policy: None) -> None:
    PolicyRule.objects.create(
        role="nurse",
        data_class="financial",
        purposes="HOPERAT",
        condition="hours:07-19,weekday",
        effect="allow",
        obligations="lane:aggregate",
        reason="Ward managers review charges in office hours.",
    )
    PolicyRule.objects.filter(role="nurse", data_class="financial", effect="deny").delete()
    PolicyState.objects.update(version=8)
    night = Context(breakglass=False, project=False, hour=3, weekday=True)
    sunday = Context(breakglass=False, project=False, hour=12, weekday=False)
    assert decide_classes("nurse", ["financial"], "HOPERAT", DAY)["financial"].allowed
    assert not decide_classes("nurse", ["financial"], "HOPERAT", night)["financial"].allowed
    assert not decide_classes("nurse", ["financial"], "HOPERAT", sunday)["financial"].allowed


def test_rules_are_validated() -> None:
    fields = {
        "role": "nurse",
        "data_class": "clinical",
        "purposes": "TREAT|ETREAT",
        "condition": "!breakglass",
        "effect": "allow",
        "obligations": "scope:care,mask:staff.phone=last4",
        "reason": "r",
    }
    good = PolicyRule(**fields)
    validate_rule(good)
    for field, value, problem in (
        ("purposes", "TREAT|PLAY", "unknown purpose of use PLAY"),
        ("condition", "moon:full", "unknown condition 'moon:full'"),
        ("obligations", "mask:staff.phone=blur", "unknown obligation 'mask:staff.phone=blur'"),
        ("obligations", "scope:everyone", "unknown obligation 'scope:everyone'"),
    ):
        bad = PolicyRule(**{**fields, field: value})
        with pytest.raises(ValidationError) as error:
            validate_rule(bad)
        assert error.value.message_dict[field] == [problem]


def test_unreadable_conditions_fail_closed(default_policy: None) -> None:
    # Written around validation (a bad import, a hand-edited row): never an accidental allow.
    broken = {"data_class": "reference", "purposes": "*", "condition": "??"}
    PolicyRule.objects.create(role="clinician", effect="deny", reason="Broken deny.", **broken)
    PolicyRule.objects.create(
        role="researcher", effect="allow", obligations="lane:identified", reason="Broken allow.", **broken
    )
    PolicyState.objects.update(version=9)
    assert not decide_classes("clinician", ["reference"], "TREAT", DAY)["reference"].allowed
    assert not decide_classes("researcher", ["reference"], "TREAT", DAY)["reference"].allowed


def test_our_trace_agrees_with_plain_casbin_on_every_request(default_policy: None) -> None:
    """Every role x data class x purpose x context on the shipped policy, against a plain Casbin
    Enforcer (no index, no cache) loaded from the same rows."""
    lines = [
        ", ".join(
            [
                r.role,
                r.data_class,
                r.purposes,
                r.condition,
                r.effect,
                r.obligations.replace(",", ";"),
                str(r.pk),
            ]
        )
        for r in PolicyRule.objects.filter(enabled=True)
    ]
    model = casbin.model.Model()
    model.load_model_from_text(CASBIN_MODEL)
    plain = casbin.Enforcer(model, StringAdapter("\n".join(f"p, {line}" for line in lines)))
    plain.add_function("purpose_match", purpose_match)
    plain.add_function("cond_match", cond_match)
    contexts = [
        Context(breakglass=b, project=p, hour=h, weekday=True)
        for b, p, h in itertools.product((False, True), (False, True), (3, 12))
    ]
    checked = 0
    for role, data_class, purpose, context in itertools.product(
        Role.values, DataClass.values, Purpose.values, contexts
    ):
        ours = decide_classes(role, [data_class], purpose, context)[data_class]
        assert ours.allowed == plain.enforce(role, data_class, purpose, context), (role, data_class, purpose)
        checked += 1
    assert checked == len(Role.values) * len(DataClass.values) * len(Purpose.values) * len(contexts)

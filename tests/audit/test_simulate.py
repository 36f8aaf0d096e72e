"""`simulate_access`: labelled traffic for the small demo hospital, checked against the warehouse's facts."""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_django.fixtures import Settings as SettingsWrapper

from audit.accesses import IDENTIFIER_COLUMNS, Access, read_dataset, write_dataset
from audit.relations import RECENT, UNIT, Relations, family_members, load_relations
from audit.simulate import SCENARIO_KINDS, SimulationError, simulate
from hisplatform.warehouse.targets import WarehouseTarget

DAYS, TRAIN_DAYS, INSTANCES, SEED = 24, 12, 3, 11
Rows = list[tuple[Access, str | None]]
SNOOPING = {"family_snooping", "coworker_snooping", "vip_snooping"}


@pytest.fixture(scope="module")
def relations(sqlite_warehouse: WarehouseTarget) -> Relations:
    return load_relations(sqlite_warehouse)


@pytest.fixture(scope="module")
def dataset(relations: Relations, sqlite_warehouse: WarehouseTarget) -> tuple[dict[str, Any], Rows]:
    meta, rows = simulate(
        relations=relations,
        target=sqlite_warehouse,
        days=DAYS,
        train_days=TRAIN_DAYS,
        seed=SEED,
        instances=INSTANCES,
    )
    return meta, rows


def _at(access: Access) -> float:
    return access.at.timestamp()


def _scenarios(meta: dict[str, Any]) -> list[dict[str, Any]]:
    scenarios = meta["scenarios"]
    assert isinstance(scenarios, list)
    return scenarios


def test_deterministic_for_a_seed(relations: Relations, sqlite_warehouse: WarehouseTarget) -> None:
    def run(seed: int) -> tuple[dict[str, Any], Rows]:
        return simulate(
            relations=relations, target=sqlite_warehouse, days=6, train_days=3, seed=seed, instances=1
        )

    first, again, other = run(5), run(5), run(6)
    assert first == again
    assert first[1] != other[1]
    assert [a.seq for a, _ in first[1]] == list(range(1, len(first[1]) + 1))
    assert all(a.at <= b.at for (a, _), (b, _) in zip(first[1], first[1][1:], strict=False))


def test_window_ends_at_the_warehouse_cutoff(dataset: tuple[dict[str, Any], Rows]) -> None:
    meta, rows = dataset
    cutoff = dt.datetime.fromisoformat(str(meta["cutoff"]))
    start = dt.datetime.fromisoformat(str(meta["start"]))
    # The seeded hospital's extract ends the evening before its reference day (2026-11-25).
    assert cutoff.date() == dt.date(2026, 11, 24)
    assert meta["end"] == meta["cutoff"]
    assert start == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)  # 24 calendar days, the last one cut short
    assert meta["train_end"] == "2026-11-13T00:00:00+00:00"
    assert all(start <= a.at < cutoff and a.at.tzinfo == dt.UTC for a, _ in rows)


def test_users_are_the_warehouse_staff_plus_researchers_and_administrators(
    dataset: tuple[dict[str, Any], Rows], relations: Relations
) -> None:
    meta, rows = dataset
    users = {u["username"]: u for u in meta["users"]}
    clinical = [f for f in relations.staff.values() if f.department]
    assert len(clinical) == 330
    roles = Counter(u["role"] for u in users.values())
    assert roles == {
        "nurse": 227,
        "clinician": 93,
        "department_head": 10,
        "researcher": 6,
        "administrator": 3,
    }
    assert users["dr.carter"]["department"] == "CARD"
    assert users["dr.carter"]["staff_id"] == 1
    assert "sec.ito" not in users  # the privacy office asks no clinical questions
    assert users["res.garcia"]["projects"][0] == "RP-2026-014"
    assert "res.garcia" in meta["projects"]["RP-2026-014"]["members"]
    assert meta["projects"]["RP-2026-014"]["cohort"][:2] == ["icd10|a41", "icd10|r65"]
    assert users["admin.walsh"]["role"] == "administrator"
    # Staff without an account get a stable synthetic username.
    assert users["staff0100"]["staff_id"] == 100
    active = {a.username for a, _ in rows}
    assert active <= set(users)
    assert meta["counts"]["users"] == len(active)


def test_every_scenario_kind_is_injected_instances_times_after_training(
    dataset: tuple[dict[str, Any], Rows],
) -> None:
    meta, rows = dataset
    scenarios = _scenarios(meta)
    assert Counter(str(s["kind"]) for s in scenarios) == dict.fromkeys(SCENARIO_KINDS, INSTANCES)
    train_end = dt.datetime.fromisoformat(str(meta["train_end"]))
    labelled: dict[str, list[Access]] = defaultdict(list)
    for access, label in rows:
        if label is not None:
            labelled[label].append(access)
    assert set(labelled) == {str(s["id"]) for s in scenarios}
    assert all(a.at >= train_end for accesses in labelled.values() for a in accesses)
    for scenario in scenarios:
        mine = labelled[str(scenario["id"])]
        assert scenario["id"] == f"{scenario['kind']}-{str(scenario['id'])[-2:]}"
        assert scenario["accesses"] == len(mine)
        assert scenario["start"] == min(a.at for a in mine).isoformat()
        assert scenario["end"] == max(a.at for a in mine).isoformat()
        assert {a.username for a in mine} <= set(scenario["users"])
        assert scenario["description"]
    # Different users for different instances (research excepted only when researchers run out).
    users = [u for s in scenarios for u in s["users"]]
    assert len(users) == len(set(users))


def test_snoop_targets_have_no_relationship_and_match_the_kind(
    dataset: tuple[dict[str, Any], Rows], relations: Relations
) -> None:
    meta, rows = dataset
    by_id = {str(s["id"]): s for s in _scenarios(meta)}
    looked: Counter[str] = Counter()
    for access, label in rows:
        if label is None or by_id[label]["kind"] not in SNOOPING:
            continue
        scenario = by_id[label]
        (target,) = scenario["targets"]
        if target not in access.patients:
            continue
        looked[label] += 1
        assert relations.relation(access.staff_id, access.department, target, _at(access)) < UNIT
        facts = relations.patients[target]
        assert access.staff_id is not None
        if scenario["kind"] == "family_snooping":
            member = relations.staff[access.staff_id]
            assert target in family_members(relations, access.staff_id)
            assert facts.family_name == member.family_name or facts.address == member.address
        elif scenario["kind"] == "coworker_snooping":
            assert facts.employee
            assert facts.staff_id != access.staff_id
            colleague = relations.staff.get(facts.staff_id) if facts.staff_id is not None else None
            assert colleague is None or colleague.department != access.department
        else:
            assert facts.vip
    # Each snooper looks at 1-3 records of the target (plus, sometimes, the opening of break-glass).
    assert set(looked) == {i for i, s in by_id.items() if s["kind"] in SNOOPING}
    assert all(1 <= n <= 4 for n in looked.values())


def test_snooping_hides_in_a_normal_shift(dataset: tuple[dict[str, Any], Rows]) -> None:
    meta, rows = dataset
    for scenario in _scenarios(meta):
        if scenario["kind"] not in SNOOPING:
            continue
        (user,) = scenario["users"]
        day = dt.datetime.fromisoformat(str(scenario["start"])).date()
        benign = [a for a, label in rows if label is None and a.username == user and a.at.date() == day]
        assert len([a for a in benign if a.kind == "question"]) >= 2, scenario["id"]


def test_scenario_shapes(dataset: tuple[dict[str, Any], Rows], relations: Relations) -> None:
    meta, rows = dataset
    by_id = {str(s["id"]): s for s in _scenarios(meta)}
    labelled: dict[str, list[Access]] = defaultdict(list)
    for access, label in rows:
        if label is not None:
            labelled[label].append(access)
    train_end = dt.datetime.fromisoformat(str(meta["train_end"]))
    usual: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for access, label in rows:
        if label is None and access.at < train_end:
            usual[access.username].add((access.client_addr, access.user_agent))
    projects = meta["projects"]
    assert isinstance(projects, dict)
    for label, accesses in labelled.items():
        kind = by_id[label]["kind"]
        if kind == "bulk_export":
            exports = [a for a in accesses if a.kind == "export"]
            assert exports
            # The small hospital has 200 patients: the export takes 4 in 5 of them, with identities.
            assert max(a.patients_count for a in exports) == 160
            assert all(a.identifiers_shown >= 4 and a.rows >= 2 * a.patients_count for a in exports)
        elif kind == "slow_exfiltration":
            assert len({a.at.date() for a in accesses}) >= 4
            assert all(20 <= a.patients_count <= 60 and a.identifiers_shown >= 4 for a in accesses)
        elif kind == "coordinated_aggregation":
            users = by_id[label]["users"]
            assert 3 <= len(users) <= 4
            assert len({a.department for a in accesses}) == len({a.username for a in accesses}) >= 2
            assert set().union(*(a.patients for a in accesses)) <= set(by_id[label]["targets"])
            assert max(a.at for a in accesses) - min(a.at for a in accesses) < dt.timedelta(days=8)
        elif kind == "masking_rephrase":
            assert 4 <= len(accesses) <= 7
            assert max(a.at for a in accesses) - min(a.at for a in accesses) < dt.timedelta(minutes=20)
            assert all(a.status in ("denied", "abstained") or a.masked for a in accesses)
            assert all("patient_identity.national_id" not in a.columns or a.masked for a in accesses)
        elif kind == "after_hours":
            assert all(a.at.hour >= 22 or a.at.hour < 6 for a in accesses)
            (user,) = {a.username for a in accesses}
            first = min(_at(a) for a in accesses)
            # A day off: no work of their own within eight hours either side.
            assert not [
                a for a, lab in rows if lab is None and a.username == user and abs(_at(a) - first) < 8 * 3600
            ]
        elif kind == "credential_sharing":
            (user,) = {a.username for a in accesses}
            assert not {(a.client_addr, a.user_agent) for a in accesses} & usual[user]
            assert all(
                relations.relation(a.staff_id, a.department, p, _at(a)) < UNIT
                for a in accesses
                for p in a.patients
            )
        elif kind == "research_outside_cohort":
            (project,) = {a.project for a in accesses}
            cohort = projects[project]["cohort"]
            assert all(a.role == "researcher" and project in a.projects for a in accesses)
            assert all(not relations.in_cohort(p, cohort) for a in accesses for p in a.patients)
            assert all(a.masked and a.identifiers_shown == 0 for a in accesses)


def test_benign_clinical_accesses_are_to_related_patients(
    dataset: tuple[dict[str, Any], Rows], relations: Relations
) -> None:
    _, rows = dataset
    levels: Counter[int] = Counter()
    for access, label in rows:
        if label is None and access.role in ("clinician", "nurse") and access.kind == "question":
            for subject in access.patients:
                levels[relations.relation(access.staff_id, access.department, subject, _at(access))] += 1
    total = sum(levels.values())
    assert total > 10_000
    related = sum(n for level, n in levels.items() if level >= RECENT)
    assert related / total >= 0.95
    # Not trivially separable: consults, floats and handovers reach unrelated patients now and then.
    assert 0 < levels[0] / total < 0.05


def test_benign_oddities_are_there(dataset: tuple[dict[str, Any], Rows], relations: Relations) -> None:
    meta, rows = dataset
    oddities = meta["benign_oddities"]
    assert isinstance(oddities, dict)
    expected = (
        "float_shifts", "breakglass", "quality_reviews", "oncall_nights", "new_workstation_sessions",
        "consults", "denials", "rephrased_typos", "family_in_care_accesses", "benign_exports",
    )  # fmt: skip
    for name in expected:
        assert oddities[name] > 0, name
    benign = [a for a, label in rows if label is None]
    # Legitimate break-glass: the patient arrives (a stay starts) within hours of the glass being broken.
    for access in (a for a in benign if a.kind == "breakglass_open"):
        (subject,) = access.patients
        starts = [s for stays in relations.stays[subject].values() for s, _ in stays]
        assert any(-2 * 3600 <= s - _at(access) <= 5 * 3600 for s in starts)
    # A relative genuinely in the user's care is looked at, as anyone else in their care would be.
    family_in_care = [
        a
        for a in benign
        if a.staff_id is not None
        and a.patients_count == 1
        and a.patients[0] in family_members(relations, a.staff_id)
        and relations.relation(a.staff_id, a.department, a.patients[0], _at(a)) >= UNIT
    ]
    assert family_in_care
    # Denials (mistyped ids) and "not understood" questions show nobody.
    refused = [a for a in benign if a.status in ("denied", "abstained")]
    assert refused
    assert all(a.patients == () and a.identifiers_shown == 0 for a in refused)


def test_shift_patterns(dataset: tuple[dict[str, Any], Rows]) -> None:
    meta, rows = dataset
    pattern = {u["username"]: u["pattern"] for u in meta["users"]}
    night: Counter[str] = Counter()
    day: Counter[str] = Counter()
    weekday: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for access, label in rows:
        if label is not None or not access.role:
            continue
        user = access.username
        total[user] += 1
        hour = access.at.hour
        night[user] += hour >= 19 or hour < 7
        day[user] += 7 <= hour < 20
        weekday[user] += access.at.weekday() < 5
    night_workers = [u for u in total if pattern[u] == "night"]
    day_nurses = [u for u in total if pattern[u] == "day"]
    office = [u for u in total if pattern[u] in ("weekday", "office")]
    assert night_workers
    assert day_nurses
    assert office
    assert sum(night[u] for u in night_workers) / sum(total[u] for u in night_workers) >= 0.95
    assert sum(day[u] for u in day_nurses) / sum(total[u] for u in day_nurses) >= 0.95
    # Physicians, researchers and administrators work weekdays (weekend rounds and on-call aside).
    assert sum(weekday[u] for u in office) / sum(total[u] for u in office) >= 0.85


def test_accesses_are_shaped_by_role(dataset: tuple[dict[str, Any], Rows]) -> None:
    _, rows = dataset
    for access, _label in rows:
        assert list(access.patients) == sorted(set(access.patients))
        assert access.patients_count == len(access.patients)
        if access.kind in ("login", "logout", "login_failed"):
            assert access.patients == ()
            assert access.question == ""
            assert access.status in ("ok", "denied")
        if access.role == "administrator" and access.kind == "question":
            assert access.patients == ()
            assert access.masked
            assert access.purpose == "HOPERAT"
        if access.role == "researcher" and access.kind in ("question", "export"):
            assert access.masked
            assert access.identifiers_shown == 0
            assert access.project in access.projects
            assert access.purpose == "HRESCH"
        shown = [c for c in access.columns if c in IDENTIFIER_COLUMNS]
        assert access.identifiers_shown <= len(shown)
        if access.role in ("clinician", "nurse") and "patient_identity.national_id" in access.columns:
            assert access.masked  # clinicians see first three and last four digits only
    questions = [a for a, _ in rows if a.kind == "question" and a.role in ("clinician", "nurse")]
    sizes = Counter(min(a.patients_count, 2) for a in questions)
    assert sizes[1] / len(questions) > 0.6  # mostly one patient a question


def test_dataset_round_trips(dataset: tuple[dict[str, Any], Rows], tmp_path: Path) -> None:
    meta, rows = dataset
    path = tmp_path / "access.jsonl.gz"
    assert write_dataset(path, meta, rows) == len(rows)
    read_meta, accesses = read_dataset(path)
    assert read_meta == meta
    assert list(accesses) == rows


def test_same_traffic_from_postgresql(
    dataset: tuple[dict[str, Any], Rows], pg_warehouse: WarehouseTarget
) -> None:
    meta, rows = simulate(
        relations=load_relations(pg_warehouse),
        target=pg_warehouse,
        days=DAYS,
        train_days=TRAIN_DAYS,
        seed=SEED,
        instances=INSTANCES,
    )
    assert rows == dataset[1]
    assert {**meta, "warehouse": ""} == {**dataset[0], "warehouse": ""}


@pytest.mark.parametrize(
    ("days", "train_days", "instances", "message"),
    [
        (10, 10, 1, "--days (10) must be more than --train-days (10)"),
        (0, 0, 1, "--days must be at least 1."),
        (10, 2, -1, "--instances cannot be negative."),
    ],
)
def test_bad_windows_are_refused(
    relations: Relations,
    sqlite_warehouse: WarehouseTarget,
    days: int,
    train_days: int,
    instances: int,
    message: str,
) -> None:
    with pytest.raises(SimulationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        simulate(
            relations=relations,
            target=sqlite_warehouse,
            days=days,
            train_days=train_days,
            instances=instances,
        )


def test_command_writes_a_dataset(
    sqlite_warehouse: WarehouseTarget, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.WAREHOUSE_URL = sqlite_warehouse.url
    out = tmp_path / "access.jsonl.gz"
    stdout = io.StringIO()
    call_command(
        "simulate_access", "--out", str(out), "--days", "8", "--train-days", "4", "--instances", "1",
        "--seed", "3", stdout=stdout,
    )  # fmt: skip
    meta, accesses = read_dataset(out)
    rows = list(accesses)
    assert meta["days"] == 8
    assert meta["seed"] == 3
    assert len(meta["scenarios"]) == len(SCENARIO_KINDS)
    labelled = Counter(label for _, label in rows if label)
    assert len(labelled) == len(SCENARIO_KINDS)
    text = stdout.getvalue()
    assert f"Wrote {out}: {len(rows)} accesses by {meta['counts']['users']} users over " in text
    assert f"{meta['counts']['user_days']} user-days" in text
    assert f"Scenarios: 10 ({sum(labelled.values())} labelled accesses)" in text
    assert "  vip_snooping: 1" in text


def test_command_errors_are_clear(
    sqlite_warehouse: WarehouseTarget, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.WAREHOUSE_URL = sqlite_warehouse.url
    out = str(tmp_path / "access.jsonl.gz")
    with pytest.raises(CommandError, match=r"--days \(5\) must be more than --train-days \(30\)"):
        call_command("simulate_access", "--out", out, "--days", "5")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("simulate_access", "--out", str(tmp_path / "missing" / "a.jsonl.gz"))
    settings.WAREHOUSE_URL = f"sqlite:///{tmp_path / 'nowhere.sqlite3'}"
    with pytest.raises(CommandError, match=r"Cannot read the warehouse .*nowhere.sqlite3.* `.*seed_demo`"):
        call_command("simulate_access", "--out", out)
    assert not (tmp_path / "access.jsonl.gz").exists()
    assert not (tmp_path / "nowhere.sqlite3").exists()

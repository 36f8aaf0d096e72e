"""Features and rules on a small hand-built hospital: what each feature counts, and when rules stay silent."""

from __future__ import annotations

import datetime as dt
import math
import random
from zoneinfo import ZoneInfo

import pytest

from audit.accesses import Access
from audit.detect import (
    BaselineIntegrityError,
    dump_baseline,
    load_baseline,
    reasons,
    rule_risk,
    score_days,
    train_baselines,
)
from audit.features import (
    DaySummary,
    EventResult,
    FeatureContext,
    GroupIndex,
    History,
    day_features,
    event_features,
)
from audit.relations import NONE, RECENT, TEAM, UNIT, PatientFacts, Relations, StaffFacts

UTC = dt.UTC
ZONE = ZoneInfo("UTC")
DAY = 86_400.0
NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
T = NOW.timestamp()

# Nurse Ann Rowe (staff 1, cardiology, 4 Elm Road). Patients: 101 on her care team; 102 in cardiology
# now; 103 discharged from cardiology 10 days ago; 104 her relative (same address); 105 shares her
# uncommon surname; 106 a colleague (employee); 107 a VIP; 108 herself; 109 died last year; 110-115
# Smiths (a common surname, as is hers for 116); 120-129 strangers in neurology.
STAFF = {
    1: StaffFacts("nurse.rowe", "rowe", "4 elm road", "nurse", "CARD"),
    2: StaffFacts("dr.smith", "smith", "9 oak lane", "clinician", "NEURO"),
    3: StaffFacts("staff3", "ito", "1 main st", "nurse", "NEURO"),
}


def _patient(family: str = "", address: str = "", **kw: object) -> PatientFacts:
    values: dict[str, object] = {
        "family_name": family,
        "address": address,
        "vip": False,
        "employee": False,
        "staff_id": None,
        "died_at": None,
        "diagnoses": frozenset(),
    }
    values.update(kw)
    return PatientFacts(**values)  # type: ignore[arg-type]


def _relations() -> Relations:
    patients = {
        101: _patient("adams"),
        102: _patient("baker"),
        103: _patient("clark"),
        104: _patient("doe", "4 elm road"),
        105: _patient("rowe", "7 pine street"),
        106: _patient("evans", employee=True, staff_id=3),
        107: _patient("ford", vip=True),
        108: _patient("rowe", "4 elm road", employee=True, staff_id=1),
        109: _patient("gray", died_at=T - 365 * DAY),
        **{110 + i: _patient("smith") for i in range(6)},
        **{
            120 + i: _patient(f"n{i}", diagnoses=frozenset({"icd10|i50" if i < 5 else "icd10|c34"}))
            for i in range(10)
        },
    }
    stays = {
        102: {"CARD": [(T - 2 * DAY, math.inf)]},
        103: {"CARD": [(T - 20 * DAY, T - 10 * DAY)]},
        **{120 + i: {"NEURO": [(T - 3 * DAY, math.inf)]} for i in range(10)},
    }
    team = {101: {1: [(T - DAY, math.inf)]}, 105: {1: [(T - DAY, math.inf)]}}
    return Relations(patients=patients, staff=STAFF, stays=stays, team=team)


def _context() -> FeatureContext:
    return FeatureContext(_relations(), {"RP-1": ["icd10|i50"]}, ZONE)


def _access(patients: tuple[int, ...] = (), at: dt.datetime = NOW, **kw: object) -> Access:
    values: dict[str, object] = {
        "seq": 1,
        "at": at,
        "username": "nurse.rowe",
        "role": "nurse",
        "department": "CARD",
        "staff_id": 1,
        "patients": patients,
        "patients_count": len(patients),
        "rows": len(patients),
        "tables": ("labevents",),
        "columns": ("labevents.valuenum",),
        "client_addr": "10.3.0.5",
        "user_agent": "ward-pc",
        "question": "latest potassium",
    }
    values.update(kw)
    return Access(**values)  # type: ignore[arg-type]


def _warm(days: int = 10, hours: tuple[int, ...] = tuple(range(8, 18)), **seen: object) -> History:
    summaries = []
    for back in range(1, days + 1):
        day = NOW.date() - dt.timedelta(days=back)
        week_hours = [day.weekday() * 24 + h for h in hours]
        summaries.append(
            DaySummary(
                day,
                {"queries": 10.0, "patients": 4.0, "unrelated": 0.0},
                {
                    "tables": ["labevents"],
                    "columns": ["labevents.valuenum"],
                    "devices": ["10.3.0.5|ward-pc"],
                    "hours": week_hours,
                    "unrelated": list(seen.get("unrelated", [])) if back == 1 else [],  # type: ignore[call-overload]
                },
            )
        )
    return History.of(summaries)


def test_relationship_levels_follow_the_care_team_and_the_departments_stays() -> None:
    relations = _relations()
    assert relations.relation(1, "CARD", 101, T) == TEAM
    assert relations.relation(1, "CARD", 102, T) == UNIT
    assert relations.relation(1, "CARD", 103, T) == RECENT
    assert relations.relation(1, "CARD", 103, T + 25 * DAY) == NONE  # 35 days after discharge
    assert relations.relation(1, "CARD", 120, T) == NONE
    assert relations.relation(2, "NEURO", 120, T) == UNIT


@pytest.mark.parametrize(
    ("subject", "codes"),
    [
        (104, ["family_address"]),
        (105, []),  # shares her surname but she is on the care team: silenced
        (106, ["coworker"]),
        (107, ["vip"]),
        (108, ["self"]),
        (109, ["deceased"]),
        (110, []),  # a Smith: a common surname proves nothing
        (102, []),
        (120, []),
    ],
)
def test_relationship_flags_fire_only_without_a_treatment_relationship(
    subject: int, codes: list[str]
) -> None:
    result = event_features(_access((subject,)), _context(), History.of([]), [])
    assert sorted(flag.code for flag in result.flags if not flag.silenced) == codes


def test_a_flag_in_the_users_own_department_is_kept_but_silenced() -> None:
    relations = _relations()
    relations.stays[107] = {"CARD": [(T - DAY, math.inf)]}  # the VIP is on her ward
    context = FeatureContext(relations, {}, ZONE)
    result = event_features(_access((107,)), context, History.of([]), [])
    assert [(flag.code, flag.silenced) for flag in result.flags] == [("vip", True)]
    assert rule_risk(result.flags) == 0.0


def test_unrelated_patients_and_departments_are_counted_for_clinical_roles_only() -> None:
    context = _context()
    nurse = event_features(_access((101, 102, 120, 121, 122)), context, History.of([]), [])
    assert nurse.unrelated == [120, 121, 122]
    assert nurse.features["departments"] == 1.0  # neurology, beyond her own
    researcher = event_features(
        _access((120, 121, 125), role="researcher", staff_id=None, department="", project="RP-1"),
        context,
        History.of([]),
        [],
    )
    assert researcher.unrelated == []
    assert researcher.features["out_of_cohort"] == 1.0  # 125 has lung cancer, the cohort heart failure


def test_habits_are_judged_only_after_a_warm_up() -> None:
    context = _context()
    night = NOW.replace(hour=3)
    cold = event_features(_access((101,), at=night), context, _warm(days=2), [])
    warm = event_features(_access((101,), at=night), context, _warm(days=10), [])
    usual = event_features(_access((101,), at=NOW), context, _warm(days=10), [])
    assert (cold.features["rare_hour"], warm.features["rare_hour"], usual.features["rare_hour"]) == (0, 1, 0)
    assert warm.features["night"] == 1.0
    new = event_features(_access((101,), client_addr="10.9.9.9"), context, _warm(), [])
    assert new.features["new_device"] == 1.0
    assert event_features(_access((101,)), context, _warm(), []).features["new_device"] == 0.0


def test_a_second_device_within_half_an_hour_is_concurrent() -> None:
    context = _context()
    first = _access((101,))
    earlier = [(first, event_features(first, context, _warm(), []))]
    near = _access((102,), at=NOW + dt.timedelta(minutes=10), client_addr="10.7.0.1", user_agent="other")
    far = _access((102,), at=NOW + dt.timedelta(hours=2), client_addr="10.7.0.1", user_agent="other")
    assert event_features(near, context, _warm(), earlier).features["concurrent_device"] == 1.0
    assert event_features(far, context, _warm(), earlier).features["concurrent_device"] == 0.0


def test_rephrasing_a_refused_question_is_noticed() -> None:
    context = _context()
    refused = _access(status="denied", question="what is the home address of patient 104")
    earlier = [(refused, event_features(refused, context, _warm(), []))]
    again = _access(at=NOW + dt.timedelta(minutes=2), question="show the address where patient 104 lives")
    other = _access(at=NOW + dt.timedelta(minutes=2), question="latest potassium for bed 4")
    late = _access(at=NOW + dt.timedelta(hours=1), question="address of patient 104 please")
    assert event_features(again, context, _warm(), earlier).features["rephrase"] == 1.0
    assert event_features(again, context, _warm(), earlier).features["lookup"] == 1.0
    assert event_features(other, context, _warm(), earlier).features["rephrase"] == 0.0
    assert event_features(late, context, _warm(), earlier).features["rephrase"] == 0.0


def test_unrelated_patients_accumulate_over_the_week_and_month() -> None:
    context = _context()
    events = [(a, event_features(a, context, _warm(unrelated=[120, 121]), [])) for a in [_access((121, 122))]]
    features, seen = day_features(NOW.date(), events, _warm(unrelated=[120, 121]), group_users=0)
    assert features["unrelated"] == 2.0
    assert features["unrelated_week"] == 3.0  # 120, 121 yesterday; 121, 122 today
    assert seen["unrelated"] == [121, 122]


def test_the_group_index_counts_other_departments_sharing_unrelated_patients() -> None:
    group = GroupIndex()
    day = NOW.date()
    group.add("a", "CARD", day, [120, 121, 122, 123])
    group.add("b", "ONC", day - dt.timedelta(days=2), [120, 121, 122])
    group.add("c", "CARD", day, [120, 121, 122])  # same department as a: a shared ward round, not a ring
    group.add("d", "SURG", day - dt.timedelta(days=9), [120, 121, 122])  # too long ago
    group.add("e", "PEDS", day, [120, 130, 131])  # only one patient in common
    assert group.others("a", "CARD", day, [120, 121, 122, 123]) == 1


def _normal_day(rng: random.Random) -> dict[str, float]:
    return {
        "queries": float(rng.randint(5, 30)),
        "patients": float(rng.randint(2, 12)),
        "max_patients": float(rng.randint(1, 10)),
        "rows": float(rng.randint(20, 400)),
        "unrelated": float(rng.random() < 0.05),
        "rare_hour_events": 0.0,
        "devices": 1.0,
    }


def test_the_baseline_calibrates_to_the_budget_and_explains_against_peers() -> None:
    rng = random.Random(3)
    training = [("nurse", f"u{i % 40}", _normal_day(rng)) for i in range(2000)]
    baselines = train_baselines(training, budget=5, seed=0)
    baseline = baselines["nurse"]
    held_out = [_normal_day(rng) for _ in range(4000)]
    alerts = sum(score.baseline_alert for score in score_days(baseline, held_out))
    assert alerts <= 4000 * 10 / 1000  # budget 5 per 1,000, within sampling noise
    strange = dict(_normal_day(rng), unrelated=25.0, rare_hour_events=6.0)
    [score] = score_days(baseline, [strange])
    assert score.baseline_alert
    assert (score.percentile or 0.0) > 99.5
    found = reasons(score, [], role_label="nurses")
    assert [reason["code"] for reason in found[:2]] == ["unrelated", "rare_hour_events"]
    assert found[0]["text"].startswith(
        "25 patients with no care relationship at the time (nurses' median day: 0;"
    )


def test_small_roles_fall_back_to_the_pooled_baseline_and_nothing_to_rules_only() -> None:
    rng = random.Random(4)
    days = [("nurse", f"u{i % 40}", _normal_day(rng)) for i in range(300)]
    days += [("administrator", "boss", _normal_day(rng)) for _ in range(20)]
    baselines = train_baselines(days, budget=5)
    assert sorted(baselines) == ["*", "nurse"]
    assert train_baselines(days[:40], budget=5) == {}


def test_a_stored_baseline_is_refused_when_its_bytes_were_changed() -> None:
    rng = random.Random(5)
    baseline = train_baselines([("nurse", "u", _normal_day(rng)) for _ in range(300)], budget=5)["nurse"]
    blob, signature = dump_baseline(baseline)
    assert load_baseline(blob, signature).samples == 300
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(BaselineIntegrityError):
        load_baseline(tampered, signature)


def test_event_results_are_plain_data() -> None:
    result = event_features(_access((104,)), _context(), History.of([]), [])
    assert isinstance(result, EventResult)
    assert all(isinstance(value, float) for value in result.features.values())

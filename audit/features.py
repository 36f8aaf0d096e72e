"""Features of accesses and of user-days, each read against the user's own last 30 days.

An event's features say what it touched and how it stands to the user's care relationships and habits
(unrelated patients, relationship flags, a rare hour, a new device, a rephrased refused question). A
user-day adds them up and sets them against the user's own 7- and 30-day context and against other users
(patients several users pulled without a care relationship). The same functions run in production (on
audit events, `audit.pipeline`) and on simulated traffic (`audit.evaluate`): what is measured is what runs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from zoneinfo import ZoneInfo

from audit.accesses import Access
from audit.relations import NONE, RECENT, UNIT, PatientFacts, Relations, StaffFacts

# A user's context: this many days back. Slow exfiltration is counted over the last week and month.
CONTEXT_DAYS: Final = 30
WEEK_DAYS: Final = 7
# Hours of the week at which the user has worked on fewer than this share of their active days are
# "outside their pattern" (a 12-hour night shift once a month is inside; 3 a.m. on a day off is not).
RARE_HOUR_SHARE: Final = 0.02
# Habits are not judged before this many active days (cold start): a new user has no pattern yet.
MIN_HISTORY_DAYS: Final = 5
# A question within this many minutes of a refused or masked one, sharing this much of its wording,
# is a rephrasing of it.
REPHRASE_MINUTES: Final = 15
REPHRASE_OVERLAP: Final = 0.3
# Rephrasings and second devices are looked for among at most this many earlier accesses of the day: a
# burst of hundreds in a minute (a script, a replayed backlog) must not cost hundreds squared.
LOOKBACK: Final = 50
# Two devices used by one account within this many minutes: a second person, or a forgotten session.
CONCURRENT_MINUTES: Final = 30
# A department head's relationship reaches every patient the department has had within this many days.
HEAD_REACH_DAYS: Final = 365
# A surname held by more than this share of patients says little on its own (Smith, Garcia).
COMMON_SURNAME_SHARE: Final = 0.004
# Patients several users pulled without a care relationship, within the last week: another user counts
# when they share at least this many such patients with this user.
GROUP_MIN_SHARED: Final = 3

# The language of lookups aimed at a person rather than at care: names, homes, phone numbers.
_LOOKUP_WORDS: Final = re.compile(
    r"\b(address(es)?|home|lives?|living|phone|telephone|mobile|e-?mail|contact|next of kin|named?|"
    r"called|surname|family name|date of birth|dob|national id|id number|identity|passport|ssn|mrn|"
    r"unmask(ed)?|digits|who is|where does)\b",
    re.IGNORECASE,
)
_TOKEN: Final = re.compile(r"[a-z0-9]+")
_STOP: Final = frozenset(
    {"a", "an", "the", "of", "for", "to", "in", "on", "at", "by", "with", "and", "or", "is", "are", "was"}
    | {"were", "what", "which", "who", "me", "show", "list", "please", "patient", "patients"}
)

# The user-day features, in the order the baselines read them.
DAY_FEATURES: Final[tuple[str, ...]] = (
    "queries",
    "patients",
    "max_patients",
    "rows",
    "exports",
    "export_rows",
    "identifiers",
    "denials",
    "masked",
    "unrelated",
    "unrelated_share",
    "recent_only",
    "departments",
    "new_tables",
    "new_columns",
    "rare_hour_events",
    "rare_hour_unrelated",
    "rare_hour_lookups",
    "night_events",
    "new_devices",
    "devices",
    "concurrent_devices",
    "lookups",
    "rephrases",
    "breakglass",
    "unrelated_week",
    "unrelated_month",
    "group_users",
    "out_of_cohort",
    "volume_vs_own",
    "unrelated_vs_own",
    "relationship_flags",
    "relatives",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Flag:
    """A relationship that makes an access suspect on its face, unless treatment explains it."""

    code: str  # self, family_address, family_surname, coworker, vip, deceased
    subject_id: int
    # Some relationship explains the access: the care team, a stay in the user's department now or
    # within RECENT_DAYS. Only flags without any relationship raise alerts on their own.
    silenced: bool


@dataclasses.dataclass(slots=True)
class EventResult:
    features: dict[str, float]
    flags: list[Flag]
    unrelated: list[int]  # patients with no care relationship at the time
    device: str = ""  # device_of(access), "" when the access carries neither address nor browser


@dataclasses.dataclass(slots=True)
class DaySummary:
    """What one past day of a user leaves for the next days' context (UserDay.features and .seen)."""

    day: dt.date
    features: dict[str, float]
    seen: dict[str, Any]


@dataclasses.dataclass(slots=True)
class History:
    """A user's last CONTEXT_DAYS days before the day being scored."""

    days: list[DaySummary]
    tables: set[str] = dataclasses.field(default_factory=set)
    columns: set[str] = dataclasses.field(default_factory=set)
    devices: set[str] = dataclasses.field(default_factory=set)
    hour_days: Counter[int] = dataclasses.field(default_factory=Counter)  # hour of day -> active days
    active_days: int = 0
    _rare: tuple[bool, ...] = ()  # per hour of day, computed once

    @classmethod
    def of(cls, days: Iterable[DaySummary]) -> History:
        ordered = sorted(days, key=lambda summary: summary.day)
        seen = [summary.seen for summary in ordered]
        history = cls(
            days=ordered,
            tables=set().union(*(day.get("tables", ()) for day in seen)),
            columns=set().union(*(day.get("columns", ()) for day in seen)),
            devices=set().union(*(day.get("devices", ()) for day in seen)),
            active_days=sum(1 for summary in ordered if summary.features.get("queries", 0) > 0),
        )
        for day in seen:
            # Days, not weekdays: with a month of history a weekday is seen four times, too few to say
            # that a day worker's first Sunday is out of pattern.
            history.hour_days.update({int(hour) % 24 for hour in day.get("hours", ())})
        return history

    def warm(self) -> bool:
        return self.active_days >= MIN_HISTORY_DAYS

    def rare_hour(self, hour_of_week: int) -> bool:
        """Outside the user's own pattern: the hour and its neighbours are almost never worked."""
        if not self.warm():
            return False
        if not self._rare:
            least = max(1.0, RARE_HOUR_SHARE * 3 * self.active_days)
            self._rare = tuple(
                sum(self.hour_days[(hour + shift) % 24] for shift in (-1, 0, 1)) < least for hour in range(24)
            )
        return self._rare[hour_of_week % 24]

    def unrelated_since(self, day: dt.date, days: int) -> set[int]:
        first = day - dt.timedelta(days=days - 1)
        found: set[int] = set()
        for summary in self.days:
            if summary.day >= first:
                found.update(int(p) for p in summary.seen.get("unrelated", ()))
        return found

    def median(self, feature: str) -> float:
        values = [
            summary.features.get(feature, 0.0) for summary in self.days if summary.features.get("queries")
        ]
        return statistics.median(values) if values else 0.0


def hour_of_week(at: dt.datetime, zone: ZoneInfo) -> int:
    local = at.astimezone(zone)
    return local.weekday() * 24 + local.hour


def local_day(at: dt.datetime, zone: ZoneInfo) -> dt.date:
    return at.astimezone(zone).date()


_VERSION: Final = re.compile(r"\d+(?:[._]\d+)*")


def device_of(access: Access) -> str:
    """The workstation and browser, without version numbers: a fleet's browser update is no new device."""
    return f"{access.client_addr}|{_browser(access.user_agent)}"


@functools.lru_cache(maxsize=4096)
def _browser(user_agent: str) -> str:
    return _VERSION.sub("", user_agent)


def _tokens(text: str) -> set[str]:
    return {token for token in _TOKEN.findall(text.lower()) if token not in _STOP}


def _similar(first: str, second: str) -> bool:
    a, b = _tokens(first), _tokens(second)
    if not a or not b:
        return False
    return len(a & b) / len(a | b) >= REPHRASE_OVERLAP


class FeatureContext:
    """What every feature needs besides the user's own history: the warehouse, cohorts, the clock's zone."""

    def __init__(
        self,
        relations: Relations,
        cohorts: Mapping[str, Sequence[str]],
        zone: ZoneInfo,
    ) -> None:
        self.relations = relations
        self.cohorts = {code: tuple(prefixes) for code, prefixes in cohorts.items() if prefixes}
        self.zone = zone
        surnames = Counter(facts.family_name for facts in relations.patients.values() if facts.family_name)
        limit = max(2, int(COMMON_SURNAME_SHARE * max(1, len(relations.patients))))
        self.common_surnames = {name for name, count in surnames.items() if count > limit}
        self._cohort_members: dict[str, frozenset[int]] = {}
        # Patients any flag could concern whoever looks: protected, employed here, deceased.
        self._special = frozenset(
            subject
            for subject, facts in relations.patients.items()
            if facts.vip or facts.employee or facts.staff_id is not None or facts.died_at is not None
        )
        self._relatives: dict[int, frozenset[int]] = {}
        self._departments: dict[tuple[int, int], frozenset[str]] = {}

    def relatives_of(self, staff_id: int | None) -> frozenset[int]:
        """Patients sharing the member of staff's surname (however common) or address."""
        if staff_id is None:
            return frozenset()
        found = self._relatives.get(staff_id)
        if found is None:
            member = self.relations.staff.get(staff_id)
            found = frozenset(
                subject
                for subject, facts in self.relations.patients.items()
                if member is not None and _related(member, facts)
            )
            self._relatives[staff_id] = found
        return found

    def may_flag(self, subject_id: int, relatives: frozenset[int]) -> bool:
        return subject_id in self._special or subject_id in relatives

    def outside_cohort(self, project: str, patients: Iterable[int]) -> int:
        """How many of the patients fall outside the project's approved cohort (0 without a cohort)."""
        prefixes = self.cohorts.get(project)
        if not prefixes:
            return 0
        members = self._cohort_members.get(project)
        if members is None:
            relations = self.relations
            members = frozenset(s for s in relations.patients if relations.in_cohort(s, prefixes))
            self._cohort_members[project] = members
        return sum(1 for subject_id in patients if subject_id not in members)

    def departments_of(self, subject_id: int, at: float) -> frozenset[str]:
        """The patient's departments around `at`, remembered per patient and day (asked once per access)."""
        key = (subject_id, int(at // 86_400))
        found = self._departments.get(key)
        if found is None:
            if len(self._departments) > 500_000:
                self._departments.clear()
            found = self._departments[key] = frozenset(self.relations.departments_of(subject_id, at))
        return found

    def flags(self, access: Access, subject_id: int, relation: int, at: float) -> list[Flag]:
        patient = self.relations.patients.get(subject_id)
        if patient is None:
            return []
        silenced = relation >= RECENT
        found: list[Flag] = []
        member = self.relations.staff.get(access.staff_id) if access.staff_id is not None else None
        if access.staff_id is not None and patient.staff_id == access.staff_id:
            found.append(Flag("self", subject_id, silenced))
        elif member is not None:
            if member.address and patient.address == member.address:
                found.append(Flag("family_address", subject_id, silenced))
            elif (
                member.family_name
                and patient.family_name == member.family_name
                and member.family_name not in self.common_surnames
            ):
                found.append(Flag("family_surname", subject_id, silenced))
            elif patient.employee:
                found.append(Flag("coworker", subject_id, silenced))
        elif patient.employee and patient.staff_id is not None:
            found.append(Flag("coworker", subject_id, silenced))
        if patient.vip:
            found.append(Flag("vip", subject_id, silenced))
        if patient.died_at is not None and patient.died_at < at - 86_400 and relation == NONE:
            found.append(Flag("deceased", subject_id, silenced))
        return found


def _related(member: StaffFacts, patient: PatientFacts | None) -> bool:
    """Same surname (however common) or same address: a relative, perhaps."""
    if patient is None or (patient.staff_id is not None and patient.family_name == member.family_name):
        return False  # a colleague who is a patient is the coworker flag's matter
    same_name = bool(member.family_name) and patient.family_name == member.family_name
    return same_name or (bool(member.address) and patient.address == member.address)


def event_features(
    access: Access, context: FeatureContext, history: History, earlier: Sequence[tuple[Access, EventResult]]
) -> EventResult:
    """One access, against the user's history and the accesses earlier the same day (oldest first)."""
    relations = context.relations
    # Care relationships as of the moment the answer was given (a frozen extract answers as of its own).
    at = (access.as_of or access.at).timestamp()
    unrelated: list[int] = []
    recent = 0
    relatives = 0
    flags: list[Flag] = []
    departments: set[str] = set()
    clinical = access.role in ("clinician", "nurse", "department_head")
    kin = context.relatives_of(access.staff_id) if clinical else frozenset()
    head = access.role == "department_head" and bool(access.department)
    for subject_id in access.patients:
        relation = relations.relation(access.staff_id, access.department, subject_id, at)
        # A head of department answers for every patient the department has had this year.
        if (
            relation == NONE
            and head
            and relations.stayed_in(subject_id, access.department, at, HEAD_REACH_DAYS)
        ):
            relation = RECENT
        departments.update(context.departments_of(subject_id, at))
        # Researchers see pseudonyms and administrators counts: care relationships are a clinical matter.
        if clinical:
            if relation == NONE:
                unrelated.append(subject_id)
            elif relation == RECENT:
                recent += 1
            if context.may_flag(subject_id, kin):
                flags.extend(context.flags(access, subject_id, relation, at))
            if relation < UNIT and subject_id in kin:
                relatives += 1
    outside_cohort = (
        context.outside_cohort(access.project, access.patients) if access.role == "researcher" else 0
    )
    device = device_of(access) if access.client_addr or access.user_agent else ""
    devices_today = {result.device for _, result in earlier if result.device}
    concurrent = False
    for before, result in reversed(earlier[-LOOKBACK:]):
        if (access.at - before.at).total_seconds() > CONCURRENT_MINUTES * 60:
            break
        if device and result.device and result.device != device:
            concurrent = True
            break
    rephrase = False
    if access.question:
        for before, result in reversed(earlier[-LOOKBACK:]):
            if (access.at - before.at).total_seconds() > REPHRASE_MINUTES * 60:
                break
            refused = (
                before.status in ("denied", "abstained") or result.features.get("masked_answer", 0.0) > 0
            )
            if refused and before.question and _similar(before.question, access.question):
                rephrase = True
                break
    hour = hour_of_week(access.at, context.zone)
    local_hour = hour % 24
    question = access.kind in ("question", "export")
    rare = question and history.rare_hour(hour)
    lookup = question and bool(_LOOKUP_WORDS.search(access.question or ""))
    features = {
        "question": 1.0 if question else 0.0,
        "patients": float(max(len(access.patients), access.patients_count)),
        "rows": float(access.rows),
        "export": 1.0 if access.kind == "export" else 0.0,
        "identifiers": float(access.identifiers_shown),
        "denied": 1.0 if question and access.status == "denied" else 0.0,
        "masked_answer": 1.0 if question and access.masked else 0.0,
        "unrelated": float(len(unrelated)),
        "recent_only": float(recent),
        "departments": float(len(departments - {access.department} if access.department else departments)),
        "new_tables": float(len(set(access.tables) - history.tables)) if history.warm() else 0.0,
        "new_columns": float(len(set(access.columns) - history.columns)) if history.warm() else 0.0,
        "rare_hour": 1.0 if rare else 0.0,
        "rare_hour_unrelated": float(len(unrelated)) if rare else 0.0,
        "rare_hour_lookups": 1.0 if rare and lookup else 0.0,
        "relatives": float(relatives),
        "night": 1.0 if question and local_hour < 6 else 0.0,
        "new_device": 1.0
        if history.warm() and device and device not in history.devices and device not in devices_today
        else 0.0,
        "concurrent_device": 1.0 if concurrent else 0.0,
        "lookup": 1.0 if lookup else 0.0,
        "rephrase": 1.0 if rephrase else 0.0,
        "breakglass": 1.0 if access.breakglass and question else 0.0,
        "out_of_cohort": float(outside_cohort),
        "hour_of_week": float(hour),
    }
    return EventResult(features=features, flags=flags, unrelated=unrelated, device=device)


def day_features(
    day: dt.date,
    events: Sequence[tuple[Access, EventResult]],
    history: History,
    group_users: int,
) -> tuple[dict[str, float], dict[str, Any]]:
    """A user's day: the events added up, set against their history; and what the day leaves behind."""
    feats = [result.features for _, result in events]
    questions = [f for f in feats if f["question"]]

    totals: dict[str, float] = {}
    for f in feats:
        for name, value in f.items():
            totals[name] = totals.get(name, 0.0) + value

    def total(name: str) -> float:
        return totals.get(name, 0.0)

    unrelated_today = {p for _, result in events for p in result.unrelated}
    patients_today = {p for access, _ in events for p in access.patients}
    patients = float(max(len(patients_today), max((f["patients"] for f in questions), default=0.0)))
    devices = {result.device for _, result in events if result.device}
    # Counted on days that add to them only: a day without unrelated patients must not inherit the
    # alert of an earlier one (the earlier day was already scored on them).
    unrelated_week = history.unrelated_since(day, WEEK_DAYS) | unrelated_today if unrelated_today else set()
    unrelated_month = (
        history.unrelated_since(day, CONTEXT_DAYS) | unrelated_today if unrelated_today else set()
    )
    own_patients = history.median("patients")
    own_unrelated = history.median("unrelated")
    flags = {
        (flag.code, flag.subject_id) for _, result in events for flag in result.flags if not flag.silenced
    }
    features = {
        "queries": float(len(questions)),
        "patients": patients,
        "max_patients": max((f["patients"] for f in questions), default=0.0),
        "rows": total("rows"),
        "exports": total("export"),
        "export_rows": float(sum(f["rows"] for f in feats if f["export"])),
        "identifiers": total("identifiers"),
        "denials": total("denied"),
        "masked": total("masked_answer"),
        "unrelated": float(len(unrelated_today)),
        "unrelated_share": len(unrelated_today) / patients if patients else 0.0,
        "recent_only": total("recent_only"),
        "departments": max((f["departments"] for f in feats), default=0.0),
        "new_tables": total("new_tables"),
        "new_columns": total("new_columns"),
        "rare_hour_events": total("rare_hour"),
        "rare_hour_unrelated": total("rare_hour_unrelated"),
        "rare_hour_lookups": total("rare_hour_lookups"),
        "night_events": total("night"),
        "new_devices": total("new_device"),
        "devices": float(len(devices)),
        "concurrent_devices": total("concurrent_device"),
        "lookups": total("lookup"),
        "rephrases": total("rephrase"),
        "breakglass": total("breakglass"),
        "unrelated_week": float(len(unrelated_week)),
        "unrelated_month": float(len(unrelated_month)),
        "group_users": float(group_users),
        "out_of_cohort": total("out_of_cohort"),
        # Against the user's own typical active day (1 = as usual); a cold start compares with itself.
        "volume_vs_own": patients / own_patients if history.warm() and own_patients else 1.0,
        "unrelated_vs_own": (len(unrelated_today) + 1) / (own_unrelated + 1) if history.warm() else 1.0,
        "relationship_flags": float(len(flags)),
        "relatives": total("relatives"),
    }
    hours = sorted({int(f["hour_of_week"]) for f in questions})
    seen = {
        "tables": sorted({t for a, _ in events for t in a.tables}),
        "columns": sorted({c for a, _ in events for c in a.columns}),
        "devices": sorted(devices),
        "hours": hours,
        "unrelated": sorted(unrelated_today),
    }
    return features, seen


def vector(features: Mapping[str, float]) -> list[float]:
    """The baseline's input: every day feature, counts on a log scale so that 1,000 is not 100 x 10."""
    values: list[float] = []
    for name in DAY_FEATURES:
        value = float(features.get(name, 0.0))
        if name in ("unrelated_share",):
            values.append(value)
        else:
            values.append(math.log1p(max(0.0, value)))
    return values


class GroupIndex:
    """Who pulled which patients without a care relationship, over the last week, across users."""

    def __init__(self) -> None:
        self._by_patient: dict[int, dict[str, tuple[str, dt.date]]] = {}

    def add(self, username: str, department: str, day: dt.date, patients: Iterable[int]) -> None:
        for subject_id in patients:
            self._by_patient.setdefault(subject_id, {})[username] = (department, day)

    def others(self, username: str, department: str, day: dt.date, patients: Iterable[int]) -> int:
        """Users of other departments who pulled at least GROUP_MIN_SHARED of these patients this week."""
        first = day - dt.timedelta(days=WEEK_DAYS - 1)
        shared: Counter[str] = Counter()
        for subject_id in patients:
            for other, (their_department, when) in self._by_patient.get(subject_id, {}).items():
                if other != username and when >= first and their_department != department:
                    shared[other] += 1
        return sum(1 for count in shared.values() if count >= GROUP_MIN_SHARED)

    def forget_before(self, day: dt.date) -> None:
        first = day - dt.timedelta(days=WEEK_DAYS - 1)
        for subject_id in list(self._by_patient):
            users = {u: v for u, v in self._by_patient[subject_id].items() if v[1] >= first}
            if users:
                self._by_patient[subject_id] = users
            else:
                del self._by_patient[subject_id]


@dataclasses.dataclass(slots=True)
class DayRead:
    """One user's day as read: its events with their features, the day's features, what it leaves."""

    username: str
    events: list[tuple[Access, EventResult]]
    features: dict[str, float]
    seen: dict[str, Any]


def history_before(days: Iterable[DaySummary], day: dt.date) -> History:
    """The user's context for `day`: their CONTEXT_DAYS days before it."""
    first = day - dt.timedelta(days=CONTEXT_DAYS)
    return History.of(summary for summary in days if first <= summary.day < day)


def read_day(
    day: dt.date,
    accesses: Mapping[str, Sequence[Access]],
    past: Mapping[str, Sequence[DaySummary]],
    group: GroupIndex,
    context: FeatureContext,
) -> list[DayRead]:
    """Every user's `day` at once: first each user's events, then the day features, so that the group
    signal of each user sees every other user's unrelated patients of that day (and of the week in
    `group`). Each user's accesses are in time order; `past` holds their earlier days."""
    events_of: dict[str, tuple[list[tuple[Access, EventResult]], History]] = {}
    for username, items in accesses.items():
        if not items:
            continue
        history = history_before(past.get(username, ()), day)
        events: list[tuple[Access, EventResult]] = []
        for access in items:
            events.append((access, event_features(access, context, history, events)))
        group.add(username, items[0].department, day, {p for _, result in events for p in result.unrelated})
        events_of[username] = (events, history)
    read: list[DayRead] = []
    for username, (events, history) in events_of.items():
        unrelated = {p for _, result in events for p in result.unrelated}
        department = events[0][0].department
        others = group.others(username, department, day, unrelated) if unrelated else 0
        features, seen = day_features(day, events, history, others)
        read.append(DayRead(username, events, features, seen))
    return read


def day_role(events: Sequence[tuple[Access, EventResult]]) -> str:
    """The role the user acted in that day: failed sign-ins carry none."""
    roles = Counter(access.role for access, _ in events if access.role)
    return roles.most_common(1)[0][0] if roles else ""

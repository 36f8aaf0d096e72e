"""One access as the anomaly engine reads it, from the audit store or from a simulated dataset.

The engine (features, baselines, rules) sees only `Access` records, so what it learns and flags on
simulated traffic (`simulate_access`, `audit_eval`) is exactly what it learns and flags in production.
A dataset is JSON Lines, gzip-compressed: a header line {"meta": {...}}, then one access per line with
an optional "scenario" label.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from audit.models import AuditEvent

# Columns holding direct identifiers: shown unmasked, they are what a snooper or an exfiltrator wants.
IDENTIFIER_COLUMNS = frozenset(
    {
        "patient_identity.mrn",
        "patient_identity.national_id",
        "patient_identity.given_name",
        "patient_identity.family_name",
        "patient_identity.birth_date",
        "patient_identity.phone",
        "patient_identity.email",
        "patient_identity.address",
        "patient_identity.postcode",
        "patient_contacts.full_name",
        "patient_contacts.phone",
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class Access:
    """One audited action by one user, reduced to what the anomaly engine needs."""

    seq: int  # the audit event's seq (or the dataset's own running number)
    at: dt.datetime  # aware, UTC
    username: str
    role: str
    department: str = ""
    staff_id: int | None = None
    projects: tuple[str, ...] = ()
    kind: str = "question"  # audit EventKind value
    status: str = "answered"  # audit EventStatus value
    patients: tuple[int, ...] = ()  # subject_ids whose data the answer showed (sorted, distinct)
    patients_count: int = 0  # may exceed len(patients) when the store kept only a count
    rows: int = 0
    tables: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()  # "table.column"
    identifiers_shown: int = 0  # direct-identifier columns shown unmasked
    masked: bool = False  # something in the answer was masked, withheld or suppressed
    question: str = ""
    client_addr: str = ""
    user_agent: str = ""
    breakglass: bool = False
    purpose: str = ""
    project: str = ""  # the research project the question was asked under
    user_id: int | None = None  # the account's id, when the access came from the audit store
    as_of: dt.datetime | None = None  # the warehouse moment the answer was given as of, when not `at`

    def to_json(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict deep-copies every tuple and is most of a dataset's write time.
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        values["at"] = self.at.astimezone(dt.UTC).isoformat()
        values["as_of"] = self.as_of.astimezone(dt.UTC).isoformat() if self.as_of is not None else None
        return values

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> Access:
        known = {field.name for field in dataclasses.fields(cls)}
        data = {key: value for key, value in values.items() if key in known}
        data["at"] = dt.datetime.fromisoformat(str(data["at"])).astimezone(dt.UTC)
        if data.get("as_of"):
            data["as_of"] = dt.datetime.fromisoformat(str(data["as_of"])).astimezone(dt.UTC)
        for name in ("projects", "patients", "tables", "columns"):
            data[name] = tuple(data.get(name) or ())
        return cls(**data)


def access_of(event: AuditEvent) -> Access:
    """The engine's view of an audit event."""
    attributes = event.attributes if isinstance(event.attributes, dict) else {}
    obligations = event.obligations if isinstance(event.obligations, dict) else {}
    details = event.details if isinstance(event.details, dict) else {}
    raw_masks = obligations.get("masks")
    masks: dict[str, Any] = raw_masks if isinstance(raw_masks, dict) else {}
    columns = tuple(str(c) for c in event.columns_touched or ())
    masked = (
        bool(masks)
        or bool(obligations.get("withheld_special"))
        or obligations.get("lane")
        in (
            "aggregate",
            "deidentified",
        )
    )
    staff_id = attributes.get("staff_id")
    return Access(
        seq=event.seq,
        at=event.occurred_at,
        username=event.username,
        role=event.role,
        department=str(attributes.get("department") or ""),
        staff_id=staff_id if isinstance(staff_id, int) else None,
        projects=tuple(str(p) for p in attributes.get("projects") or ()),
        kind=event.kind,
        status=event.status,
        patients=tuple(int(p) for p in event.patients_touched or ()),
        patients_count=event.patients_touched_count,
        rows=event.row_count or 0,
        tables=tuple(str(t) for t in event.tables_touched or ()),
        columns=columns,
        identifiers_shown=sum(1 for c in columns if c in IDENTIFIER_COLUMNS and c not in masks),
        masked=masked or bool(details.get("refused_patients")),
        question=event.question,
        client_addr=event.client_addr,
        user_agent=event.user_agent,
        breakglass=event.breakglass_session_id is not None,
        purpose=event.purpose_of_use,
        project=str(obligations.get("project") or ""),
        user_id=event.user_id,
        as_of=_moment(details.get("as_of")),
    )


def _moment(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def write_dataset(path: Path, meta: Mapping[str, Any], rows: Iterable[tuple[Access, str | None]]) -> int:
    """Write a labelled dataset; returns the number of accesses written."""
    count = 0
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write(json.dumps({"meta": meta}, sort_keys=True) + "\n")
        for access, scenario in rows:
            line = access.to_json()
            line["scenario"] = scenario
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
            count += 1
    return count


def read_dataset(path: Path) -> tuple[dict[str, Any], Iterator[tuple[Access, str | None]]]:
    """The header and an iterator over (access, scenario id or None), in the file's order."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        first = handle.readline()
    try:
        meta = json.loads(first)["meta"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not an access dataset (no header line).") from error

    def accesses() -> Iterator[tuple[Access, str | None]]:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            handle.readline()
            for line in handle:
                if line.strip():
                    values = json.loads(line)
                    yield Access.from_json(values), values.get("scenario")

    return dict(meta), accesses()

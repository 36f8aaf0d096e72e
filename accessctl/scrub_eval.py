"""How well the note scrubber does on generated notes with known identifiers: recall per kind, precision."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from accessctl.scrub import Kind, Names, scrubber
from hisplatform.warehouse.generator import DemoHospital, GeneratedNote, PhiKind

# The generator's span kinds as the scrubber's: a name is a name, whoever it belongs to.
SCRUB_KIND: Final[dict[PhiKind, Kind]] = {
    "PATIENT_NAME": "NAME",
    "RELATIVE_NAME": "NAME",
    "STAFF_NAME": "NAME",
    "MRN": "MRN",
    "NATIONAL_ID": "NATIONAL_ID",
    "PHONE": "PHONE",
    "EMAIL": "EMAIL",
    "ADDRESS": "ADDRESS",
    "LOCATION": "LOCATION",
    "DATE": "DATE",
    "AGE": "AGE",
}
# The generator writes about six notes per patient: a third of that leaves plenty to sample from.
_NOTES_PER_PATIENT: Final = 2
# Leaked identifiers kept per kind in the report, to show what was missed.
_LEAK_EXAMPLES: Final = 5


@dataclass
class Report:
    notes: int = 0
    characters: int = 0
    seconds: float = 0.0  # scrubber time only (analysis of every note), warm
    gold: Counter[str] = field(default_factory=Counter)  # identifiers written into the notes, per kind
    caught: Counter[str] = field(default_factory=Counter)  # of those, every letter and digit covered
    detected: int = 0  # spans the scrubber found
    correct: int = 0  # of those, overlapping an identifier
    leaks: dict[str, list[str]] = field(default_factory=dict)

    @property
    def recall(self) -> dict[str, float]:
        return {kind: self.caught[kind] / total for kind, total in sorted(self.gold.items()) if total}

    @property
    def precision(self) -> float:
        return self.correct / self.detected if self.detected else 1.0

    @property
    def notes_per_second(self) -> float:
        return self.notes / self.seconds if self.seconds else 0.0

    @property
    def mean_length(self) -> float:
        return self.characters / self.notes if self.notes else 0.0


def evaluate(notes: Iterable[GeneratedNote], names_of: Callable[[GeneratedNote], Names]) -> Report:
    """Scrub each note with its deny-list and compare with the identifiers the generator wrote into it.

    An identifier counts as caught only if every letter and digit of it lies inside found spans: one
    character of a name left over is a leak. A found span is correct if it overlaps any identifier.
    """
    batch = list(notes)
    deny_lists = [names_of(note) for note in batch]
    engine = scrubber()
    started = time.perf_counter()
    found = list(engine.analyze_each([note.text for note in batch], deny_lists))
    report = Report(notes=len(batch), seconds=time.perf_counter() - started)
    for note, spans in zip(batch, found, strict=True):
        report.characters += len(note.text)
        covered = bytearray(len(note.text))
        for span in spans:
            covered[span.start : span.end] = b"\x01" * (span.end - span.start)
        for gold in note.spans:
            kind = SCRUB_KIND[gold.kind]
            report.gold[kind] += 1
            if all(covered[i] for i in range(gold.start, gold.end) if note.text[i].isalnum()):
                report.caught[kind] += 1
            else:
                examples = report.leaks.setdefault(kind, [])
                if len(examples) < _LEAK_EXAMPLES:
                    examples.append(note.text[gold.start : gold.end])
        report.detected += len(spans)
        report.correct += sum(
            1 for span in spans if any(span.start < gold.end and gold.start < span.end for gold in note.spans)
        )
    return report


def hospital_names(hospital: DemoHospital) -> Callable[[GeneratedNote], Names]:
    """The deny-list `deny_list_for` would read for one note, from the generator's own data."""
    staff = Names.of(name for member in hospital.staff for name in (member.given, member.family))
    patients = {patient.subject_id: patient for patient in hospital.patients}

    def names_of(note: GeneratedNote) -> Names:
        patient = patients[note.subject_id]
        return staff | Names.of(
            [patient.given, patient.family, *(contact.full_name for contact in patient.contacts)]
        )

    return names_of


def sample_notes(
    count: int, *, seed: int, reference_date: dt.date
) -> tuple[list[GeneratedNote], Callable[[GeneratedNote], Names]]:
    """`count` notes drawn (seeded) from a demo hospital's, with the deny-list of each."""
    hospital = DemoHospital(
        patients=max(50, count // _NOTES_PER_PATIENT), seed=seed, reference_date=reference_date
    )
    every = list(hospital.notes())
    drawn = random.Random(seed).sample(every, min(count, len(every)))  # noqa: S311  # reproducible, not secret
    return drawn, hospital_names(hospital)

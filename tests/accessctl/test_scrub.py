"""Note scrubbing: quality on generated notes, exact output for a hand-written one, the deny-list read
from the warehouse, and no network while doing it."""

from __future__ import annotations

import re
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
import tldextract

from accessctl import scrub
from accessctl.scrub import Found, Names, Scrubber, deny_list_for, scrubber
from accessctl.scrub_eval import evaluate, sample_notes
from hisplatform.warehouse.generator import DemoHospital
from hisplatform.warehouse.targets import WarehouseTarget
from tests.conftest import REFERENCE_DATE

NOTE = """ADMISSION NOTE
Patient: Rose Okafor    MRN: MRN00412345    DOB: 03/14/1931
National ID: 32010219310314002X
Ms. Okafor is a 94-year-old woman admitted on 11/20/2026 with pneumonia. Overnight her temperature rose to \
38.9 C; Rose reports chills.
Her daughter Amara Okafor (617-555-0142, amara.okafor@example.com) lives at 42 Beacon Street, Boston, \
MA 02108.
Discussed with Dr. Grace Carter. Electronically signed by Wei Chen, MD."""
NOTE_NAMES = Names.of(["Rose", "Okafor", "Amara Okafor", "Grace", "Carter", "Wei", "Chen"])
SCRUBBED = """ADMISSION NOTE
Patient: [NAME]    MRN: [MRN]    DOB: [DATE]
National ID: [ID]
[NAME] is a 90+-year-old woman admitted on [DATE] with pneumonia. Overnight her temperature rose to \
38.9 C; [NAME] reports chills.
Her daughter [NAME] ([PHONE], [EMAIL]) lives at [ADDRESS], [LOCATION], \
MA [POSTCODE].
Discussed with [NAME]. Electronically signed by [NAME], MD."""


def test_the_goals_hold_on_300_generated_notes() -> None:
    notes, names_of = sample_notes(300, seed=7, reference_date=REFERENCE_DATE)
    report = evaluate(notes, names_of)
    assert report.notes == 300
    # Every kind the generator writes occurs, so no recall below is a vacuous 100%.
    assert set(report.gold) == {
        "NAME", "MRN", "NATIONAL_ID", "PHONE", "EMAIL", "ADDRESS", "LOCATION", "DATE", "AGE",
    }  # fmt: skip
    recall = report.recall
    assert {kind: recall[kind] >= 0.98 for kind in ("NAME", "MRN", "NATIONAL_ID", "PHONE")} == {
        "NAME": True,
        "MRN": True,
        "NATIONAL_ID": True,
        "PHONE": True,
    }, report.leaks
    assert report.precision >= 0.85


def test_a_hand_written_note_is_scrubbed_tag_by_tag() -> None:
    assert scrubber().scrub(NOTE, names=NOTE_NAMES) == SCRUBBED


def test_what_analyze_finds_is_what_scrub_replaces() -> None:
    text = "Seen by Dr. Grace Carter on 11/20/2026; call 617-555-0142."
    found = scrubber().analyze(text, names=NOTE_NAMES)
    assert [(f.kind, text[f.start : f.end]) for f in found] == [
        ("NAME", "Dr. Grace Carter"),
        ("DATE", "11/20/2026"),
        ("PHONE", "617-555-0142"),
    ]
    assert all(isinstance(f, Found) and 0.8 <= f.score <= 1.0 for f in found)
    assert scrubber().scrub(text, names=NOTE_NAMES) == "Seen by [NAME] on [DATE]; call [PHONE]."


def test_scrubbing_keeps_the_layout_around_a_tag() -> None:
    # The model reads "Anderson    " (with the spaces) as a person; the spaces are not part of the name.
    text = "PROGRESS NOTE - hospital day 4\nPatient: Mehmet Anderson    MRN: MRN14103442    DOB: 04/19/1992"
    assert scrubber().scrub(text, names=Names.of(["Mehmet", "Anderson"])) == (
        "PROGRESS NOTE - hospital day 4\nPatient: [NAME]    MRN: [MRN]    DOB: [DATE]"
    )


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        (
            "Pt is a 102 yo male, aged 91; 93 y/o; 95 years old; 89-year-old sister; 45 year old son.",
            "Pt is a 90+ yo male, aged 90+; 90+ y/o; 90+ years old; 89-year-old sister; 45 year old son.",
        ),
        (
            "DOB 3/4/31. Seen on March 3, 2024 and 3rd of March 2024; f/u Jan 2025; 2024-03-05 labs.",
            "DOB [DATE]. Seen on [DATE] and [DATE]; f/u [DATE]; [DATE] labs.",
        ),
        (
            "Call (617) 555-0142 or +44 20 7946 0958 or 617.555.0142 ext 23.",
            "Call [PHONE] or [PHONE] or [PHONE].",
        ),
        (
            "Lives at 1200 Commonwealth Ave., Boston, MA 02134. Zip: 02134. PO Box 77.",
            "Lives at [ADDRESS], [LOCATION], MA [POSTCODE]. Zip: [POSTCODE]. [ADDRESS].",
        ),
        (
            "National ID 11010119900307777X; MRN: 12345678; medical record number 87654321.",
            "National ID [ID]; MRN: [MRN]; medical record number [MRN].",
        ),
        ("Email js@intranet.local or ana@example.org.", "Email [EMAIL] or [EMAIL]."),
        (
            "Na 135, K 4.1, Cr 1.2, WBC 12.3, BP 120/80, HR 88, 5 mg/kg, Hb 9.1 on 2 L.",
            "Na 135, K 4.1, Cr 1.2, WBC 12.3, BP 120/80, HR 88, 5 mg/kg, Hb 9.1 on 2 L.",
        ),
        (
            "Referred by Dr. Alan Fitzgerald; went to Chicago to visit her sister Mary Johnson.",
            "Referred by [NAME]; went to [LOCATION] to visit her sister [NAME].",
        ),
    ],
)
def test_formats_beyond_the_generated_notes(text: str, scrubbed: str) -> None:
    """Without a deny-list: the patterns and the model's own people and places."""
    assert scrubber().scrub(text, names=Names()) == scrubbed


def test_names_are_matched_as_written_or_in_capitals_never_in_lower_case() -> None:
    names = Names.of(["Rose", "Mark", "Hill"])
    text = "ROSE HILL: temperature rose; mark the site. Rose Hill agrees; Mark called."
    assert scrubber().scrub(text, names=names) == (
        "[NAME]: temperature rose; mark the site. [NAME] agrees; [NAME] called."
    )


def test_names_keep_whole_names_and_their_words() -> None:
    names = Names.of(["Li Na", "Maria  Lopez", None, "X", "O\u2019Brien", "Li Na"])
    assert names.words == {"Li Na", "Maria Lopez", "Maria", "Lopez", "O'Brien"}
    assert (
        scrubber().scrub("Li Na and Mrs O\u2019Brien, Na 135.", names=names) == "[NAME] and [NAME], Na 135."
    )


def test_scrub_many_keeps_none_and_blank_and_matches_scrub() -> None:
    texts = [NOTE, None, "", "   ", "No identifiers here."]
    assert scrubber().scrub_many(texts, names=NOTE_NAMES) == [
        SCRUBBED,
        None,
        "",
        "   ",
        "No identifiers here.",
    ]


def test_the_deny_list_is_read_from_the_warehouse(sqlite_warehouse: WarehouseTarget) -> None:
    scrub.clear_staff_cache()
    hospital = DemoHospital(patients=200, seed=7, reference_date=REFERENCE_DATE)
    first, second = hospital.patients[0], hospital.patients[1]
    expected = Names.of(
        [
            first.given,
            first.family,
            *(contact.full_name for contact in first.contacts),
            second.given,
            second.family,
            *(contact.full_name for contact in second.contacts),
            *(name for member in hospital.staff for name in (member.given, member.family)),
        ]
    )
    names = deny_list_for(sqlite_warehouse, [second.subject_id, first.subject_id, first.subject_id])
    assert names == expected
    assert {"Grace", "Carter", first.given, first.family} <= names.words  # dr.carter is staff
    # Without patients only the staff remain; again, from the cache.
    staff = deny_list_for(sqlite_warehouse, [])
    assert staff == Names.of(name for member in hospital.staff for name in (member.given, member.family))


def test_deny_list_takes_only_integers(sqlite_warehouse: WarehouseTarget) -> None:
    with pytest.raises(ValueError, match="invalid literal for int"):
        deny_list_for(sqlite_warehouse, ["1) OR (1=1"])  # type: ignore[list-item]


@pytest.fixture
def network_attempts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every connection or name lookup is refused and recorded."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args[:2]))
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_the_guard_sees_the_suffix_list_download(network_attempts: list[str]) -> None:
    """tldextract's default extractor (what Presidio's own e-mail recogniser uses) goes to the network."""
    fetching = tldextract.TLDExtract(
        suffix_list_urls=tldextract.tldextract.PUBLIC_SUFFIX_LIST_URLS, cache_dir=None
    )
    assert fetching("amara.okafor@example.com").fqdn == "example.com"  # from the snapshot, after failing
    assert network_attempts


def test_building_and_scrubbing_needs_no_network(network_attempts: list[str]) -> None:
    fresh = Scrubber()  # loads the model and a new suffix-list extractor under the guard
    assert fresh.scrub(NOTE, names=NOTE_NAMES) == SCRUBBED
    assert "[EMAIL]" in SCRUBBED
    assert network_attempts == []


def test_the_process_builds_one_scrubber_whatever_the_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scrub, "_scrubber", None)
    with ThreadPoolExecutor(4) as pool:
        built = list(pool.map(lambda _: scrubber(), range(8)))
    assert len({id(engine) for engine in built}) == 1


def test_generated_notes_mark_ages_over_89_and_only_those() -> None:
    notes, _ = sample_notes(300, seed=7, reference_date=REFERENCE_DATE)
    marked = [note.text[s.start : s.end] for note in notes for s in note.spans if s.kind == "AGE"]
    stated = [match.group(1) for note in notes for match in re.finditer(r"\b(\d+)-year-old", note.text)]
    assert marked
    assert sorted(marked) == sorted(age for age in stated if int(age) >= 90)


def test_whole_names_are_found_however_they_are_typed() -> None:
    from accessctl.scrub import Names, scrubber

    names = Names.of(["Hope Bishop", "Mark Fischer"])
    text = "Spoke with daughter hope bishop and son, MARK FISCHER; hope for discharge tomorrow."
    assert scrubber().scrub(text, names=names) == (
        "Spoke with daughter [NAME] and son, [NAME]; hope for discharge tomorrow."
    )

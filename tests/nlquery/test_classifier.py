"""The family classifier: what it reads, how it composes shape and event, and how it is rebuilt."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from hisplatform.warehouse.targets import warehouse_target
from nlquery import classifier
from nlquery.matcher import ValueMatcher, value_matcher
from nlquery.reading import read_question
from tests.conftest import SHARED

EHRSQL = SHARED / "benchmarks" / "ehrsql"


@pytest.fixture(scope="module")
def matcher() -> ValueMatcher:
    if not (EHRSQL / "mimic_iv.sqlite").exists():
        pytest.skip(f"EHRSQL benchmark not found at {EHRSQL} (../shared is absent)")
    return value_matcher(warehouse_target(f"sqlite:///{EHRSQL / 'mimic_iv.sqlite'}"))


def test_the_shape_is_read_without_the_value_or_the_event(matcher: ValueMatcher) -> None:
    found = read_question("What was the last potassium of patient 10018081 since 3 months ago?", matcher)
    features = classifier.featurise(found)
    assert "potassium" not in features.shape
    assert "10018081" not in features.shape
    assert "VALUE" in features.shape.split()
    assert "TIME_REL" in features.shape.split()
    drugs = classifier.featurise(read_question("when was the last medication of patient 10018081?", matcher))
    assert "EVENT" in drugs.shape.split()
    assert "medication" not in drugs.shape
    assert drugs.cues == {"drug": 1}
    assert "medication" in drugs.event  # the event model still reads the words


def test_an_event_learned_elsewhere_composes_with_a_shape(matcher: ValueMatcher) -> None:
    # The training split has no top-k question about input events: shape and event are read apart.
    guess = classifier.guess(read_question("What are the five most frequent input events in 2100?", matcher))
    assert max(guess.shapes, key=lambda s: guess.shapes[s]) == "topk"
    assert guess.cues == {"input": 1}


def test_words_no_training_question_used_are_reported(matcher: ValueMatcher) -> None:
    guess = classifier.guess(read_question("Draw a sankey diagram of the top 10 diagnoses.", matcher))
    assert "sankey" in guess.unknown
    typo = classifier.guess(read_question("how many patients were prescibed aspirin?", matcher))
    assert typo.unknown == ()  # one edit from a known word is a typo, not a new word


def test_a_huge_question_costs_no_more_than_a_normal_one(matcher: ValueMatcher) -> None:
    found = read_question("what " * 200 + "is the gender of patient 10014078?", matcher)
    started = time.perf_counter()
    classifier.guess(found)
    assert time.perf_counter() - started < 2.0  # featurising reads at most MAX_CHARS characters


def test_training_refuses_the_measuring_splits(tmp_path: Path) -> None:
    for name in ("valid", "test"):
        split = tmp_path / name
        split.mkdir()
        with pytest.raises(CommandError, match="Train on the train split only"):
            call_command("nlq_train", "--split", str(split))


def test_nlq_train_labels_by_execution_and_writes_a_working_model(tmp_path: Path) -> None:
    if not (EHRSQL / "train").exists():
        pytest.skip(f"EHRSQL train split not found at {EHRSQL} (../shared is absent)")
    data = json.loads((EHRSQL / "train" / "data.json").read_text())["data"]
    labels = json.loads((EHRSQL / "train" / "label.json").read_text())
    answers = json.loads((EHRSQL / "train" / "answer.json").read_text())
    # A small split of every 40th question: enough shapes to train on, quick to label.
    sample = data[::40]
    split = tmp_path / "train"
    split.mkdir()
    (split / "data.json").write_text(json.dumps({"data": sample}))
    (split / "label.json").write_text(json.dumps({d["id"]: labels[d["id"]] for d in sample}))
    (split / "answer.json").write_text(json.dumps({d["id"]: answers[d["id"]] for d in sample}))
    out, cache = tmp_path / "model.joblib", tmp_path / "labels.json"
    stdout = io.StringIO()
    call_command(
        "nlq_train", "--split", str(split), "--db", str(EHRSQL / "mimic_iv.sqlite"), "--out", str(out),
        "--labels", str(cache), stdout=stdout,
    )  # fmt: skip
    assert "Trained on" in stdout.getvalue()
    saved = json.loads(cache.read_text())
    assert set(saved) == {d["id"] for d in sample}
    assert sum(1 for v in saved.values() if v and v != ["unanswerable"]) > len(sample) // 2
    model = classifier.load(out)
    assert "unanswerable" in model.shape.classes_


def test_the_lemma_table_reads_questions_as_spacys_lemmatizer_does(matcher: ValueMatcher) -> None:
    if not (EHRSQL / "valid").exists():
        pytest.skip(f"EHRSQL valid split not found at {EHRSQL} (../shared is absent)")
    model = classifier.load()
    questions = [d["question"] for d in json.loads((EHRSQL / "valid" / "data.json").read_text())["data"]]
    same = fast = 0
    for question in questions[::5]:
        found = read_question(question, matcher)
        quick = classifier.featurise(found, lemmas=model.lemmas)
        full = classifier.featurise(found)
        fast += not quick.lemmas  # the table read it, spaCy's tagger did not run
        same += quick.shape == full.shape
    sample = len(questions[::5])
    assert fast >= sample * 0.75  # 79% when written: the rest hold a word no training question used
    assert same >= sample * 0.97  # a word whose lemma depends on its context may differ

"""Choose the confidence threshold on held-out folds of the training data, for the reliability score.

Each fold's questions are decided by a model trained on the other folds, exactly as the engine decides
(nlquery.engine.choose). An answer is right when the chosen family is one whose plan gave the gold
answer (the execution labels), wrong otherwise; an abstention scores 0 on an answerable question and
1 on an unanswerable one. Unanswerable questions are weighted to the share expected in use (the
training split has 9%, the validation split 20%), and the threshold maximising RS(penalty) is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from nlquery import classifier
from nlquery.engine import choose
from nlquery.families.base import Found

FOLDS: Final = 5
PENALTY: Final = 10.0
UNANSWERABLE_SHARE: Final = 0.2


@dataclass(frozen=True)
class Outcome:
    answers: bool  # before the threshold
    confidence: float
    right: bool  # the chosen family gives the gold answer
    unanswerable: bool


def held_out_outcomes(
    features: Sequence[classifier.Features],
    founds: Sequence[Found],
    labels: Sequence[Sequence[str]],
    known_text: Sequence[str] = (),
    folds: int = FOLDS,
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for fold in range(folds):
        train = [i for i in range(len(features)) if i % folds != fold]
        model = classifier.fit([features[i] for i in train], [labels[i] for i in train], known_text)
        for i in range(fold, len(features), folds):
            choice = choose(founds[i], classifier.guess_features(model, features[i]))
            best = choice.best
            outcomes.append(
                Outcome(
                    choice.answers,
                    choice.confidence,
                    best is not None and best.family in labels[i],
                    list(labels[i]) == [classifier.UNANSWERABLE],
                )
            )
    return outcomes


def best_threshold(
    outcomes: Sequence[Outcome], penalty: float = PENALTY, share: float = UNANSWERABLE_SHARE
) -> tuple[float, float]:
    """The threshold with the highest weighted RS(penalty), and that score in percent."""
    unanswerable = sum(o.unanswerable for o in outcomes)
    answerable = len(outcomes) - unanswerable
    weight_unanswerable = share * answerable / ((1 - share) * unanswerable) if unanswerable else 1.0

    def score(threshold: float) -> float:
        total = weights = 0.0
        for o in outcomes:
            weight = weight_unanswerable if o.unanswerable else 1.0
            answered = o.answers and o.confidence >= threshold
            if o.unanswerable:
                value = -penalty if answered else 1.0
            else:
                value = (1.0 if o.right else -penalty) if answered else 0.0
            total += weight * value
            weights += weight
        return 100.0 * total / weights if weights else 0.0

    candidates = sorted({0.0, *(round(o.confidence, 4) for o in outcomes if o.answers)})
    best = max(candidates, key=lambda t: (score(t), -t))
    return best, score(best)

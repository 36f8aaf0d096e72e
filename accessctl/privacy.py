"""Differential privacy for aggregate counts: discrete Laplace noise (OpenDP), charged to a budget.

Only numbers of patients are released this way: one patient changes a COUNT(DISTINCT subject_id) by
at most one, and since a patient may be counted in every group of a result (a patient in several
units), the L1 sensitivity of the whole vector of counts is taken as its length. The noise scale is
that sensitivity over epsilon, so each query costs exactly its epsilon, whatever its groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import opendp.prelude as dp

dp.enable_features("contrib")  # OpenDP's vetted-but-not-yet-proven mechanisms, Laplace among them

MECHANISM: Final = "discrete Laplace noise (OpenDP)"


@dataclass(frozen=True)
class Noisy:
    counts: list[int]
    scale: float
    epsilon: float


def noisy_counts(counts: Sequence[int], epsilon: float) -> Noisy:
    """The counts with noise for epsilon-differential privacy (never below zero: a count is not)."""
    if not counts:
        return Noisy([], 0.0, epsilon)
    sensitivity = len(counts)
    scale = sensitivity / epsilon
    measurement = dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=scale
    )
    # OpenDP's own privacy map: what releasing this vector costs at that sensitivity.
    spent = float(measurement.map(d_in=sensitivity))  # type: ignore[no-untyped-call]
    if spent > epsilon * (1 + 1e-9):
        raise ValueError(f"the mechanism would spend {spent}, more than {epsilon}")
    released = measurement([int(count) for count in counts])
    return Noisy([max(0, int(value)) for value in released], scale, epsilon)

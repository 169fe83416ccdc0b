"""Expected best validation score after n trials: the estimator of Dodge et al. (2019), "Show Your Work".

With N observed scores sorted v_1 <= ... <= v_N, the empirical distribution gives the maximum of n
draws (with replacement) the probabilities P(max = v_i) = (i/N)^n - ((i-1)/N)^n, so

    E[max_n] = sum_i v_i * ((i/N)^n - ((i-1)/N)^n)
    Var[max_n] = sum_i (v_i - E[max_n])^2 * ((i/N)^n - ((i-1)/N)^n)

A curve that has flattened by n = N says more trials of this search space are unlikely to pay.
The estimator treats trials as independent draws: exact for random search, an approximation for
samplers that learn from earlier trials (TPE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ExpectedMax:
    """E[best of n trials] and its standard deviation, for n = 1 .. len(n)."""

    n: list[int]
    mean: list[float]
    std: list[float]
    minimize: bool = False

    def band(self, observed: Sequence[float]) -> tuple[list[float], list[float]]:
        """mean -/+ std clipped to the observed range, as allentune draws it."""
        low, high = min(observed), max(observed)
        lower = [max(low, m - s) for m, s in zip(self.mean, self.std)]
        upper = [min(high, m + s) for m, s in zip(self.mean, self.std)]
        return lower, upper


def expected_max(scores: Sequence[float], n_max: int | None = None, *, minimize: bool = False) -> ExpectedMax:
    """E[max] (E[min] when minimize) of n draws from the empirical distribution of `scores`.

    n runs from 1 to n_max (default: len(scores)). NaN and infinite scores are left out.
    """
    values = sorted(float(v) for v in scores if math.isfinite(float(v)))
    if not values:
        raise ValueError("expected_max needs at least one finite score")
    if minimize:
        values = sorted(-v for v in values)
    total = len(values)
    n_max = total if n_max is None else n_max
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, not {n_max}")
    means, stds = [], []
    for n in range(1, n_max + 1):
        # P(max <= v_i) = (i/N)^n; its differences are P(max = v_i) (ties add up correctly).
        cdf = [(i / total) ** n for i in range(total + 1)]
        probabilities = [cdf[i + 1] - cdf[i] for i in range(total)]
        # The same sum by parts, v_N - sum_i (v_(i+1) - v_i) (i/N)^n: it never decreases with n,
        # not even by rounding.
        mean = values[-1] - math.fsum((values[i] - values[i - 1]) * cdf[i] for i in range(1, total))
        variance = math.fsum(p * (v - mean) ** 2 for p, v in zip(probabilities, values))
        means.append(-mean if minimize else mean)
        stds.append(math.sqrt(max(variance, 0.0)))
    return ExpectedMax(n=list(range(1, n_max + 1)), mean=means, std=stds, minimize=minimize)

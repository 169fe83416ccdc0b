"""Several objectives: the Pareto front of a study's trials, and the trial `select.rule` picks from it.

A trial is on the front when no other completed trial is at least as good in every objective and
better in one. The front is the answer to "accuracy against size"; the chosen trial is the one the
workflow retrains:

- `knee`: each objective is scaled to [0, 1] over the front, 0 its best value there and 1 its
  worst (an objective all front trials share counts 0); the chosen trial is the one nearest, in
  Euclidean distance, to the ideal point where every objective is 0. The lowest number wins a tie.
- `best`: the best trial of `select.metric` (the first metric when null) among the front trials
  within every bound of `select.where` (`{parameters: {max: 100000}}`); the lowest number wins a tie.

`select.where` bounds the candidates of `knee` too. The candidates are the front of the completed
trials within the bounds: the study's front where a bound only cuts off the bad end of a metric
(at most N parameters), and trials the study's front dominates where it cuts off the good end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from snakesweep import trials as vocabulary
from snakesweep.config import objective_metrics
from snakesweep.errors import UserError


def _signs(directions: Sequence[str]) -> list[int]:
    """+1 where lower is better, -1 where higher is: sign * value is then always minimised."""
    return [1 if direction == "minimize" else -1 for direction in directions]


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether signed values `a` (lower is better in every objective, see `_signs`) are at least as
    good as `b` in every objective and better in one."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def completed(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The study's own completed trials (no surplus claims, no warm-start trials), by number."""
    done = [t for t in vocabulary.real_trials(trials) if t.state == TrialState.COMPLETE and t.values]
    return sorted(done, key=lambda t: t.number)


def pareto_front(trials: Iterable[FrozenTrial], directions: Sequence[str]) -> list[FrozenTrial]:
    """The completed trials no other completed trial dominates, by number (equal values: both stay).

    Each trial is compared with the front of the trials before it only: dominance is transitive, so
    a trial that any earlier one dominates is dominated by one on that front. The cost is trials x
    front, not trials squared: the worker's log line, the trials table and keep_weights run it.
    """
    signs = _signs(directions)
    front: list[tuple[FrozenTrial, list[float]]] = []
    for trial in completed(trials):
        point = [s * v for s, v in zip(signs, trial.values)]
        if any(_dominates(kept, point) for _, kept in front):
            continue
        front = [(t, kept) for t, kept in front if not _dominates(point, kept)]
        front.append((trial, point))
    return [t for t, _ in front]


def ranked(trials: Iterable[FrozenTrial], directions: Sequence[str], first: int | None = None) -> list[FrozenTrial]:
    """The completed trials, best first: with one objective by value, with several front by front
    (the front, then the front of the rest, ...), by number within a front; the `first` ones only
    when given (with several, the fronts below them are never computed: each costs a pass over the rest)."""
    if len(directions) == 1:
        return vocabulary.ranked_complete(trials, directions[0])[:first]
    rest, order = completed(trials), []
    while rest and (first is None or len(order) < first):
        front = pareto_front(rest, directions)
        order.extend(front)
        taken = {t.number for t in front}
        rest = [t for t in rest if t.number not in taken]
    return order[:first]


@dataclass(frozen=True)
class Rule:
    """`select` of the config: how one trial of the front is chosen for retraining."""

    rule: str
    metric: str  # the metric `best` optimizes: select.metric, or the first of objective.metrics
    where: Mapping[str, Mapping[str, float]]

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Rule:
        select = config["select"]
        return cls(rule=select["rule"], metric=select["metric"] or objective_metrics(config)[0],
                   where=dict(select["where"]))

    def describe(self) -> str:
        bounds = ", ".join(f"{name} {'>=' if op == 'min' else '<='} {limit:g}"
                           for name, bound in self.where.items() for op, limit in bound.items())
        within = f" within {bounds}" if bounds else ""
        return f"knee of the front{within}" if self.rule == "knee" else f"best {self.metric}{within}"


def values_of(trial: FrozenTrial, metrics: Sequence[str]) -> dict[str, float]:
    """A completed trial's objective values by metric name."""
    return dict(zip(metrics, trial.values))


def within(trial: FrozenTrial, metrics: Sequence[str], where: Mapping[str, Mapping[str, float]]) -> bool:
    values = values_of(trial, metrics)
    return all(("min" not in bound or values[name] >= bound["min"]) and ("max" not in bound or values[name] <= bound["max"])
               for name, bound in where.items())


def knee(front: Sequence[FrozenTrial], directions: Sequence[str]) -> FrozenTrial:
    """The trial nearest to the ideal point, each objective scaled to [0, 1] over `front`."""
    signs = _signs(directions)
    columns = list(zip(*(t.values for t in front)))
    scaled_columns = []
    for sign, column in zip(signs, columns):
        costs = [sign * v for v in column]  # lower is better
        low, high = min(costs), max(costs)
        scaled_columns.append([(c - low) / (high - low) if high > low else 0.0 for c in costs])
    distance = [math.hypot(*point) for point in zip(*scaled_columns)]
    return min(zip(distance, (t.number for t in front), front))[2]


def choose(trials: Iterable[FrozenTrial], metrics: Sequence[str], directions: Sequence[str], rule: Rule,
           source: str = "config") -> FrozenTrial:
    """The completed trial that `rule` picks; a UserError when no trial is within its bounds."""
    trials = completed(trials)
    candidates = pareto_front([t for t in trials if within(t, metrics, rule.where)], directions)
    if not candidates:
        front = pareto_front(trials, directions)
        closest = ", ".join(f"trial {t.number}: " + ", ".join(f"{k} {v:.6g}" for k, v in values_of(t, metrics).items())
                            for t in front[:3])
        raise UserError(f"no completed trial is within the bounds ({rule.describe()}); the front has {closest}",
                        file=source, field="select.where",
                        fix="loosen the bounds, or run more trials (raise study.n_trials)")
    if rule.rule == "knee":
        return knee(candidates, directions)
    index = list(metrics).index(rule.metric)
    sign = _signs(directions)[index]
    return min(candidates, key=lambda t: (sign * t.values[index], t.number))


@dataclass(frozen=True)
class Selection:
    """The front of a study of several objectives and the trial chosen from it."""

    front: list[FrozenTrial]
    chosen: FrozenTrial


def select(trials: Iterable[FrozenTrial], metrics: Sequence[str], directions: Sequence[str], rule: Rule,
           source: str = "config") -> Selection | None:
    """The front and the chosen trial; None while no trial has completed."""
    trials = completed(trials)
    front = pareto_front(trials, directions)
    if not front:
        return None
    return Selection(front=front, chosen=choose(trials, metrics, directions, rule, source))

"""What defines a study: its spec, and the study attributes that record it in the storage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from snakesweep.space import SearchSpace

ATTR_FINGERPRINT = "snakesweep:fingerprint"
ATTR_DEFINITION = "snakesweep:definition"
ATTR_SPACE = "snakesweep:space"  # the normalised space: a later study's warm start reads its constants


@dataclass(frozen=True)
class StudySpec:
    """Everything that defines a study, read from the config and its files."""

    name: str
    fingerprint: str
    direction: str
    space: SearchSpace
    sampler: Mapping[str, Any]
    pruner: Mapping[str, Any]
    definition: Mapping[str, Any]
    metrics: tuple[str, ...] = ()
    """The objectives' metric names; with one objective, `direction` is its direction."""
    directions: tuple[str, ...] = ()
    """One direction per metric; with several, `direction` is the first one's."""

    @property
    def several(self) -> bool:
        """Several objectives: a Pareto front instead of a best value, and no pruning."""
        return len(self.directions) > 1

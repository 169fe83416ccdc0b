"""snakesweep: Optuna sweeps over Jsonnet configs, run as a Snakemake workflow, then the winner retrained.

The public face of the library. Names are imported on first use, so a trainer that only writes
epoch files (`from snakesweep import write_epoch_metrics`) does not pay for Optuna or Jsonnet.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_config": "config",
    "validate_config": "config",
    "Interrupted": "errors",
    "UserError": "errors",
    "render": "render",
    "apply_overrides": "render",
    "parse_override": "render",
    "SearchSpace": "space",
    "load_space": "space_parsing",
    "parse_space": "space_parsing",
    "storage_url": "storage",
    "open_storage": "storage",
    "mask": "storage",
    "create_study": "study",
    "load_study": "study",
    "study_spec": "study",
    "run_worker": "worker",
    "select": "selection",
    "write_report": "report",
    "expected_max": "report.expected_max",
    "write_epoch_metrics": "trialfiles",
    "write_final_metrics": "trialfiles",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'snakesweep' has no attribute {name!r}")
    return getattr(importlib.import_module(f"snakesweep.{_EXPORTS[name]}"), name)

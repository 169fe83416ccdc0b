"""What a trial ran with: code version, package versions, host and devices."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from functools import cache
from importlib import metadata
from typing import Any

PACKAGES = ("snakesweep", "optuna", "torch", "allennlp", "snakemake", "jsonnet")


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@cache
def process_provenance() -> dict[str, Any]:
    """The parts that are the same for every trial of a worker, computed once."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "git_commit": commit,
        "git_dirty": bool(status) if status is not None else None,
        "versions": {name: _version(name) for name in PACKAGES},
        "python": platform.python_version(),
        "host": socket.gethostname(),
    }


def provenance(**extra: Any) -> dict[str, Any]:
    return {
        **process_provenance(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        **extra,
    }

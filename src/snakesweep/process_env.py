"""The process a worker or a retrain job runs in: its thread caps and the GPU it may use."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
"""Environment variables that cap the threads of OpenMP, MKL, OpenBLAS and numexpr."""

log = logging.getLogger("snakesweep.worker")


def thread_environment(threads: int) -> dict[str, str]:
    """The environment variables that cap a process's threads."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, not {threads}")
    return {name: str(threads) for name in THREAD_VARIABLES}


def limit_threads(threads: int) -> None:
    """Cap BLAS/OpenMP threads before torch is imported, so N workers on N cores do not oversubscribe."""
    os.environ.update(thread_environment(threads))


def visible_gpu() -> bool:
    """Whether a GPU is visible, judged without initialising CUDA in a process that forks trials."""
    devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    if devices is not None:
        return devices.strip() not in ("", "-1")
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def assign_gpu(gpu_ids: Sequence[int | str], worker: int) -> None:
    """Hand local GPUs to workers round-robin; a GPU that Slurm assigned wins over the config."""
    if gpu_ids and (os.environ.get("SLURM_JOB_GPUS") or os.environ.get("SLURM_STEP_GPUS")):
        log.warning("workers.gpu_ids is ignored: Slurm assigned this job its GPU (CUDA_VISIBLE_DEVICES=%s)",
                    os.environ.get("CUDA_VISIBLE_DEVICES"))
        return
    if gpu_ids:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_ids[worker % len(gpu_ids)])

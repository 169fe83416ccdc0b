"""One scaling run of a peer tool, in a fresh process, as bench/peers_scaling.py starts it.

    python -m bench.peer_runs ray|optuna --workers N --trials T --epochs E --sleep S --dir DIR

Writes DIR/result.json: the tool's trial durations (s) and, for Ray, the seconds of ray.init,
Tuner.fit and ray.shutdown. The
process is timed from outside, from its launch to its exit, so imports, Ray's cluster start and
shutdown count against the tool as the worker processes' own do in bench/scaling.py.

- ray: `tune.Tuner` with `max_concurrent_trials=N` on a local Ray started with `num_cpus=N` (one
  CPU per trial, Ray's default, so N trials run at once on any machine), a function trainable that
  sleeps E epochs of S seconds and calls `tune.report` after each, FIFO scheduler, Ray's default
  loggers. A trial's duration: from Ray's `on_trial_start` callback to `on_trial_complete`, both in
  the driver: actor start, the trainable and the results' round trips, like a worker's claim to
  result.
- optuna: `study.optimize(objective, n_trials=T, n_jobs=N)` on a SQLite storage (threads of one
  process), an objective that sleeps the same epochs and calls `trial.report` after each,
  RandomSampler, NopPruner. A trial's duration: Optuna's datetime_start to datetime_complete.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def sleep_epochs(epochs: int, sleep_s: float, report: Any) -> float:
    for epoch in range(epochs):
        time.sleep(sleep_s)
        report(epoch, epoch / 1000)
    return 1.0


@contextmanager
def local_ray(num_cpus: int, attempts: int = 3) -> Iterator[dict[str, float]]:
    """A local Ray for the block; yields a dict that gets `init_s`, and `shutdown_s` on the way out.

    Ray's sockets live under its temp dir and a Unix socket path is limited to 107 bytes, so a short
    temp dir of its own, removed afterwards. Ray gives its raylet a fixed 30 s to register, which a
    loaded machine can miss: up to `attempts` starts.
    """
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report to send: no network here
    temp = tempfile.mkdtemp(prefix="ray-")
    timings: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        for attempt in range(attempts):
            try:
                ray.init(num_cpus=num_cpus, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
                break
            except Exception:
                ray.shutdown()
                if attempt == attempts - 1:
                    raise
        timings["init_s"] = time.monotonic() - t0
        yield timings
    finally:
        t0 = time.monotonic()
        ray.shutdown()
        timings["shutdown_s"] = time.monotonic() - t0
        shutil.rmtree(temp, ignore_errors=True)


def run_ray(args: argparse.Namespace) -> dict[str, Any]:
    from ray import tune

    started: dict[str, float] = {}
    durations: list[float] = []

    class TrialClock(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            started[trial.trial_id] = time.monotonic()

        def on_trial_complete(self, iteration, trials, trial, **info):
            durations.append(time.monotonic() - started[trial.trial_id])

    epochs, sleep_s = args.epochs, args.sleep

    def trainable(config: dict[str, Any]) -> None:
        sleep_epochs(epochs, sleep_s, lambda epoch, value: tune.report({"validation_accuracy": value}))

    with local_ray(args.workers) as timings:
        tuner = tune.Tuner(
            trainable, param_space={"x": tune.uniform(0.0, 1.0)},
            tune_config=tune.TuneConfig(num_samples=args.trials, max_concurrent_trials=args.workers,
                                        metric="validation_accuracy", mode="max"),
            run_config=tune.RunConfig(storage_path=str(args.dir / "ray_results"), verbose=0,
                                      callbacks=[TrialClock()]),
        )
        t0 = time.monotonic()
        results = tuner.fit()
        timings["fit_s"] = time.monotonic() - t0
        if results.num_errors:
            raise SystemExit(f"{results.num_errors} Ray trials failed")
    return {"durations": durations, **timings}


def run_optuna(args: argparse.Namespace) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{args.dir / 'study.db'}", direction="maximize",
                                sampler=optuna.samplers.RandomSampler(), pruner=optuna.pruners.NopPruner())

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        return sleep_epochs(args.epochs, args.sleep, lambda epoch, value: trial.report(value, epoch))

    study.optimize(objective, n_trials=args.trials, n_jobs=args.workers)
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(trials) != args.trials:
        raise SystemExit(f"{len(trials)} complete Optuna trials, expected {args.trials}")
    return {"durations": [t.duration.total_seconds() for t in trials]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tool", choices=["ray", "optuna"])
    parser.add_argument("--workers", type=int, required=True, help="trials at once")
    parser.add_argument("--trials", type=int, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--sleep", type=float, required=True, help="seconds per epoch")
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    result = run_ray(args) if args.tool == "ray" else run_optuna(args)
    (args.dir / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

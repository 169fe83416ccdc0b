"""Figure 6: warm start. Epochs to reach a first sweep's best after one range is widened, cold and warm.

    .venv/bin/python bench/warm_start.py            # 5 seeds
    .venv/bin/python bench/warm_start.py --smoke    # tiny sizes, 1 seed

The problem is bench/mlp_digits.py (Bayesmark's MLP-adam on digits, trained epoch by epoch), made
cheaper so the whole figure takes minutes on 2 cores: `--epochs` (6) epochs a trial and `batch_size`
from 64 (not 10: small batches make an epoch ten times longer). Per seed (study.seed):

1. a first sweep with `learning_rate_init` in [1e-4, 1e-2], `--first` trials, snakesweep's default
   sampler and pruner (TPESampler(n_startup_trials=5) + HyperbandPruner), as config/optuna.json;
2. the range widened to Bayesmark's [1e-5, 1e-1]: a new study, in two copies of the first sweep's
   SQLite storage: cold (no warm start) and warm (`study.warm_start: previous`, so the first sweep's
   finished trials that fit the wider space reach the sampler);
3. each copy runs one trial at a time (one `snakesweep.worker.Worker` in this process) until a trial
   completes at or above the first sweep's best, or its trials have computed `--budget` full trainings.

Reported: epochs the new study spent (pruned trials' epochs included) until that trial completed,
and trials run; '>B' where a seed never got there. Warm-start trials cost the new study no epochs:
that is the point, and the first sweep's own epochs are printed apart.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sqlite3
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.search import default_optuna, epochs_to, run_one_more, trial_records  # noqa: E402

PARAM = "learning_rate_init"
FIRST_RANGE = (1e-4, 1e-2)
WIDE_RANGE = (1e-5, 1e-1)


def parse_args() -> Any:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default 5; smoke 1)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs a trial at most (default 6; smoke 2)")
    parser.add_argument("--first", type=int, default=None, help="trials of the first sweep (default 12; smoke 3)")
    parser.add_argument("--budget", type=float, default=None,
                        help="full trainings the new study may spend (default 20; smoke 2)")
    return common.parse_sized(parser, seeds=(1, 5), epochs=(2, 6), first=(3, 12), budget=(2, 20))


def space(low: float, high: float) -> dict[str, Any]:
    from bench.mlp_digits import SPACE

    shaped = {name: dict(spec) for name, spec in SPACE.items()}
    shaped["batch_size"]["low"] = 64
    shaped[PARAM].update(low=low, high=high)
    return shaped


def project(directory: Path, seed: int, epochs: int, low: float, high: float, warm: bool) -> Path:
    from bench.mlp_digits import JSONNET

    study = {"name": "digits", "seed": seed, "n_trials": 1, "storage": f"sqlite:///{directory / 'optuna.db'}",
             "warm_start": "previous" if warm else None}
    return common.write_project(
        directory, space=space(low, high), jsonnet=JSONNET % epochs, optuna_json=default_optuna(epochs),
        study=study, launcher={"type": "python", "function": "bench.mlp_digits:train"},
        model={"seed_keys": ["random_seed"]}, workers={"threads": 1, "poll_s": 0.02},
    )


def sweep(config_path: Path, *, trials: int | None = None, target: float | None = None,
          limit: float = math.inf) -> list[dict[str, Any]]:
    """Run trials one at a time: `trials` of them, or until one completes at `target` or `limit` epochs."""
    from snakesweep.config import load_config
    from snakesweep.worker import Worker

    common.create_study(config_path)
    cwd = os.getcwd()
    os.chdir(common.ROOT)  # as the workflow runs workers: the trainer's module is the repo's
    try:
        worker = Worker(load_config(config_path), 0)
        while True:
            records = trial_records(worker)
            done = sum(r["state"] != "FAIL" for r in records)
            if trials is not None and done >= trials:
                return records
            if target is not None and (math.isfinite(epochs_to(records, target, limit))
                                       or sum(r["epochs"] for r in records) >= limit):
                return records
            run_one_more(worker, records)
    finally:
        os.chdir(cwd)


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite storage in WAL mode (a file copy could miss the log's last commits)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def warm_trials(config_path: Path) -> int:
    from snakesweep.trials import is_warm_start

    return sum(map(is_warm_start, common.load_trials(config_path)))


def trials_to(records: list[dict[str, Any]], target: float) -> int | None:
    for index, record in enumerate(records, start=1):
        if record["state"] == "COMPLETE" and record["value"] >= target:
            return index
    return None


def run_seed(root: Path, seed: int, args: Any) -> dict[str, Any]:
    first_dir = root / f"seed-{seed}" / "first"
    first = sweep(project(first_dir, seed, args.epochs, *FIRST_RANGE, warm=False), trials=args.first)
    target = max(r["value"] for r in first if r["state"] == "COMPLETE")
    limit = args.budget * args.epochs
    result: dict[str, Any] = {"seed": seed, "target": target, "first_epochs": sum(r["epochs"] for r in first)}
    for mode in ("cold", "warm"):
        directory = root / f"seed-{seed}" / mode
        directory.mkdir(parents=True, exist_ok=True)
        copy_database(first_dir / "optuna.db", directory / "optuna.db")
        config_path = project(directory, seed, args.epochs, *WIDE_RANGE, warm=mode == "warm")
        started = time.monotonic()
        records = sweep(config_path, target=target, limit=limit)
        epochs = epochs_to(records, target, limit)
        result[mode] = {"epochs": epochs, "trials": trials_to(records, target) if math.isfinite(epochs) else None,
                        "wall_s": time.monotonic() - started, "records": records,
                        "warm_trials": warm_trials(config_path)}
    if not args.keep:
        shutil.rmtree(root / f"seed-{seed}", ignore_errors=True)
    return result


def summarize(results: list[dict[str, Any]], args: Any) -> None:
    limit = args.budget * args.epochs
    rows = []
    for r in results:
        rows.append([r["seed"], f"{r['target']:.3f}", r["first_epochs"],
                     f"{_epochs(r['cold']['epochs'], limit)} ({r['cold']['trials'] or '-'})",
                     f"{_epochs(r['warm']['epochs'], limit)} ({r['warm']['trials'] or '-'})", r["warm"]["warm_trials"]])
    cold = common.median([r["cold"]["epochs"] for r in results])
    warm = common.median([r["warm"]["epochs"] for r in results])
    ratio = f"{cold / warm:.2f}x" if math.isfinite(cold) and math.isfinite(warm) else "not both reached"
    rows.append(["median", "", "", _median([r["cold"]["epochs"] for r in results], limit),
                 _median([r["warm"]["epochs"] for r in results], limit), f"cold / warm: {ratio}"])
    walls = [f"{common.median([r[m]['wall_s'] for r in results]):.0f}" for m in ("cold", "warm")]
    rows.append(["wall s (median)", "", "", walls[0], walls[1], "create_study included"])
    print()
    print(f"### {PARAM} widened from {FIRST_RANGE} to {WIDE_RANGE}: epochs to the first sweep's best, "
          f"{args.epochs} epochs a trial, budget {args.budget:g} trainings = {limit:.0f} epochs, {args.seeds} seeds")
    print(common.table(["seed", "target (first sweep's best)", "first sweep epochs", "cold: epochs (trials)",
                        "warm: epochs (trials)", "warm-start trials"], rows))


def _epochs(value: float, limit: float) -> str:
    return f"{value:.0f}" if math.isfinite(value) else f">{limit:.0f}"


def _median(values: list[float], limit: float) -> str:
    reached = [v for v in values if math.isfinite(v)]
    shown = _epochs(common.median(values), limit)
    span = f" ({min(reached):.0f}-{max(reached):.0f})" if reached else ""
    return f"{shown}{span}, reached {len(reached)}/{len(values)}"


def main() -> int:
    args = parse_args()
    warnings.simplefilter("ignore")
    logging.getLogger("snakesweep").setLevel(logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    common.header("Warm start: a widened range, cold against warm", args)
    results = []
    with common.workdir(args.keep, "warm") as root:
        for seed in range(1, args.seeds + 1):
            result = run_seed(root, seed, args)
            results.append(result)
            limit = args.budget * args.epochs
            print(f"  seed {seed}: target {result['target']:.3f}, cold {_epochs(result['cold']['epochs'], limit)} "
                  f"epochs, warm {_epochs(result['warm']['epochs'], limit)} epochs "
                  f"({result['warm']['warm_trials']} warm-start trials)", flush=True)
    summarize(results, args)
    common.write_json(args.json, {"args": vars(args), "runs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())

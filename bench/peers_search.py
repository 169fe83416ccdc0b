"""Figure 11, search: Ray Tune's random search + ASHAScheduler beside snakesweep's default, same trainer, same budget.

    .venv/bin/python bench/peers_search.py                  # digits, 10 seeds, target 0.980
    .venv/bin/python bench/peers_search.py --seeds 20 --methods default ray-asha asha
    .venv/bin/python bench/peers_search.py --smoke          # tiny budget, 1 seed
    .venv/bin/python bench/peers_search.py --seeds 5 --first-seed 6 --json b.json   # seeds in parallel, then
    .venv/bin/python bench/peers_search.py --from-json a.json b.json                 # one table of both

Needs Ray Tune: `make bench-peers` (bench/requirements-peers.txt). The problem is bench/search.py's
public one, Bayesmark's MLP-adam on digits (bench/mlp_digits.py), 27 epochs a trial at most,
budget B = 10 full trainings = 270 epochs; bench/search.py's AllenNLP problem is left out (a trial
there takes minutes on this machine). Methods, each over `--seeds` seeds, one trial at a time:

- default: snakesweep's default (TPE + Hyperband), exactly as bench/search.py runs it.
- ray-asha: Ray Tune, `tune.Tuner` with its BasicVariantGenerator (random search, seeded) over the
  same space and `ASHAScheduler(grace_period=1, reduction_factor=4, max_t=epochs)`, its defaults
  but max_t, `max_concurrent_trials=1`, `reuse_actors=True` (one actor trains trial after trial: a
  fresh actor per trial cost seconds each here). The trainable calls the same `bench.mlp_digits.train`; the
  trainer's per-epoch metrics write also reports the epoch to Ray (`tune.report`). Ray's trials
  run until the epochs reported pass the budget.
- asha (`--methods ... asha`): snakesweep with random + Optuna's SuccessiveHalvingPruner of the
  same settings, as in bench/search.py: the same algorithm as ray-asha, in the other tool.

Epochs to target, best at B and the target's meaning are bench/search.py's; the target is figure
3's (0.980: what random search without pruning reached there with the whole budget) unless
`--target` is given. A trial's value is its best validation accuracy when it trained all epochs.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, search  # noqa: E402

RAY = "ray-asha"
# Registered with bench/search.py's methods so that its summary table labels the row.
search.METHODS.setdefault(RAY, ("Ray Tune random + ASHAScheduler", None))


def parse_args() -> Any:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--methods", nargs="+", choices=["default", RAY, "asha", "random"], default=["default", RAY],
                        help="the first is the one the others are compared with (default: default ray-asha)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 10; smoke 1)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs a trial at most (default 27; smoke 3)")
    parser.add_argument("--budget", type=float, default=None, help="budget in full trainings (default 10; smoke 2)")
    parser.add_argument("--target", type=float, default=None, help="target validation accuracy (default 0.980)")
    parser.add_argument("--first-seed", type=int, default=1, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--from-json", type=Path, nargs="+", default=None, metavar="FILE",
                        help="run nothing: the table of the runs in these --json files (seeds run in parallel)")
    args = common.parse_sized(parser, seeds=(1, 10), target=(0.9, 0.980))
    args.problems = ["digits"]
    return args


def ray_space(epochs: int) -> dict[str, Any]:
    from ray import tune

    from bench.mlp_digits import SPACE

    space: dict[str, Any] = {"epochs": epochs, "random_seed": tune.randint(0, 2**31 - 1)}
    for name, spec in SPACE.items():
        if spec["type"] == "int":
            space[name] = tune.randint(spec["low"], spec["high"] + 1)  # Ray's upper bound is exclusive
        elif spec.get("log"):
            space[name] = tune.loguniform(spec["low"], spec["high"])
        else:
            space[name] = tune.uniform(spec["low"], spec["high"])
    return space


def digits_trainable(config: dict[str, Any]) -> None:
    """bench.mlp_digits.train as it is, its per-epoch metrics write also reporting the epoch to Ray."""
    from ray import tune

    from bench import mlp_digits
    from snakesweep.trialfiles import write_epoch_metrics

    def write_and_report(out: Any, epoch: int, metrics: dict[str, Any]) -> Path:
        path = write_epoch_metrics(out, epoch, metrics)
        tune.report({"validation_accuracy": metrics["validation_accuracy"]})
        return path

    # Set again for each trial, as reuse_actors=True runs trial after trial in one actor: the wrapper
    # calls the original writer, so it never wraps itself.
    mlp_digits.write_epoch_metrics = write_and_report
    with tempfile.TemporaryDirectory(prefix="digits-") as serialization_dir:
        mlp_digits.train(config, serialization_dir)


def run_ray(seed: int, root: Path, args: Any) -> dict[str, Any]:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    epochs, budget = search.settings("digits", args)
    limit = budget * epochs
    trials: dict[str, dict[str, Any]] = {}  # trial id: epochs and best value so far, in the order they ran

    class EpochBudget(tune.Stopper):
        """Ends the run once the epochs trained pass the budget, as search.py's loop does."""

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            record = trials.setdefault(trial_id, {"epochs": 0, "best": 0.0})
            record["epochs"] += 1
            record["best"] = max(record["best"], result["validation_accuracy"])
            return False

        def stop_all(self) -> bool:
            return sum(r["epochs"] for r in trials.values()) > limit

    tuner = tune.Tuner(
        digits_trainable, param_space=ray_space(epochs),
        tune_config=tune.TuneConfig(
            metric="validation_accuracy", mode="max", num_samples=int(limit) + 1, max_concurrent_trials=1,
            search_alg=BasicVariantGenerator(random_state=seed),
            reuse_actors=True, scheduler=ASHAScheduler(time_attr="training_iteration", max_t=epochs, grace_period=1,
                                    reduction_factor=4)),
        run_config=tune.RunConfig(storage_path=str(root / "ray_results"), name=f"digits-{seed}", verbose=0,
                                  stop=EpochBudget()),
    )
    started = time.monotonic()
    tuner.fit()
    wall = time.monotonic() - started
    if not args.keep:
        shutil.rmtree(root / "ray_results" / f"digits-{seed}", ignore_errors=True)
    # A trial that trained every epoch completed; one with fewer was stopped by ASHA (or by the budget,
    # past B, where no table looks).
    records = [{"state": "COMPLETE" if r["epochs"] >= epochs else "PRUNED", "epochs": r["epochs"],
                "value": r["best"] if r["epochs"] >= epochs else None} for r in trials.values()]
    return {"problem": "digits", "method": RAY, "seed": seed, "trials": records, "wall_s": wall}


def main() -> int:
    args = parse_args()
    if RAY in args.methods and importlib.util.find_spec("ray") is None:
        raise SystemExit("Ray Tune is not installed: make bench-peers (bench/requirements-peers.txt)")
    warnings.simplefilter("ignore")
    logging.getLogger("snakesweep").setLevel(logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # One trial at a time: without this Ray creates hundreds of pending trials ahead of the budget's end.
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "1")
    # Ray's actors inherit the driver's environment: they import bench/ and snakesweep as it does.
    os.environ["PYTHONPATH"] = common.child_env({})["PYTHONPATH"]
    common.header("Search efficiency beside Ray Tune: snakesweep's default vs Ray Tune random + ASHA", args)
    if args.from_json:
        runs = [run for path in args.from_json for run in json.loads(path.read_text())["runs"]]
        args.seeds = len({run["seed"] for run in runs})
        search.summarize("digits", runs, args)
        return 0
    from bench.peer_runs import local_ray

    runs: list[dict[str, Any]] = []
    epochs, budget = search.settings("digits", args)
    with local_ray(num_cpus=1), common.workdir(args.keep, "peers-search") as root:
        (root / "digits").mkdir(parents=True, exist_ok=True)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            methods = args.methods if seed % 2 else args.methods[::-1]  # alternate who runs first
            for method in methods:
                if method == RAY:
                    result = run_ray(seed, root / "digits", args)
                else:
                    result = search.run("digits", method, seed, root, args)
                runs.append(result)
                print(f"  seed {seed} {search.METHODS[method][0]}: {len(result['trials'])} trials, best within "
                      f"budget {search.best_within(result['trials'], budget * epochs):.3f}, "
                      f"{result['wall_s']:.0f} s", flush=True)
        search.summarize("digits", runs, args)
    common.write_json(args.json, {"args": vars(args), "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())

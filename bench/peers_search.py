"""Figure 11, search: Ray Tune's random search + ASHAScheduler beside snakesweep's default, same trainer, same budget.

    .venv/bin/python bench/peers_search.py                  # both problems, 10 seeds (hours: AllenNLP)
    .venv/bin/python bench/peers_search.py --problems digits --seeds 20 --methods default ray-asha asha
    .venv/bin/python bench/peers_search.py --smoke          # tiny budgets, 1 seed
    .venv/bin/python bench/peers_search.py --seeds 5 --first-seed 6 --json b.json   # seeds in parallel, then
    .venv/bin/python bench/peers_search.py --from-json a.json b.json                 # one table of both

Needs Ray Tune: `make bench-peers` (bench/requirements-peers.txt). The problems are bench/search.py's:

- digits: Bayesmark's MLP-adam on digits (bench/mlp_digits.py), 27 epochs a trial at most, budget
  B = 10 full trainings = 270 epochs, target 0.980 (figure 3's: what random search without pruning
  reached with B).
- allennlp: the default example (config/model.jsonnet, config/search_space.json) on bench/search.py's
  slice of data/debian_sections, 8 epochs a trial at most, B = 8 full trainings = 64 epochs, target
  0.635 (figure 3's). A trial takes a minute or more here: 10 seeds of two methods take hours.

Methods, each over `--seeds` seeds, one trial at a time:

- default: snakesweep's default (TPE + Hyperband), exactly as bench/search.py runs it.
- ray-asha: Ray Tune, `tune.Tuner` with its BasicVariantGenerator (random search, seeded) over the
  same space and `ASHAScheduler(grace_period=1, reduction_factor=4, max_t=epochs)`, its defaults
  but max_t, `max_concurrent_trials=1`, `reuse_actors=True` (one actor trains trial after trial: a
  fresh actor per trial cost seconds each here). Each epoch is reported to Ray (`tune.report`), which
  holds the trainer there until the scheduler has seen it. digits: the trainable calls the same
  `bench.mlp_digits.train`, whose per-epoch metrics write also reports. allennlp: the trainable
  renders the same Jsonnet with the trial's values and trains it with AllenNLP's own `train_model`,
  a trainer callback reporting each epoch, as a Ray user would. Ray has no conditional parameters:
  a parameter that only some choices read (num_filters, hidden_size) is drawn for every trial and
  read only where the config uses it. Ray's trials run until the epochs reported pass the budget.
- asha (`--methods ... asha`): snakesweep with random + Optuna's SuccessiveHalvingPruner of the
  same settings, as in bench/search.py: the same algorithm as ray-asha, in the other tool.

Epochs to target, best at B and the target's meaning are bench/search.py's. A trial's value is its
best validation accuracy when it trained all epochs.
"""

from __future__ import annotations

import argparse
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
TARGETS = {"digits": 0.980, "allennlp": 0.635}  # figure 3's: random search without pruning, with the whole budget
RAY_REPORT = "bench_ray_report"  # the AllenNLP trainer callback that reports each epoch to Ray
# Registered with bench/search.py's methods so that its summary table labels the row.
search.METHODS.setdefault(RAY, ("Ray Tune random + ASHAScheduler", None))


def parse_args() -> Any:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--problems", nargs="+", choices=sorted(search.DEFAULTS), default=["digits", "allennlp"])
    parser.add_argument("--methods", nargs="+", choices=["default", RAY, "asha", "random"], default=["default", RAY],
                        help="the first is the one the others are compared with (default: default ray-asha)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 10; smoke 1)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs a trial at most (default: per problem)")
    parser.add_argument("--budget", type=float, default=None, help="budget in full trainings (default: per problem)")
    parser.add_argument("--target", type=float, default=None, help="target validation accuracy (default: per problem)")
    parser.add_argument("--first-seed", type=int, default=1, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--train-examples", type=int, default=None, help="allennlp: training slice (default 600)")
    parser.add_argument("--validation-examples", type=int, default=None,
                        help="allennlp: validation slice (default 200)")
    parser.add_argument("--from-json", type=Path, nargs="+", default=None, metavar="FILE",
                        help="run nothing: the table of the runs in these --json files (seeds run in parallel)")
    return common.parse_sized(parser, seeds=(1, 10), train_examples=(100, 600), validation_examples=(50, 200))


def ray_space(problem: str, epochs: int, data: Path) -> dict[str, Any]:
    """The problem's search space in Ray's terms, plus the constants its trainable reads."""
    from ray import tune

    from snakesweep.space_parsing import load_space, parse_space

    if problem == "digits":
        from bench.mlp_digits import SPACE

        params = parse_space(SPACE).params
    else:
        params = load_space(common.ROOT / "config" / "search_space.json").params
    space: dict[str, Any] = {"epochs": epochs, "random_seed": tune.randint(0, 2**31 - 1)}
    if problem == "allennlp":
        space["data"] = str(data)
    for param in params:
        if param.kind == "categorical":
            space[param.name] = tune.choice(list(param.choices))
        elif param.kind == "int" and param.step != 1:
            space[param.name] = tune.choice(list(range(int(param.low), int(param.high) + 1, int(param.step))))
        elif param.kind == "int":
            space[param.name] = tune.randint(int(param.low), int(param.high) + 1)  # Ray's upper bound is exclusive
        elif param.log:
            space[param.name] = tune.loguniform(param.low, param.high)
        else:
            space[param.name] = tune.uniform(param.low, param.high)
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


def allennlp_trainable(config: dict[str, Any]) -> None:
    """The default example's Jsonnet with the trial's values, trained by AllenNLP's `train_model`; a
    trainer callback reports each epoch to Ray."""
    from allennlp.commands.train import train_model
    from allennlp.common import Params
    from allennlp.training.callbacks import TrainerCallback
    from ray import tune

    from snakesweep.render import render

    if RAY_REPORT not in TrainerCallback.list_available():  # once per actor: it trains trial after trial

        @TrainerCallback.register(RAY_REPORT)
        class RayReport(TrainerCallback):
            def on_epoch(self, trainer: Any, metrics: dict[str, Any], epoch: int, is_primary: bool = True,
                         **kwargs: Any) -> None:
                tune.report({"validation_accuracy": metrics["validation_accuracy"]})

    params = {k: v for k, v in config.items() if k not in ("epochs", "random_seed", "data")}
    seed = config["random_seed"]
    overrides = {"train_data_path": f"{config['data']}/train.jsonl",
                 "validation_data_path": f"{config['data']}/validation.jsonl",
                 "trainer.num_epochs": config["epochs"], "trainer.callbacks": [{"type": RAY_REPORT}],
                 "random_seed": seed, "numpy_seed": seed, "pytorch_seed": seed}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the parameter of the encoder not chosen is not read
        rendered = render(common.ROOT / "config" / "model.jsonnet", params, overrides=overrides)
    with tempfile.TemporaryDirectory(prefix="allennlp-") as directory:
        train_model(Params(rendered), str(Path(directory) / "run"), file_friendly_logging=True)


TRAINABLES = {"digits": digits_trainable, "allennlp": allennlp_trainable}


def run_ray(problem: str, seed: int, root: Path, args: Any) -> dict[str, Any]:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    epochs, budget = search.settings(problem, args)
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
        TRAINABLES[problem], param_space=ray_space(problem, epochs, root),
        tune_config=tune.TuneConfig(
            metric="validation_accuracy", mode="max", num_samples=int(limit) + 1, max_concurrent_trials=1,
            search_alg=BasicVariantGenerator(random_state=seed),
            reuse_actors=True, scheduler=ASHAScheduler(time_attr="training_iteration", max_t=epochs, grace_period=1,
                                    reduction_factor=4)),
        run_config=tune.RunConfig(storage_path=str(root / "ray_results"), name=f"{problem}-{seed}", verbose=0,
                                  stop=EpochBudget()),
    )
    started = time.monotonic()
    tuner.fit()
    wall = time.monotonic() - started
    if not args.keep:
        shutil.rmtree(root / "ray_results" / f"{problem}-{seed}", ignore_errors=True)
    # A trial that trained every epoch completed; one with fewer was stopped by ASHA (or by the budget,
    # past B, where no table looks).
    records = [{"state": "COMPLETE" if r["epochs"] >= epochs else "PRUNED", "epochs": r["epochs"],
                "value": r["best"] if r["epochs"] >= epochs else None} for r in trials.values()]
    return {"problem": problem, "method": RAY, "seed": seed, "trials": records, "wall_s": wall}


def summarize(problem: str, runs: list[dict[str, Any]], args: Any, seeds: int) -> None:
    """bench/search.py's table, with the problem's target unless one is given."""
    target = args.target if args.target is not None else (0.9 if args.smoke else TARGETS[problem])
    search.summarize(problem, runs, argparse.Namespace(**{**vars(args), "target": target, "seeds": seeds}))


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
        args.problems = [p for p in search.DEFAULTS if any(run["problem"] == p for run in runs)]
        for problem in args.problems:
            mine = [run for run in runs if run["problem"] == problem]
            summarize(problem, mine, args, seeds=len({run["seed"] for run in mine}))
        return 0
    from bench.peer_runs import local_ray

    runs: list[dict[str, Any]] = []
    with local_ray(num_cpus=1), common.workdir(args.keep, "peers-search") as root:
        for problem in args.problems:
            epochs, budget = search.settings(problem, args)
            (root / problem).mkdir(parents=True, exist_ok=True)
            if problem == "allennlp":
                search.write_allennlp_slice(root / problem, args)
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                methods = args.methods if seed % 2 else args.methods[::-1]  # alternate who runs first
                for method in methods:
                    if method == RAY:
                        result = run_ray(problem, seed, root / problem, args)
                    else:
                        result = search.run(problem, method, seed, root, args)
                    runs.append(result)
                    print(f"  {problem} seed {seed} {search.METHODS[method][0]}: {len(result['trials'])} trials, "
                          f"best within budget {search.best_within(result['trials'], budget * epochs):.3f}, "
                          f"{result['wall_s']:.0f} s", flush=True)
            summarize(problem, [run for run in runs if run["problem"] == problem], args, seeds=args.seeds)
    common.write_json(args.json, {"args": vars(args), "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Figure 3: search efficiency. Epochs of compute to reach a target score; best score at a fixed budget.

    .venv/bin/python bench/search.py                      # both problems, 5 seeds
    .venv/bin/python bench/search.py --problems allennlp --methods tpe-asha default random
    .venv/bin/python bench/search.py --problems digits    # the public benchmark only
    .venv/bin/python bench/search.py --smoke              # tiny budgets, 1 seed

Ways to search, each over `--seeds` seeds (study.seed: the sampler's seed and the trials'):

- snakesweep default: config/optuna.json as shipped, TPESampler(n_startup_trials=5) +
  HyperbandPruner(min_resource=1, max_resource=<the problem's epochs>, reduction_factor=3).
- random, no pruning: RandomSampler + NopPruner; the grid-and-script habit.
- random + ASHA: RandomSampler + SuccessiveHalvingPruner(min_resource=1, reduction_factor=4), Optuna's
  asynchronous successive halving with the defaults of Ray Tune's ASHAScheduler (grace_period=1,
  reduction_factor=4), which Ray Tune suggests as its default scheduler.
- (`--methods tpe-asha ...` only) TPE + ASHA: the default sampler with the ASHA pruner, to tell
  the sampler's share from the pruner's. `--methods` lists the methods to run; the first is the
  one the others are compared with.

Two problems:

- digits: Bayesmark's MLP-adam on scikit-learn's digits, trained epoch by epoch (bench/mlp_digits.py),
  27 epochs a trial at most, through the python launcher.
- allennlp: the default example as shipped (config/model.jsonnet, config/search_space.json, 8 epochs),
  through the allennlp launcher, on a slice of data/debian_sections so that 3 methods x 5 seeds fit
  this machine: the first `--train-examples` training and `--validation-examples` validation examples.
  The enqueued start point of config/config.yaml is left out, for every method alike.

Each run is one `snakesweep.worker.Worker`, in this process (its trials are forked processes as
always), on its own SQLite study, one trial at a time; it is given one more trial until the epochs
its trials computed reach the budget, `--budget` full trainings (`budget x epochs` epochs). An epoch
counts when its metrics_epoch_N.json was written, also when the worker stopped the trial right after.
Reported per method, median over seeds with min-max:

- epochs to target: compute spent (all trials so far, pruned ones included) when the first trial
  completed with a best validation accuracy >= the target ('>B' where a seed never got there). The
  target, unless given: what random search without pruning reaches with the whole budget (median
  over seeds), so the ratio reads "reaches random search's result N times sooner".
- best at B: the best completed trial among those that finished within the budget, as the
  sweep would report it; also at a third of the budget.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

TPE = {"type": "TPESampler", "attributes": {"n_startup_trials": 5}}
RANDOM_SAMPLER = {"type": "RandomSampler", "attributes": {}}
ASHA = {"type": "SuccessiveHalvingPruner", "attributes": {"min_resource": 1, "reduction_factor": 4}}
# key: (label, optuna.json; None: config/optuna.json with max_resource set to the epochs)
METHODS = {
    "default": ("snakesweep default (TPE + Hyperband)", None),
    "random": ("random, no pruning", {"sampler": RANDOM_SAMPLER, "pruner": {"type": "NopPruner", "attributes": {}}}),
    "asha": ("random + ASHA", {"sampler": RANDOM_SAMPLER, "pruner": ASHA}),
    # Not in the default set: the default sampler with the ASHA pruner, to tell sampler from pruner.
    "tpe-asha": ("TPE + ASHA", {"sampler": TPE, "pruner": ASHA}),
}
DEFAULTS = {
    # problem: (epochs per trial, budget in full trainings), full and smoke size
    "digits": {"full": (27, 10), "smoke": (3, 2)},
    "allennlp": {"full": (8, 8), "smoke": (2, 2)},
}
RANDOM = "random"


def parse_args() -> Any:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--problems", nargs="+", choices=sorted(DEFAULTS), default=["digits", "allennlp"])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=["default", "random", "asha"],
                        help="the first is the one the others are compared with (default: default random asha)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 5; smoke 1)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs a trial at most (default: per problem)")
    parser.add_argument("--budget", type=float, default=None, help="budget in full trainings (default: per problem)")
    parser.add_argument("--target", type=float, default=None,
                        help="target validation accuracy (default: what random search without pruning reaches "
                             "with the whole budget, median over seeds)")
    parser.add_argument("--train-examples", type=int, default=None, help="allennlp: training slice (default 600)")
    parser.add_argument("--validation-examples", type=int, default=None,
                        help="allennlp: validation slice (default 200)")
    return common.parse_sized(parser, seeds=(1, 5), train_examples=(100, 600), validation_examples=(50, 200))


def settings(problem: str, args: Any) -> tuple[int, float]:
    epochs, budget = DEFAULTS[problem]["smoke" if args.smoke else "full"]
    return args.epochs or epochs, args.budget or budget


def default_optuna(epochs: int) -> dict[str, Any]:
    data = json.loads((common.ROOT / "config" / "optuna.json").read_text())
    if data["pruner"]["type"] == "HyperbandPruner":
        data["pruner"]["attributes"]["max_resource"] = epochs
    return data


def project(problem: str, directory: Path, method: str, seed: int, epochs: int, args: Any, root: Path) -> Path:
    optuna_json = METHODS[method][1] or default_optuna(epochs)
    study = {"name": f"{problem}-{seed}", "seed": seed, "n_trials": 1}
    if problem == "digits":
        from bench.mlp_digits import JSONNET, SPACE

        return common.write_project(
            directory, space=SPACE, jsonnet=JSONNET % epochs, optuna_json=optuna_json, study=study,
            launcher={"type": "python", "function": "bench.mlp_digits:train"},
            model={"seed_keys": ["random_seed"]}, workers={"threads": 1, "poll_s": 0.02},
        )
    overrides: dict[str, Any] = {"train_data_path": str(root / "train.jsonl"),
                                 "validation_data_path": str(root / "validation.jsonl")}
    if epochs != 8:
        overrides["trainer.num_epochs"] = epochs
    return common.write_project(
        directory, space=json.loads((common.ROOT / "config" / "search_space.json").read_text()),
        jsonnet=(common.ROOT / "config" / "model.jsonnet").read_text(), optuna_json=optuna_json, study=study,
        launcher={"type": "allennlp"}, model={"overrides": overrides}, workers={"threads": 1, "poll_s": 0.1},
    )


def write_allennlp_slice(directory: Path, args: Any) -> None:
    """train.jsonl and validation.jsonl in `directory`: the first examples of data/debian_sections."""
    data = common.ROOT / "data" / "debian_sections"
    for name, count in (("train", args.train_examples), ("validation", args.validation_examples)):
        lines = (data / f"{name}.jsonl").read_text().splitlines(keepends=True)[:count]
        (directory / f"{name}.jsonl").write_text("".join(lines))


def trial_records(worker: Any) -> list[dict[str, Any]]:
    """The trials the worker's study ran, in order: surplus claims and warm-start trials left out."""
    from snakesweep.paths import Paths
    from snakesweep.trials import real_trials

    records = []
    for trial in sorted(real_trials(worker.study.get_trials(deepcopy=False)), key=lambda t: t.number):
        if trial.state.name not in ("COMPLETE", "PRUNED", "FAIL"):
            continue
        directory = Paths.of(worker.config).trial_dir(worker.spec.name, trial.number)
        records.append({"number": trial.number, "state": trial.state.name, "value": trial.value,
                        "epochs": len(list(directory.glob("metrics_epoch_*.json"))),
                        "seconds": trial.duration.total_seconds() if trial.duration else None})
    return records


def run_one_more(worker: Any, records: list[dict[str, Any]]) -> None:
    """Let the worker run one trial more than the finished ones in `records`; an error if it ran none."""
    worker.limits = dataclasses.replace(worker.limits, n_trials=sum(r["state"] != "FAIL" for r in records) + 1)
    worker.run()
    if len(trial_records(worker)) == len(records):
        raise RuntimeError(f"the worker ran no trial: {worker.stopped}")


def run(problem: str, method: str, seed: int, root: Path, args: Any) -> dict[str, Any]:
    from snakesweep.config import load_config
    from snakesweep.worker import Worker

    epochs, budget = settings(problem, args)
    limit = budget * epochs
    directory = root / problem / f"{method}-{seed}"
    config_path = project(problem, directory, method, seed, epochs, args, root / problem)
    common.create_study(config_path)
    cwd = os.getcwd()
    os.chdir(common.ROOT)  # as the workflow runs workers: relative paths in configs are the repo's
    try:
        worker = Worker(load_config(config_path), 0)
        worker.launcher.prepare()  # AllenNLP's imports: once per process, not part of any run's time
        started = time.monotonic()
        while True:
            records = trial_records(worker)
            if sum(r["epochs"] for r in records) >= limit:
                break
            run_one_more(worker, records)
        wall = time.monotonic() - started
    finally:
        os.chdir(cwd)
    if not args.keep:
        shutil.rmtree(directory, ignore_errors=True)
    return {"problem": problem, "method": method, "seed": seed, "trials": records, "wall_s": wall}


def trajectory(records: list[dict[str, Any]]) -> list[tuple[int, float | None, str]]:
    """(epochs spent so far, value or None, state) after each trial, in the order they ran."""
    spent = 0
    out = []
    for record in records:
        spent += record["epochs"]
        out.append((spent, record["value"] if record["state"] == "COMPLETE" else None, record["state"]))
    return out


def best_within(records: list[dict[str, Any]], limit: float) -> float:
    values = [v for spent, v, _ in trajectory(records) if v is not None and spent <= limit]
    return max(values) if values else float("nan")


def epochs_to(records: list[dict[str, Any]], target: float, limit: float) -> float:
    for spent, value, _ in trajectory(records):
        if spent > limit:
            break
        if value is not None and value >= target:
            return spent
    return math.inf


def summarize(problem: str, runs: list[dict[str, Any]], args: Any) -> None:
    epochs, budget = settings(problem, args)
    limit = budget * epochs
    third = limit / 3
    target = args.target
    if target is None:
        randoms = [best_within(r["trials"], limit) for r in runs if r["method"] == RANDOM]
        if not randoms:
            raise SystemExit(
                "no run of random search to set the target from: pass --target, or add random to --methods")
        target = common.median(randoms)
    rows = []
    medians: dict[str, tuple[float, float]] = {}
    for method in args.methods:
        mine = [r for r in runs if r["method"] == method]
        to_target = [epochs_to(r["trials"], target, limit) for r in mine]
        reached = [x for x in to_target if math.isfinite(x)]
        best = [best_within(r["trials"], limit) for r in mine]
        best_third = [best_within(r["trials"], third) for r in mine]
        trials = [sum(1 for s, _, _ in trajectory(r["trials"]) if s <= limit) for r in mine]
        pruned = [sum(1 for s, _, state in trajectory(r["trials"]) if s <= limit and state == "PRUNED") for r in mine]
        median_to = common.median(to_target)
        medians[method] = (median_to, common.median(best))
        shown = f">{limit:.0f}" if not math.isfinite(median_to) else f"{median_to:.0f}"
        span = (f" ({min(reached):.0f}-{max(reached):.0f})" if reached else "")
        rows.append([f"{METHODS[method][0]} ({method})", f"{shown}{span}, reached {len(reached)}/{len(mine)}",
                     common.spread([b for b in best_third if not math.isnan(b)], 3),
                     common.spread([b for b in best if not math.isnan(b)], 3),
                     f"{common.median(trials):.0f} ({common.median(pruned):.0f} pruned)",
                     f"{common.median([r['wall_s'] for r in mine]):.0f}"])
    first = args.methods[0]
    ours_to, ours_best = medians[first]
    for method in args.methods[1:]:
        theirs_to, theirs_best = medians[method]
        if math.isfinite(ours_to) and math.isfinite(theirs_to):
            ratio = f"{theirs_to / ours_to:.2f}x"
        elif math.isfinite(ours_to):
            ratio = f"only {first} reaches it"
        elif math.isfinite(theirs_to):
            ratio = f"only {method} reaches it"
        else:
            ratio = "neither reaches it"
        rows.append([f"{method} / {first}", f"{ratio} (median epochs to target)", "",
                     f"{ours_best - theirs_best:+.3f} ({first} minus {method})", "", ""])
    print()
    how = "given" if args.target is not None else "what random search without pruning reaches with B, median"
    print(f"### {problem}: target {target:.3f} ({how}), budget B = {budget:g} x {epochs} = {limit:.0f} epochs, "
          f"{args.seeds} seeds")
    print(common.table(["method (key)", "epochs to target (median (min-max of those that reached it))",
                        f"best at {third:.0f} epochs", f"best at B={limit:.0f} epochs",
                        "trials within B (pruned)", "wall s/run"], rows))


def main() -> int:
    args = parse_args()
    warnings.simplefilter("ignore")  # AllenNLP's dependencies warn about themselves on import
    logging.getLogger("snakesweep").setLevel(logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    common.header("Search efficiency: default sampler and pruner vs random and random + ASHA", args)
    runs: list[dict[str, Any]] = []
    with common.workdir(args.keep, "search") as root:
        for problem in args.problems:
            epochs, budget = settings(problem, args)
            (root / problem).mkdir(parents=True, exist_ok=True)
            if problem == "allennlp":
                write_allennlp_slice(root / problem, args)
            for seed in range(1, args.seeds + 1):
                for method in args.methods:
                    result = run(problem, method, seed, root, args)
                    runs.append(result)
                    print(f"  {problem} seed {seed} {METHODS[method][0]}: {len(result['trials'])} trials, "
                          f"best within budget {best_within(result['trials'], budget * epochs):.3f}, "
                          f"{result['wall_s']:.0f} s",
                          flush=True)
        for problem in args.problems:
            summarize(problem, [r for r in runs if r["problem"] == problem], args)
    common.write_json(args.json, {"args": vars(args), "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())

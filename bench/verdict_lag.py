"""Figure 10: epochs trained past the pruner's verdict, per launcher; and what the handshake costs an epoch.

    .venv/bin/python bench/verdict_lag.py                                  # this source tree only
    .venv/bin/python bench/verdict_lag.py --before BASE/src                # alternating with another tree
    .venv/bin/python bench/verdict_lag.py --smoke                          # ASHA only, 3 trials of 4 epochs
    .venv/bin/python bench/verdict_lag.py --launchers command --pruners asha --repeats 5

`--before` runs the workers (and their trainers) on another source tree, alternating with this one,
e.g. the base commit's: `git archive main src | tar -x -C BASE`.

Each run: a fresh SQLite study of `--trials` trials, 2 real worker processes (`python -m
snakesweep.cli worker`), `workers.poll_s` `--poll` (the default 1.0), one thread each, trials of
`--epochs` short epochs (`--sleep` seconds each), with one of two pruners:

- default: config/optuna.json as shipped, TPESampler(n_startup_trials=5) + HyperbandPruner(min_resource=1,
  max_resource=epochs, reduction_factor=3);
- asha: RandomSampler + SuccessiveHalvingPruner(min_resource=1, reduction_factor=4).

Trainers: python and command launchers: tests/trainers/curve.py (a curve from the parameters, a
checkpoint after each epoch); allennlp: the tests' tiny classifier (tests/data/allennlp), its epochs
slowed to about `--sleep` by the tests' `snakesweep-test-slow` callback.

Past the verdict: for each pruned trial, the epoch files beyond its last reported step (its last
intermediate value), summed; as a share of every epoch file of the study (all epochs trained).

The handshake's cost: one worker, the python launcher, NopPruner, trials of `--tiny-epochs` epochs
that do nothing but write their epoch file, once through `trialfiles.write_epoch_metrics` (each
epoch waits for the worker's verdict) and once with plain `json` (no handshake; the worker reads
the files as they appear). Time per epoch: from the first epoch file to the last, over the epochs between.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

ROOT = common.ROOT
SPACE = {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}, "layers": {"type": "int", "low": 1, "high": 3}}
CURVE = ("local lr = std.parseJson(std.extVar('lr')); local layers = std.parseJson(std.extVar('layers')); "
         "{lr: lr, layers: layers, epochs: %d, sleep_s: %s}")
ALLENNLP_SPACE = {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                  "dropout": {"type": "float", "low": 0.0, "high": 0.5}}
ALLENNLP = """
local lr = std.parseJson(std.extVar('lr'));
local dropout = std.parseJson(std.extVar('dropout'));
local base = import '%s';
base + {
  train_data_path: '%s/tests/data/allennlp/train.jsonl',
  validation_data_path: '%s/tests/data/allennlp/validation.jsonl',
  model+: {dropout: dropout},
  trainer+: {num_epochs: %d, optimizer+: {lr: lr}, callbacks: [{type: 'snakesweep-test-slow', sleep_s: %s}]},
}
"""
BATCHES = 7  # the tiny classifier's training batches an epoch (100 examples, batches of 16)


def pruner(name: str, epochs: int) -> dict[str, Any]:
    if name == "default":
        data = json.loads((ROOT / "config" / "optuna.json").read_text())
        data["pruner"]["attributes"]["max_resource"] = epochs
        return data
    return {"sampler": {"type": "RandomSampler", "attributes": {}},
            "pruner": {"type": "SuccessiveHalvingPruner", "attributes": {"min_resource": 1, "reduction_factor": 4}}}


def launcher_setup(launcher: str, args: Any) -> dict[str, Any]:
    if launcher == "allennlp":
        jsonnet = ALLENNLP % (ROOT / "tests/data/allennlp/tiny_classifier.json", ROOT, ROOT, args.epochs,
                              args.sleep / BATCHES)
        return {"space": ALLENNLP_SPACE, "jsonnet": jsonnet,
                "launcher": {"type": "allennlp", "include_package": ["tests.trainers.allennlp_plugin"]}}
    spec = ({"type": "python", "function": "tests.trainers.curve:train"} if launcher == "python" else
            {"type": "command", "command": ["python", str(ROOT / "tests/trainers/curve.py"), "{config}",
                                            "{serialization_dir}"]})
    return {"space": SPACE, "jsonnet": CURVE % (args.epochs, args.sleep), "launcher": spec}


def side_env(source: Path | None) -> dict[str, str]:
    """Workers on `source` (a tree holding the `snakesweep` package) ahead of this one, or on this one."""
    env = common.child_env()
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), env["PYTHONPATH"]])
    return env


def epoch_files(trial_dir: Path) -> list[int]:
    from snakesweep.trialfiles import EPOCH_PATTERN

    return [int(m[1]) for p in trial_dir.rglob("metrics_epoch_*.json") if (m := EPOCH_PATTERN.match(p.name))]


def lag_run(directory: Path, launcher: str, pruner_name: str, seed: int, source: Path | None,
            args: Any) -> dict[str, Any]:
    setup = launcher_setup(launcher, args)
    config_path = common.write_project(
        directory, space=setup["space"], jsonnet=setup["jsonnet"], optuna_json=pruner(pruner_name, args.epochs),
        study={"n_trials": args.trials, "seed": seed, "heartbeat_s": 30}, launcher=setup["launcher"],
        workers={"poll_s": args.poll, "threads": 1})
    study = common.create_study(config_path).study_name
    env = side_env(source)
    logs = [directory / f"worker-{i}.log" for i in range(2)]
    common.wait_all([common.start_worker(config_path, i, env=env, log=logs[i]) for i in range(2)], logs)
    trials_dir = directory / "results" / "studies" / study / "trials"
    total = past = pruned = 0
    for trial in common.load_trials(config_path):
        epochs = epoch_files(trials_dir / str(trial.number))
        total += len(epochs)
        if trial.state.name == "PRUNED":
            pruned += 1
            last = max(trial.intermediate_values, default=-1)
            past += sum(epoch > last for epoch in epochs)
    return {"launcher": launcher, "pruner": pruner_name, "past": past, "total": total, "pruned": pruned,
            "share": 100 * past / total if total else 0.0}


def tiny(config: dict[str, Any], serialization_dir: str) -> None:
    """A trainer whose epochs do nothing but write their file: `plain_json` or through trialfiles."""
    from snakesweep.trialfiles import write_epoch_metrics, write_final_metrics

    out = Path(serialization_dir)
    for epoch in range(int(config["epochs"])):
        metrics = {"validation_accuracy": epoch / 1000, "epoch": epoch}
        if config.get("plain_json"):
            (out / "epoch.tmp").write_text(json.dumps(metrics))
            (out / "epoch.tmp").replace(out / f"metrics_epoch_{epoch}.json")
        else:
            write_epoch_metrics(out, epoch, metrics)
    write_final_metrics(out, {"best_validation_accuracy": 1.0})


def cost_run(directory: Path, plain_json: bool, args: Any) -> list[float]:
    jsonnet = "{epochs: %d, plain_json: %s, lr: std.parseJson(std.extVar('lr'))}" % (
        args.tiny_epochs, "true" if plain_json else "false")
    config_path = common.write_project(
        directory, space={"lr": {"type": "float", "low": 1e-4, "high": 1e-1}}, jsonnet=jsonnet,
        study={"n_trials": args.cost_trials}, launcher={"type": "python", "function": "bench.verdict_lag:tiny"},
        workers={"poll_s": args.poll, "threads": 1})
    study = common.create_study(config_path).study_name
    log = directory / "worker.log"
    common.wait_all([common.start_worker(config_path, env=side_env(None), log=log)], [log])
    per_epoch = []
    for trial_dir in sorted((directory / "results" / "studies" / study / "trials").iterdir()):
        times = sorted(p.stat().st_mtime for p in trial_dir.glob("metrics_epoch_*.json"))
        per_epoch.append(1000 * (times[-1] - times[0]) / (len(times) - 1))
    return per_epoch


def print_lag(runs: list[dict[str, Any]], sides: list[tuple[str, Path | None]], args: Any) -> None:
    rows = []
    for launcher, pruner_name in itertools.product(args.launchers, args.pruners):
        row: list[Any] = [launcher, pruner_name]
        for name, _ in sides:
            mine = [r for r in runs if (r["launcher"], r["pruner"], r["side"]) == (launcher, pruner_name, name)]
            row += [common.spread([r["share"] for r in mine], 1), common.spread([float(r["past"]) for r in mine], 0)]
        rows.append(row)
    headers = ["launcher", "pruner"]
    for name, _ in sides:
        headers += [f"{name}: % of epochs past the verdict", f"{name}: epochs past"]
    print()
    print(common.table(headers, rows))
    print("\nmedian (min-max, n=repeats) over runs; an epoch past the verdict: an epoch file of a pruned trial "
          "beyond its last reported step.\n", flush=True)


def parse_args() -> Any:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--before", type=Path, default=None, metavar="SRC",
                        help="another source tree (holding snakesweep/) to measure alternately, e.g. the base commit's")
    parser.add_argument("--launchers", nargs="+", default=["python", "allennlp", "command"],
                        choices=["python", "allennlp", "command"])
    parser.add_argument("--pruners", nargs="+", default=None, choices=["default", "asha"])
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--sleep", type=float, default=None, help="seconds an epoch")
    parser.add_argument("--poll", type=float, default=1.0, help="workers.poll_s (default 1.0, the config's default)")
    parser.add_argument("--tiny-epochs", type=int, default=None, help="epochs a trial for the handshake's cost")
    parser.add_argument("--cost-trials", type=int, default=None)
    parser.add_argument("--parts", nargs="+", default=["lag", "cost"], choices=["lag", "cost"],
                        help="the epochs past the verdict, the handshake's cost, or both (default)")
    return common.parse_sized(parser, pruners=(["asha"], ["default", "asha"]), repeats=(1, 3), trials=(3, 8),
                              epochs=(4, 9), sleep=(0.05, 0.1), tiny_epochs=(50, 300), cost_trials=(1, 3))


def main() -> int:
    args = parse_args()
    common.header("Epochs trained past the pruner's verdict", args)
    sides: list[tuple[str, Path | None]] = [("now", None)]
    if args.before is not None:
        sides = [("before", args.before.resolve()), *sides]
    print(f"2 workers, {args.trials} trials of {args.epochs} epochs of {args.sleep} s, poll_s {args.poll}, "
          f"{args.repeats} repeat(s); sides: {', '.join(name for name, _ in sides)}\n", flush=True)
    runs: list[dict[str, Any]] = []
    costs: dict[bool, list[float]] = {}
    with common.workdir(args.keep, "verdict-lag") as root:
        # The sides alternate, run by run.
        for repeat, launcher, pruner_name, (name, source) in itertools.product(
                range(args.repeats) if "lag" in args.parts else (), args.launchers, args.pruners, sides):
            started = time.monotonic()
            run = lag_run(root / f"{launcher}-{pruner_name}-{name}-{repeat}", launcher, pruner_name, repeat + 1,
                          source, args)
            run.update(side=name, repeat=repeat, wall_s=time.monotonic() - started)
            runs.append(run)
            print(f"  {name} {launcher} {pruner_name} #{repeat}: {run['past']} of {run['total']} epochs "
                  f"past the verdict ({run['pruned']} pruned), {run['wall_s']:.0f} s", flush=True)
        if runs:
            print_lag(runs, sides, args)
        for repeat, plain_json in itertools.product(range(args.repeats) if "cost" in args.parts else (), (False, True)):
            costs.setdefault(plain_json, []).extend(cost_run(root / f"cost-{plain_json}-{repeat}", plain_json, args))
    if costs:
        print(common.table(["epochs written", "ms per epoch"], [
            ["through trialfiles: the handshake", common.quartiles(costs[False], 2)],
            ["plain json: no handshake", common.quartiles(costs[True], 2)],
        ]))
        print(f"\n{args.tiny_epochs} epochs a trial, {args.cost_trials} trial(s) x {args.repeats} repeat(s) each way, "
              "one worker, NopPruner, SQLite.")
    common.write_json(args.json, {"args": vars(args), "runs": runs, "cost_ms": costs})
    return 0


if __name__ == "__main__":
    sys.exit(main())

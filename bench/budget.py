"""The budgets' overshoot: how far past study.budget.epochs and study.budget.hours N workers go.

    .venv/bin/python bench/budget.py                  # N in 1 4 16, 3 repeats
    .venv/bin/python bench/budget.py --smoke          # N in 1 2, 1 repeat
    .venv/bin/python bench/budget.py --workers 4 --repeats 5 --kinds hours

Each run: a fresh SQLite study with only a budget (no n_trials), N real worker processes started
at once (`python -m snakesweep.cli worker`), the python launcher, RandomSampler, no pruner,
`workers.poll_s` 0.1.

- epochs, `free`: tests/trainers/curve.py, `--epochs` epochs of `--sleep` seconds a trial, which
  goes on to its next epoch without waiting; budget `--epochs-per-worker` x N. Trained: the
  epoch files on disk. An epoch its trainer finishes before its worker has read the one before is
  trained without the budget's say: that is the overshoot.
- epochs, `waits`: tests/trainers/lockstep.py, which starts an epoch only once its worker has
  recorded the one before (as a trainer waiting for the worker's verdict does); same budget.
- hours: tests/trainers/sleepy.py, trials longer than the run, budget `--seconds-per-worker` x N
  trial seconds. Spent: the trials' recorded training time (claim to the trainer's end). Past the
  budget: each running trial's worker notices the end of its share and stops its trainer.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

SPACE = {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}, "layers": {"type": "int", "low": 1, "high": 3}}
VARS = "local lr = std.parseJson(std.extVar('lr')); local layers = std.parseJson(std.extVar('layers')); "


def parse_args() -> Any:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=None, help="N values (default 1 4 16)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None, help="epochs a trial")
    parser.add_argument("--sleep", type=float, default=None, help="seconds an epoch")
    parser.add_argument("--epochs-per-worker", type=int, default=None)
    parser.add_argument("--seconds-per-worker", type=float, default=None)
    parser.add_argument("--kinds", nargs="+", default=["free", "waits", "hours"], choices=["free", "waits", "hours"])
    return common.parse_sized(parser, workers=([1, 2], [1, 4, 16]), repeats=(1, 3), epochs=(3, 5), sleep=(0.2, 0.5),
                              epochs_per_worker=(5, 12), seconds_per_worker=(3.0, 10.0))


def run(directory: Path, n: int, jsonnet: str, function: str, budget: dict[str, Any], storage: str) -> list[Any]:
    config = common.write_project(
        directory, space=SPACE, jsonnet=VARS + jsonnet,
        study={"n_trials": None, "budget": budget, "storage": storage, "heartbeat_s": 30},
        launcher={"type": "python", "function": function}, workers={"poll_s": 0.1},
        objective={"intermediate": None})
    common.create_study(config)
    logs = [directory / f"worker-{i}.log" for i in range(n)]
    common.wait_all([common.start_worker(config, i, log=logs[i]) for i in range(n)], logs)
    return common.load_trials(config)


def epochs_on_disk(directory: Path) -> int:
    from snakesweep.trialfiles import EPOCH_PATTERN

    return sum(1 for p in (directory / "results").glob("studies/*/trials/*/metrics_epoch_*.json")
               if EPOCH_PATTERN.match(p.name))


def main() -> None:
    from snakesweep.budgets import trial_seconds

    args = parse_args()
    common.header("Budgets: overshoot with N workers", args)
    rows: list[list[Any]] = []
    raw: dict[str, Any] = {}
    with common.workdir(args.keep, "budget") as root:
        for n in args.workers:
            budget = args.epochs_per_worker * n
            for kind, function in (("free", "tests.trainers.curve:train"), ("waits", "tests.trainers.lockstep:train")):
                if kind not in args.kinds:
                    continue
                over = []
                for repeat in range(args.repeats):
                    directory = root / f"epochs-{kind}-{n}-{repeat}"
                    storage = f"sqlite:///{directory}/results/optuna.db"
                    jsonnet = "{lr: lr, layers: layers, epochs: %d, sleep_s: %s, storage: '%s'}" % (
                        args.epochs, args.sleep, storage)
                    (directory / "results").mkdir(parents=True)
                    run(directory, n, jsonnet, function, {"epochs": budget}, storage)
                    over.append(epochs_on_disk(directory) - budget)
                raw[f"epochs-{kind}-{n}"] = over
                rows.append([f"epochs ({kind})", n, budget, common.spread(over, 0),
                             common.spread([100 * o / budget for o in over], 1)])
            if "hours" not in args.kinds:
                continue
            seconds = args.seconds_per_worker * n
            over_s = []
            for repeat in range(args.repeats):
                directory = root / f"hours-{n}-{repeat}"
                trials = run(directory, n, "{lr: lr, layers: layers, epochs: 100000, sleep_s: 0.05}",
                             "tests.trainers.sleepy:train", {"hours": seconds / 3600}, None)
                over_s.append(sum(trial_seconds(t, 0) for t in trials) - seconds)
            raw[f"hours-{n}"] = over_s
            rows.append(["hours (s)", n, f"{seconds:g} s", common.spread(over_s, 2),
                         common.spread([100 * o / seconds for o in over_s], 1)])
    print(common.table(["budget", "N", "budget size", "past the budget", "past the budget %"], rows))
    common.write_json(args.json, raw)


if __name__ == "__main__":
    main()

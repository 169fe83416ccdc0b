"""Figure 1: what starting a trial costs. One-epoch AllenNLP trials on a 200-example slice.

    .venv/bin/python bench/trial_start.py             # 3 rounds of 5 trials each way
    .venv/bin/python bench/trial_start.py --smoke     # 1 round of 1 trial each way

The default example's model (config/model.jsonnet, bag-of-embeddings encoder, the enqueued start
point of config/config.yaml) trains for one epoch on the first 200 examples of
data/debian_sections/train.jsonl, validated on the first 100 of validation.jsonl, one CPU thread.

- ours: a study of `--trials` trials of that config (single-choice search space, RandomSampler,
  NopPruner), one `python -m snakesweep.cli worker` process, the `allennlp` launcher (trials forked
  from the worker, which imported AllenNLP once). Per trial: claim to result, from the storage.
- allennlp train: the same rendered config.json (taken from one of our trials, seed included) run
  as `allennlp train CONFIG -s DIR`, a fresh process per trial, as allennlp-optuna's retrain and
  hand-written sweep scripts do; OMP/MKL threads capped at 1 as the worker caps its trials.
  Per trial: the process's wall time.
- claim to epoch 0: from the trial's claim (ours) or the process's start (theirs) to AllenNLP's
  "Epoch 0/0" log line: data reading, vocabulary, model, and for `allennlp train` its imports.
- worker start: launch of the worker process to its first claim (imports of AllenNLP and torch,
  once per worker, not per trial); `ours incl. start` spreads it over the round's trials.

Rounds alternate ours and theirs so that drifting load on a shared machine hits both alike.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

POINT = {"embedding_dim": 64, "encoder": "boe", "dropout": 0.1, "lr": 0.005, "batch_size": 32}
EPOCH_0 = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - INFO - allennlp\.training\.\S+ - Epoch 0/", re.M)


def parse_args() -> Any:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--trials", type=int, default=None, help="trials per round, each way")
    parser.add_argument("--train-examples", type=int, default=200)
    parser.add_argument("--validation-examples", type=int, default=100)
    return common.parse_sized(parser, rounds=(1, 3), trials=(1, 5))


def epoch_0_at(log: Path) -> datetime | None:
    match = EPOCH_0.search(log.read_text(errors="replace")) if log.exists() else None
    return datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f") if match else None


def slices(root: Path, args: Any) -> tuple[Path, Path]:
    data = common.ROOT / "data" / "debian_sections"
    paths = []
    for name, count in (("train", args.train_examples), ("validation", args.validation_examples)):
        lines = (data / f"{name}.jsonl").read_text().splitlines(keepends=True)[:count]
        path = root / f"{name}-{count}.jsonl"
        path.write_text("".join(lines))
        paths.append(path)
    return paths[0], paths[1]


def ours(root: Path, round_: int, args: Any, train: Path, validation: Path) -> dict[str, Any]:
    directory = root / f"ours-{round_}"
    space = {name: {"type": "categorical", "choices": [value]} for name, value in POINT.items()}
    config_path = common.write_project(
        directory, space=space, jsonnet=(common.ROOT / "config" / "model.jsonnet").read_text(),
        study={"name": f"start-{round_}", "n_trials": args.trials},
        model={"overrides": {"train_data_path": str(train), "validation_data_path": str(validation),
                             "trainer.num_epochs": 1}},
        launcher={"type": "allennlp"}, workers={"threads": 1},
    )
    study_name = common.create_study(config_path).study_name
    log = directory / "worker.log"
    launched_at = datetime.now()
    started = time.monotonic()
    common.wait_all([common.start_worker(config_path, log=log)], [log])
    wall = time.monotonic() - started
    trials = sorted(common.load_trials(config_path), key=lambda t: t.number)
    if [t.state.name for t in trials] != ["COMPLETE"] * args.trials:
        raise SystemExit(f"{directory}: trials ended {[t.state.name for t in trials]}; see {log}")
    trial_dirs = [directory / "results" / "studies" / study_name / "trials" / str(t.number) for t in trials]
    to_epoch = []
    for trial, trial_dir in zip(trials, trial_dirs):
        at = epoch_0_at(trial_dir / "train.log")
        if at is not None:
            to_epoch.append((at - trial.datetime_start).total_seconds())
    return {
        "trial_s": [t.duration.total_seconds() for t in trials],
        "to_epoch_0_s": to_epoch,
        "worker_wall_s": wall,
        "worker_start_s": (trials[0].datetime_start - launched_at).total_seconds(),
        "config": trial_dirs[0] / "config.json",
    }


def theirs(root: Path, round_: int, index: int, config: Path) -> dict[str, Any]:
    directory = root / f"theirs-{round_}-{index}"
    log = root / f"theirs-{round_}-{index}.log"
    env = common.child_env({name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                     "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")})
    launched_at = datetime.now()
    started = time.monotonic()
    with open(log, "wb") as output:
        code = subprocess.run([str(common.BIN / "allennlp"), "train", str(config), "-s", str(directory)],
                              cwd=common.ROOT, env=env, stdout=output, stderr=subprocess.STDOUT).returncode
    wall = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"allennlp train exited with {code}:\n{log.read_text()[-3000:]}")
    at = epoch_0_at(log)
    return {"trial_s": wall, "to_epoch_0_s": (at - launched_at).total_seconds() if at else None}


def main() -> int:
    args = parse_args()
    common.header("Trial start: one-epoch AllenNLP trials, allennlp launcher vs `allennlp train`", args)
    print(f"{args.rounds} rounds x {args.trials} trials each way; train {args.train_examples}, "
          f"validation {args.validation_examples} examples, 1 epoch, 1 thread\n", flush=True)
    mine: list[dict[str, Any]] = []
    other: list[dict[str, Any]] = []
    with common.workdir(args.keep, "trial-start") as root:
        train, validation = slices(root, args)
        for round_ in range(args.rounds):
            result = ours(root, round_, args, train, validation)
            mine.append(result)
            runs = [theirs(root, round_, i, result["config"]) for i in range(args.trials)]
            other.extend(runs)
            print(f"  round {round_}: ours {common.median(result['trial_s']):.2f} s/trial "
                  f"(worker start {result['worker_start_s']:.1f} s), allennlp train "
                  f"{common.median([r['trial_s'] for r in runs]):.2f} s/trial", flush=True)
    our_trials = [s for r in mine for s in r["trial_s"]]
    our_epoch = [s for r in mine for s in r["to_epoch_0_s"]]
    our_amortised = [r["worker_wall_s"] / args.trials for r in mine]
    their_trials = [r["trial_s"] for r in other]
    their_epoch = [r["to_epoch_0_s"] for r in other if r["to_epoch_0_s"] is not None]
    ratio = common.median(their_trials) / common.median(our_trials)
    ratio_amortised = common.median(their_trials) / common.median(our_amortised)
    ratio_epoch = common.median(their_epoch) / common.median(our_epoch) if our_epoch and their_epoch else float("nan")
    rows = [
        ["snakesweep worker, allennlp launcher", common.quartiles(our_trials), common.quartiles(our_epoch),
         common.spread([r["worker_start_s"] for r in mine], 1)],
        ["  the same, worker start spread over its trials", common.spread(our_amortised), "", ""],
        ["`allennlp train`, fresh process per trial", common.quartiles(their_trials),
         common.quartiles(their_epoch), "(every trial)"],
        ["ratio allennlp train / ours", f"{ratio:.1f}x ({ratio_amortised:.1f}x incl. worker start)",
         f"{ratio_epoch:.1f}x", ""],
    ]
    print()
    print(common.table(["how a trial runs", "wall per trial s", "claim to epoch 0 s", "worker start s"], rows))
    print(f"\nmedian [IQR, n=trials]; `incl. worker start`: worker process wall / {args.trials} trials, "
          "median (min-max) over rounds.")
    common.write_json(args.json, {"args": vars(args), "ours": [{k: v for k, v in r.items() if k != "config"}
                                                               for r in mine], "theirs": other})
    return 0


if __name__ == "__main__":
    sys.exit(main())

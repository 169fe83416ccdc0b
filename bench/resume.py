"""Figure 7: what an interruption costs a trial, before and after resuming; what resuming costs.

    .venv/bin/python bench/resume.py            # 8-epoch trials stopped in epochs 1, 3, 5; 2 repeats
    .venv/bin/python bench/resume.py --smoke    # 3-epoch trials stopped in epoch 1, once

Per launcher, interruption point k and repeat: a study of one trial and one `snakesweep worker`
process; once the trial has written epoch k - 1's metrics (it is in epoch k), SIGTERM to the worker,
as `scancel` and Slurm's notice send it; then a second worker, which takes the requeued trial and
finishes it.

- epochs trained again: epochs the interrupted attempt had completed that the second attempt
  trains again. Before this release a requeued trial started at epoch 0, so all of them ("before":
  counted from the interrupted attempt's epoch files); now k' - resumed_from_epoch, where k' is
  that count. The epoch in progress at the signal is lost either way and is not in these columns.
- restart to first new epoch: the requeued trial's claim to the first epoch file it writes itself;
  fresh start to epoch 0: the interrupted trial's claim to its first epoch file. Both include the
  trainer's start; the first also moving and loading the checkpoint and, for AllenNLP, replaying
  the data loader over the epochs it skips (how AllenNLP keeps a resumed run's data order).

Launchers: allennlp (tests/data/allennlp's tiny classifier; tests/trainers/allennlp_plugin's
slow-batch callback makes an epoch last about 1 s) and python (tests/trainers/curve.py, 0.5 s
epochs, checkpoints through snakesweep.trialfiles).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

TINY = common.ROOT / "tests" / "data" / "allennlp" / "tiny_classifier.json"


def parse_args() -> Any:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--at", type=int, nargs="+", default=None, help="epochs to interrupt the trial in")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--launchers", nargs="+", default=["allennlp", "python"], choices=["allennlp", "python"])
    return common.parse_sized(parser, epochs=(3, 8), at=([1], [1, 3, 5]), repeats=(1, 2))


def jsonnet(launcher: str, epochs: int) -> str:
    if launcher == "python":
        return f"{{lr: std.parseJson(std.extVar('lr')), layers: 2, epochs: {epochs}, sleep_s: 0.5}}"
    config = json.loads(TINY.read_text())
    for key in ("train_data_path", "validation_data_path"):
        config[key] = str(common.ROOT / config[key])
    config["trainer"].update(num_epochs=epochs, callbacks=[{"type": "snakesweep-test-slow", "sleep_s": 0.12}])
    return f"{json.dumps(config)} + {{trainer+: {{optimizer+: {{lr: std.parseJson(std.extVar('lr'))}}}}}}"


def interrupted_run(root: Path, launcher: str, k: int, repeat: int, args: Any) -> dict[str, Any]:
    directory = root / f"{launcher}-{k}-{repeat}"
    spec = ({"type": "python", "function": "tests.trainers.curve:train"} if launcher == "python"
            else {"type": "allennlp", "include_package": ["tests.trainers.allennlp_plugin"]})
    config_path = common.write_project(
        directory, space={"lr": {"type": "categorical", "choices": [0.01]}}, jsonnet=jsonnet(launcher, args.epochs),
        study={"name": f"resume-{launcher}-{k}-{repeat}", "n_trials": 1}, launcher=spec,
        workers={"threads": 1, "poll_s": 0.05})
    study = common.create_study(config_path).study_name
    trials_dir = directory / "results" / "studies" / study / "trials"
    logs = [directory / "worker-1.log", directory / "worker-2.log"]
    first = common.start_worker(config_path, log=logs[0])
    deadline = time.monotonic() + 600
    while not (trials_dir / "0" / f"metrics_epoch_{k - 1}.json").exists():
        if first.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"trial 0 never reached epoch {k}; see {logs[0]}")
        time.sleep(0.02)
    first.send_signal(signal.SIGTERM)
    first.wait(120)
    common.wait_all([common.start_worker(config_path, log=logs[1])], logs[1:])
    trials = {t.number: t for t in common.load_trials(config_path)}
    (done,) = [t for t in trials.values() if t.state.name == "COMPLETE"]
    completed = len(list((trials_dir / "0").glob("metrics_epoch_*.json")))
    resumed = done.user_attrs.get("resumed_from_epoch", 0)
    new = [p.stat().st_mtime for p in (trials_dir / str(done.number)).glob("metrics_epoch_*.json")
           if int(p.stem.rsplit("_", 1)[1]) >= resumed]
    return {
        "launcher": launcher, "k": k, "completed": completed, "resumed_from_epoch": resumed,
        "again_before": completed, "again_after": max(0, completed - resumed),
        "restart_s": min(new) - done.datetime_start.timestamp(),
        "fresh_s": (trials_dir / "0" / "metrics_epoch_0.json").stat().st_mtime - trials[0].datetime_start.timestamp(),
    }


def main() -> int:
    args = parse_args()
    common.header("Resuming: epochs trained again per interruption, and the cost of a restart", args)
    print(f"{args.epochs}-epoch trials, interrupted in epochs {args.at}, {args.repeats} repeat(s) each; "
          f"launchers {', '.join(args.launchers)}\n", flush=True)
    runs = []
    with common.workdir(args.keep, "resume") as root:
        for repeat in range(args.repeats):
            for launcher in args.launchers:
                for k in args.at:
                    run = interrupted_run(root, launcher, k, repeat, args)
                    runs.append(run)
                    print(f"  {launcher} stopped in epoch {k}: {run['completed']} done, resumed at "
                          f"{run['resumed_from_epoch']}, restart {run['restart_s']:.2f} s", flush=True)
    rows = []
    for launcher in args.launchers:
        for k in args.at:
            mine = [r for r in runs if r["launcher"] == launcher and r["k"] == k]
            rows.append([launcher, k, common.spread([r["again_before"] for r in mine], 0),
                         common.spread([r["again_after"] for r in mine], 0),
                         common.spread([r["resumed_from_epoch"] for r in mine], 0),
                         common.spread([r["restart_s"] for r in mine]), common.spread([r["fresh_s"] for r in mine])])
    print()
    print(common.table(["launcher", "stopped in epoch", "epochs trained again: before", "after", "resumed at",
                        "restart to first new epoch s", "fresh start to epoch 0 s"], rows))
    print("\nmedian (min-max, n=repeats). Before: a requeued trial started at epoch 0 and trained every "
          "completed epoch again.")
    common.write_json(args.json, {"args": vars(args), "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())

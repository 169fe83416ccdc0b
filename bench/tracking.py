"""Figure 6: what MLflow tracking costs a worker, with MLflow up and with MLflow down.

    .venv/bin/python bench/tracking.py              # 20 trials a worker, 3 rounds of each mode
    .venv/bin/python bench/tracking.py --smoke      # 3 trials, 1 round
    .venv/bin/python bench/tracking.py --trials 50 --rounds 5

One `python -m snakesweep.cli worker` process runs `--trials` trials of tests/trainers/curve.py
(3 epochs of `--epoch-s` seconds each, no model) on a SQLite study, in three modes, alternating:

- off: `tracking.mlflow: null`.
- local: the default store, `sqlite:///<results>/mlflow.db`, created with the study's parent run
  before the worker starts, as the workflow's create_study step does.
- down: a server URL on a port where nothing listens.

`wall`: the worker process from start to exit. `exit wait`: from the worker's last trial line to its
exit (the end of its shipper), sampled every 20 ms. `runs`: trial runs in MLflow once the worker has exited.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

MODES = ("off", "local", "down")


def parse_args() -> Any:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--epoch-s", type=float, default=0.2)
    return common.parse_sized(parser, trials=(3, 20), rounds=(1, 3))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(directory: Path, mode: str, trials: int, epoch_s: float) -> dict[str, Any]:
    tracking = {"off": None, "local": {}, "down": {"tracking_uri": f"http://127.0.0.1:{closed_port()}"}}[mode]
    config_path = common.write_project(
        directory, space={"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        jsonnet="{lr: std.parseJson(std.extVar('lr')), layers: 2, epochs: 3, sleep_s: %s}\n" % epoch_s,
        study={"name": "tracking", "n_trials": trials}, launcher={"type": "python", "function": "tests.trainers.curve:train"},
        workers={"threads": 1, "poll_s": 0.1}, tracking={"mlflow": tracking},
    )
    study = common.create_study(config_path).study_name
    if mode == "local":
        from snakesweep.config import load_config
        from snakesweep.tracking import listening

        with listening(load_config(config_path), study, "create_study", ship="at_close") as listener:
            listener.study_created({}, {})
    log = directory / "worker.log"
    started = time.monotonic()
    process = common.start_worker(config_path, log=log)
    last_trial = None
    while process.poll() is None:
        if last_trial is None and f"finished {trials}/{trials}" in log.read_text(errors="replace"):
            last_trial = time.monotonic()
        time.sleep(0.02)
    exited = time.monotonic()
    common.wait_all([process], [log])
    return {"mode": mode, "wall_s": exited - started, "exit_wait_s": exited - (last_trial or exited),
            "runs": count_runs(directory, study) if mode == "local" else 0}


def count_runs(directory: Path, study: str) -> int:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{directory / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tracking")
    runs = client.search_runs([experiment.experiment_id], "tags.`snakesweep.role` = 'trial'", max_results=1000)
    return len(runs)


def main() -> int:
    args = parse_args()
    common.header("MLflow tracking: what it costs a worker", args)
    results = []
    with common.workdir(args.keep, "tracking") as root:
        for round_ in range(args.rounds):
            for mode in MODES:
                result = run(root / f"{mode}-{round_}", mode, args.trials, args.epoch_s)
                results.append(result)
                print(f"  round {round_} {mode}: {result['wall_s']:.1f} s, exit wait {result['exit_wait_s']:.1f} s",
                      flush=True)
    off = common.median([r["wall_s"] for r in results if r["mode"] == "off"])
    rows = []
    for mode in MODES:
        mine = [r for r in results if r["mode"] == mode]
        walls = [r["wall_s"] for r in mine]
        rows.append([mode, common.spread(walls, 1), f"{common.median(walls) / off:.2f}",
                     common.spread([r["exit_wait_s"] for r in mine], 1),
                     "/".join(str(r["runs"]) for r in mine) if mode == "local" else "-"])
    print()
    print(common.table(["tracking", "worker wall s", "/ off", "exit wait s", f"runs of {args.trials}"], rows))
    print(f"\n{args.trials} trials of 3 x {args.epoch_s} s epochs per worker.")
    common.write_json(args.json, {"args": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())

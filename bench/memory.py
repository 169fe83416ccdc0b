"""Figure 5: a worker's memory across many trials in a row stays flat.

    .venv/bin/python bench/memory.py                  # 50 trials: allennlp launcher, then python launcher
    .venv/bin/python bench/memory.py --smoke          # 5 trials, python launcher
    .venv/bin/python bench/memory.py --launchers allennlp --trials 200

One `python -m snakesweep.cli worker` process runs `--trials` trials in a row on a SQLite study
(RandomSampler over the learning rate, MedianPruner, so trials report, get pruned, complete).
Its resident set size (VmRSS of the worker process itself, not of the trial processes it forks)
is sampled every 20 ms and read off after each finished trial; the peak is the kernel's VmHWM.

- allennlp: the tiny AllenNLP classifier of tests/data/allennlp (100 training examples, 1 epoch),
  trials forked from the worker that imported AllenNLP and torch once.
- python: tests/trainers/curve.py's learning curve, 3 epochs, no model (the worker's own cost).

`growth`: RSS after the last trial minus RSS after trial 5 (the first trials warm caches:
Jsonnet, the sampler, SQLAlchemy); `slope`: least-squares KiB per trial over trials 5..N.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

TINY = common.ROOT / "tests" / "data" / "allennlp" / "tiny_classifier.json"
JSONNETS = {
    "allennlp": "local lr = std.parseJson(std.extVar('lr'));\n"
                "(import '%s') + {trainer+: {optimizer+: {lr: lr}, num_epochs: 1}}\n" % TINY,
    "python": "{lr: std.parseJson(std.extVar('lr')), layers: 2, epochs: 3}\n",
}
LAUNCHERS = {
    "allennlp": {"type": "allennlp"},
    "python": {"type": "python", "function": "tests.trainers.curve:train"},
}
FINISHED = re.compile(r"finished (\d+)/(\d+)")


def parse_args() -> Any:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--launchers", nargs="+", choices=sorted(LAUNCHERS), default=None)
    return common.parse_sized(parser, trials=(5, 50), launchers=(["python"], ["allennlp", "python"]))


def measure(root: Path, launcher: str, trials: int) -> dict[str, Any]:
    directory = root / launcher
    config_path = common.write_project(
        directory, space={"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        jsonnet=JSONNETS[launcher], study={"name": f"memory-{launcher}", "n_trials": trials},
        optuna_json={"sampler": {"type": "RandomSampler", "attributes": {}},
                     "pruner": {"type": "MedianPruner", "attributes": {"n_startup_trials": 3}}},
        launcher=LAUNCHERS[launcher], workers={"threads": 1, "poll_s": 0.2},
    )
    common.create_study(config_path)
    log = directory / "worker.log"
    process = common.start_worker(config_path, log=log)
    after: dict[int, float] = {}
    peak = 0.0
    offset = 0
    pending = b""
    while True:
        sample = common.rss_mib(process.pid)
        if sample is not None:
            rss, hwm = sample
            peak = max(peak, hwm)
            with open(log, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            offset += len(chunk)
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                match = FINISHED.search(line.decode(errors="replace"))
                if match:
                    after.setdefault(int(match[1]), rss)
        if process.poll() is not None:
            break
        time.sleep(0.02)
    if process.returncode != 0:
        raise SystemExit(f"the worker exited with {process.returncode}:\n{log.read_text()[-3000:]}")
    states = [t.state.name for t in common.load_trials(config_path)]
    return {"launcher": launcher, "rss_after_trial": after, "peak_mib": peak,
            "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED")}


def slope_kib(after: dict[int, float], start: int) -> float:
    points = [(k, v) for k, v in sorted(after.items()) if k >= start]
    if len(points) < 2:
        return float("nan")
    mean_k = sum(k for k, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    num = sum((k - mean_k) * (v - mean_v) for k, v in points)
    den = sum((k - mean_k) ** 2 for k, _ in points)
    return num / den * 1024 if den else float("nan")


def main() -> int:
    args = parse_args()
    common.header("Memory: one worker, many trials in a row", args)
    results = []
    with common.workdir(args.keep, "memory") as root:
        for launcher in args.launchers:
            result = measure(root, launcher, args.trials)
            results.append(result)
            print(f"  {launcher}: {result['complete']} complete, {result['pruned']} pruned, "
                  f"peak {result['peak_mib']:.0f} MiB", flush=True)
    marks = sorted({k for k in (1, 5, 10, 25, 50, 100, args.trials) if k <= args.trials})
    start = min(5, args.trials)
    rows = []
    for result in results:
        after = result["rss_after_trial"]
        last = after.get(args.trials, float("nan"))
        rows.append([result["launcher"], *[f"{after[k]:.0f}" if k in after else "-" for k in marks],
                     f"{last - after.get(start, float('nan')):+.1f}", f"{slope_kib(after, start):+.0f}",
                     f"{result['peak_mib']:.0f}"])
    print()
    print(common.table(["launcher", *[f"RSS after {k} MiB" for k in marks], f"growth {start}->{args.trials} MiB",
                        "slope KiB/trial", "peak MiB"], rows))
    print("\nRSS of the worker process (trial processes excluded), sampled every 20 ms.")
    common.write_json(args.json, {"args": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())

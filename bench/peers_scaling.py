"""Figure 11, scaling: snakesweep's workers beside Ray Tune and Optuna's own n_jobs, the same sleeping trials.

    .venv/bin/python bench/peers_scaling.py             # N in 1 2 8 32, 3 repeats; 30 s trials at N 8 32
    .venv/bin/python bench/peers_scaling.py --smoke     # N = 2, 1 repeat, no 30 s trials
    .venv/bin/python bench/peers_scaling.py --workers 8 --repeats 5 --long-workers
    .venv/bin/python bench/peers_scaling.py --tools snakesweep --workers 8 32 --long-workers 8 32

Needs Ray Tune: `make bench-peers` (bench/requirements-peers.txt). Per repeat and N, the three
tools run one after the other, their order rotated every repeat, each on N x `--trials-per-worker`
trials of `--epochs` epochs of `--sleep` s, N at once:

- snakesweep: exactly bench/scaling.py's run (N `snakesweep worker` processes on one SQLite study,
  the python launcher forking tests/trainers/sleepy.py per trial); duration: claim to result.
- ray: Ray Tune, `max_concurrent_trials=N` (bench/peer_runs.py); duration: Ray's trial start to
  trial complete, as the driver sees them.
- optuna: `study.optimize(n_jobs=N)` on a SQLite storage (bench/peer_runs.py); duration: Optuna's
  trial start to complete.

wall: from starting the tool's processes to the last one's exit (imports, Ray's start and shutdown
included). efficiency = (sum of trial durations / N) / wall; `useful`: trials x epochs x sleep / N
/ wall, the same for every tool, so each tool's own per-trial overhead counts against it. Ratios
are taken within a repeat, then the median.

Then `--long-workers`: snakesweep alone on trials of `--long-epochs` x `--long-sleep` s (30 s), one
per worker, where its fixed costs (worker start, end-of-study poll) weigh less.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, scaling  # noqa: E402

TOOLS = ["snakesweep", "ray", "optuna"]


def parse_args() -> Any:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--workers", type=int, nargs="*", default=None,
                        help="N values (default 1 2 8 32; none: only the 30 s trials)")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=TOOLS, help="the first is compared with the rest")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--trials-per-worker", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--sleep", type=float, default=None, help="seconds per epoch")
    parser.add_argument("--long-workers", type=int, nargs="*", default=None,
                        help="N values for snakesweep's 30 s trials (default 8 32; none in smoke size)")
    parser.add_argument("--long-epochs", type=int, default=10)
    parser.add_argument("--long-sleep", type=float, default=3.0)
    return common.parse_sized(parser, workers=([2], [1, 2, 8, 32]), repeats=(1, 3), trials_per_worker=(1, 2),
                              epochs=(2, 4), sleep=(0.2, 1.0), long_workers=([], [8, 32]))


def peer_run(tool: str, directory: Path, n: int, n_trials: int, epochs: int, sleep: float) -> dict[str, Any]:
    """One run of bench/peer_runs.py in a fresh interpreter, timed from launch to exit."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "run.log"
    command = [sys.executable, "-m", "bench.peer_runs", tool, "--workers", str(n), "--trials", str(n_trials),
               "--epochs", str(epochs), "--sleep", str(sleep), "--dir", str(directory)]
    started = time.monotonic()
    with log.open("wb") as output:
        code = subprocess.call(command, cwd=common.ROOT, env=common.child_env({}), stdout=output,
                               stderr=subprocess.STDOUT, timeout=1800)
    wall = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"{tool} N={n} exited with {code}:\n{log.read_text(errors='replace')[-3000:]}")
    result = json.loads((directory / "result.json").read_text())
    durations = result["durations"]
    if len(durations) != n_trials:
        raise SystemExit(f"{tool} N={n}: {len(durations)} trial durations, expected {n_trials}")
    return {"wall_s": wall, "trial_s_sum": sum(durations), "trial_s_median": common.median(durations),
            "init_s": result.get("init_s"), "fit_s": result.get("fit_s")}


def one_run(tool: str, root: Path, n: int, repeat: int, args: Any) -> dict[str, Any]:
    n_trials = n * args.trials_per_worker
    if tool == "snakesweep":
        result = scaling.one_run(root / tool, "sqlite", n, repeat, args, None)
    else:
        result = peer_run(tool, root / tool / f"n{n}-r{repeat}", n, n_trials, args.epochs, args.sleep)
    wall = result["wall_s"]
    return {"tool": tool, "workers": n, "repeat": repeat, "trials": n_trials, "wall_s": wall,
            "trial_s_median": result["trial_s_median"], "init_s": result.get("init_s"), "fit_s": result.get("fit_s"),
            "efficiency": result["trial_s_sum"] / n / wall,
            "useful_efficiency": n_trials * args.epochs * args.sleep / n / wall}


def ratio(results: list[dict[str, Any]], n: int, ours: str, theirs: str, key: str) -> list[float]:
    """ours / theirs of `key`, within each repeat."""
    by = {(r["tool"], r["repeat"]): r[key] for r in results if r["workers"] == n}
    return [by[ours, k] / by[theirs, k] for (tool, k) in by if tool == ours and (theirs, k) in by]


def print_tables(results: list[dict[str, Any]], args: Any) -> None:
    first = args.tools[0]
    rows = []
    for n in args.workers:
        for tool in args.tools:
            runs = [r for r in results if r["tool"] == tool and r["workers"] == n]
            pick = lambda key: [r[key] for r in runs]  # noqa: E731
            init = [r["init_s"] for r in runs if r["init_s"] is not None]
            fit = [r["fit_s"] for r in runs if r["fit_s"] is not None]
            rows.append([n, tool, common.spread(pick("wall_s"), 1), common.spread(pick("efficiency")),
                         common.spread(pick("useful_efficiency")), common.spread(pick("trial_s_median"), 2),
                         common.spread(init, 1) if init else "-", common.spread(fit, 1) if fit else "-"])
        for tool in args.tools[1:]:
            useful = ratio(results, n, first, tool, "useful_efficiency")
            rows.append([n, f"{first} / {tool}", "", "", f"{common.median(useful):.2f}x" if useful else "-", "", "", ""])
    print()
    print(common.table(["N", "tool", "wall s", "efficiency", "useful", "trial s (median)", "ray.init s",
                        "Tuner.fit s"], rows))
    print(f"\nmedian (min-max, n=repeats); {args.trials_per_worker} trials per worker of {args.epochs} x "
          f"{args.sleep:g} s. efficiency = (sum of trial durations / N) / wall; useful = the same with the "
          "trainer's sleep as the trial time; the ratio rows: useful efficiency, within each repeat, median.")


def long_trials(root: Path, args: Any) -> list[dict[str, Any]]:
    long_args = argparse.Namespace(**{**vars(args), "epochs": args.long_epochs, "sleep": args.long_sleep,
                                      "trials_per_worker": 1})
    results = []
    for repeat in range(args.repeats):
        for n in args.long_workers:
            result = one_run("snakesweep", root / "long", n, repeat, long_args)
            results.append(result)
            print(f"  snakesweep, {args.long_epochs * args.long_sleep:g} s trials, N={n:<3d} repeat {repeat}: "
                  f"wall {result['wall_s']:.1f} s, useful {result['useful_efficiency']:.2f}", flush=True)
    rows = []
    for n in args.long_workers:
        runs = [r for r in results if r["workers"] == n]
        rows.append([n, common.spread([r["wall_s"] for r in runs], 1), common.spread([r["efficiency"] for r in runs]),
                     common.spread([r["useful_efficiency"] for r in runs])])
    print(f"\nsnakesweep, one trial of {args.long_epochs} x {args.long_sleep:g} s per worker:")
    print(common.table(["N", "wall s", "efficiency", "useful"], rows))
    return results


def main() -> int:
    args = parse_args()
    if "ray" in args.tools and importlib.util.find_spec("ray") is None:
        raise SystemExit("Ray Tune is not installed: make bench-peers (bench/requirements-peers.txt)")
    common.header("Scaling beside peers: snakesweep workers, Ray Tune, Optuna n_jobs; sleeping trials", args)
    print(f"{args.trials_per_worker} trials per worker, {args.epochs} epochs of {args.sleep} s each, "
          f"{args.repeats} repeats, tools in rotating order: {', '.join(args.tools)}\n", flush=True)
    results: list[dict[str, Any]] = []
    with common.workdir(args.keep, "peers-scaling") as root:
        for repeat in range(args.repeats):
            order = args.tools[repeat % len(args.tools):] + args.tools[:repeat % len(args.tools)]
            for n in args.workers:
                for tool in order:
                    result = one_run(tool, root, n, repeat, args)
                    results.append(result)
                    print(f"  {tool:10s} N={n:<3d} repeat {repeat}: wall {result['wall_s']:.1f} s, efficiency "
                          f"{result['efficiency']:.2f}, useful {result['useful_efficiency']:.2f}", flush=True)
        if results:
            print_tables(results, args)
        long = long_trials(root, args) if args.long_workers else []
    common.write_json(args.json, {"args": vars(args), "runs": results, "long": long})
    return 0


if __name__ == "__main__":
    sys.exit(main())

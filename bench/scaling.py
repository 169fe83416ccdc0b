"""Figure 2: how workers scale. N workers share one study whose trials only sleep through their epochs.

    .venv/bin/python bench/scaling.py                 # N in 1 2 8 32; SQLite, Journal, MySQL; 3 repeats
    .venv/bin/python bench/scaling.py --smoke         # N in 1 2; SQLite, Journal; 1 repeat
    .venv/bin/python bench/scaling.py --storages sqlite journal --workers 1 8

Each run: a fresh study with N x `--trials-per-worker` trials, N real worker processes
(`python -m snakesweep.cli worker`, inside bench.counting's storage-operation counter) started at
once, the python launcher forking `tests/trainers/sleepy.py` for each trial: `--epochs` epochs of
`--sleep` seconds, reporting validation_accuracy after each (RandomSampler, NopPruner). Trials
sleep, so the machine's two cores do not limit how many run at once; what is measured is what
the sweep machinery costs around them.

- wall: from starting the N processes to the last one's exit (their imports included).
- efficiency: (sum of trial durations / N) / wall; a trial's duration is from its claim to its
  result, as its worker logs it. `useful`: the same with the trainer's own sleep (epochs x sleep
  per trial) in place of the trial durations, so per-trial overhead counts against it too.
- ops/s: storage operations (reads + writes reaching the backend, counted per worker) / wall.
- start: median over workers of the time from launch to its first claim (imports, storage connection).

MySQL: `--mysql-url-env VAR` names an environment variable holding a server URL (its password is
never printed); without it a private MariaDB is started on 127.0.0.1 by tests/services/servers.py
(Debian's mariadb-server package; the row is skipped with a note when it is not installed).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

JSONNET = "{x: std.parseJson(std.extVar('x')), epochs: %d, sleep_s: %s}"
SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
FINISHED = re.compile(r"snakesweep\.worker: trial \d+ (?:COMPLETE|PRUNED)\b.* in ([0-9.]+)s;")


def parse_args() -> Any:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=None, help="N values (default 1 2 8 32)")
    parser.add_argument("--storages", nargs="+", default=None, choices=["sqlite", "journal", "mysql"])
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--trials-per-worker", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--sleep", type=float, default=None, help="seconds per epoch")
    parser.add_argument("--mysql-url-env", default=None, metavar="VAR",
                        help="environment variable holding a MySQL URL (default: start a private MariaDB)")
    return common.parse_sized(
        parser, workers=([1, 2], [1, 2, 8, 32]), storages=(["sqlite", "journal"], ["sqlite", "journal", "mysql"]),
        repeats=(1, 3), trials_per_worker=(1, 2), epochs=(2, 4), sleep=(0.2, 1.0))


def mysql_storage(args: Any, stack: ExitStack, root: Path) -> tuple[str | None, Any]:
    """(URL template naming the password's variable, environment holding it), or (None, why not)."""
    if args.mysql_url_env:
        if args.mysql_url_env not in os.environ:
            return None, f"{args.mysql_url_env} is not set"
        return "${%s}" % args.mysql_url_env, {}
    try:
        from tests.services import servers
    except ImportError as error:
        return None, f"tests/services is not importable: {error}"
    missing = servers.missing_binaries("mariadb")
    if missing:
        return None, f"MariaDB is not installed ({', '.join(missing)}): tests/services/install-packages"
    info = stack.enter_context(servers.mariadb_server(root / "mariadb"))
    return info.url_template, info.env


def storage_for(kind: str, directory: Path,
                mysql: tuple[str, dict[str, str]] | None) -> tuple[str | None, dict[str, str]]:
    if kind == "sqlite":
        return None, {}
    if kind == "journal":
        return f"journal:{directory / 'results' / 'journal.log'}", {}
    assert mysql is not None
    return mysql


def one_run(root: Path, kind: str, n: int, repeat: int, args: Any,
            mysql: tuple[str, dict[str, str]] | None) -> dict[str, Any]:
    directory = root / f"{kind}-n{n}-r{repeat}"
    url, secret_env = storage_for(kind, directory, mysql)
    n_trials = n * args.trials_per_worker
    config_path = common.write_project(
        directory, space=SPACE, jsonnet=JSONNET % (args.epochs, args.sleep),
        study={"name": f"scale-{kind}-n{n}-r{repeat}-{os.getpid()}", "n_trials": n_trials, "storage": url},
        launcher={"type": "python", "function": "tests.trainers.sleepy:train"},
        objective={"metric": "validation_accuracy", "intermediate": "validation_accuracy"},
        workers={"count": n, "threads": 1},
    )
    saved = dict(os.environ)
    os.environ.update(secret_env)
    try:
        common.create_study(config_path)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    env = common.child_env(secret_env)
    logs = [directory / f"worker-{i}.log" for i in range(n)]
    counts = [directory / f"counts-{i}.json" for i in range(n)]
    launched_at = time.time()
    started = time.monotonic()
    processes = [common.start_worker(config_path, i, counts=counts[i], env=env, log=logs[i]) for i in range(n)]
    common.wait_all(processes, logs)
    wall = time.monotonic() - started
    trials = common.load_trials(config_path, secret_env)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    if len(finished) != n_trials:
        raise SystemExit(f"{directory}: {len(finished)} finished trials, expected {n_trials}")
    # The workers' own clocks: MySQL keeps trial start and end times to the second only.
    durations = [float(m[1]) for log in logs for m in FINISHED.finditer(log.read_text(errors="replace"))]
    if len(durations) != n_trials:
        raise SystemExit(f"{directory}: {len(durations)} trials in the worker logs, expected {n_trials}")
    ops = [json.loads(path.read_text()) for path in counts]
    first_claims = [o["first_claim"] - launched_at for o in ops if o["first_claim"] is not None]
    total_ops = sum(o["total"] for o in ops)
    return {
        "storage": kind, "workers": n, "repeat": repeat, "trials": n_trials, "wall_s": wall,
        "trial_s_sum": sum(durations), "trial_s_median": common.median(durations),
        "efficiency": sum(durations) / n / wall,
        "useful_efficiency": n_trials * args.epochs * args.sleep / n / wall,
        "ops": total_ops, "ops_per_s": total_ops / wall, "ops_per_trial": total_ops / n_trials,
        "writes": sum(o["writes"] for o in ops),
        "start_s": common.median(first_claims),
    }


def main() -> int:
    args = parse_args()
    common.header("Scaling: sleeping trials, N workers, one study", args)
    print(f"{args.trials_per_worker} trials per worker, {args.epochs} epochs of {args.sleep} s each "
          f"(ideal trial {args.epochs * args.sleep:.1f} s), {args.repeats} repeats\n", flush=True)
    results: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    with common.workdir(args.keep, "scaling") as root, ExitStack() as stack:
        mysql = None
        if "mysql" in args.storages:
            found = mysql_storage(args, stack, root)
            if found[0] is None:
                skipped["mysql"] = found[1]
            else:
                mysql = found
        kinds = [k for k in args.storages if k not in skipped]
        for repeat in range(args.repeats):
            for n in args.workers:
                for kind in kinds:
                    result = one_run(root, kind, n, repeat, args, mysql)
                    results.append(result)
                    print(f"  {kind:8s} N={n:<3d} repeat {repeat}: wall {result['wall_s']:.1f} s, "
                          f"efficiency {result['efficiency']:.2f}, {result['ops_per_s']:.0f} ops/s", flush=True)
    rows = []
    for kind in args.storages:
        if kind in skipped:
            rows.append([kind, "-", f"skipped: {skipped[kind]}", "", "", "", "", ""])
            continue
        for n in args.workers:
            runs = [r for r in results if r["storage"] == kind and r["workers"] == n]
            pick = lambda key: [r[key] for r in runs]  # noqa: E731
            rows.append([kind, n, common.spread(pick("wall_s"), 1), common.spread(pick("efficiency")),
                         common.spread(pick("useful_efficiency")), common.spread(pick("ops_per_s"), 0),
                         f"{common.median(pick('ops_per_trial')):.0f}", common.spread(pick("start_s"), 1)])
    print()
    print(common.table(["storage", "N", "wall s", "efficiency", "useful", "storage ops/s", "ops/trial",
                        "start s"], rows))
    print("\nmedian (min-max, n=repeats). efficiency = (sum of trial durations / N) / wall; useful = the "
          "same with the trainer's sleep as the trial time.")
    common.write_json(args.json, {"args": vars(args), "runs": results, "skipped": skipped})
    return 0


if __name__ == "__main__":
    sys.exit(main())

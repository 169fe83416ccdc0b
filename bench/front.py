"""Figure 12: what the Pareto front of a study of several objectives costs, per computation.

    .venv/bin/python bench/front.py                        # this source tree only
    .venv/bin/python bench/front.py --before BASE/src      # alternating with another tree
    .venv/bin/python bench/front.py --smoke

`pareto.pareto_front` runs in every worker after each trial (its log line), in the trials table
and in `trials.keep_weights`' ranking, so its cost grows with the study. Each measurement is a
fresh process on one source tree: N completed trials of two objectives (maximize a, minimize b),
built in memory, b = a + `--spread` x noise, so the smaller the spread the more trials trade one
objective for the other and the larger the front; the median of 5 computations, in ms. With
`--before`, the trees alternate, measurement by measurement.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

MEASURE = """
import json, random, statistics, sys, time
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from snakesweep import pareto

trials_count, spread = int(sys.argv[1]), float(sys.argv[2])
rng = random.Random(0)
trials = []
for number in range(trials_count):
    a = rng.random()
    trial = create_trial(state=TrialState.COMPLETE, values=[a, a + spread * rng.random()],
                         params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)})
    trial.number = number
    trials.append(trial)
times = []
for _ in range(5):
    started = time.perf_counter()
    front = pareto.pareto_front(trials, ["maximize", "minimize"])
    times.append(time.perf_counter() - started)
print(json.dumps({"ms": statistics.median(times) * 1000, "front": len(front)}))
"""


def parse_args() -> Any:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--before", type=Path, default=None, metavar="SRC",
                        help="another source tree (holding snakesweep/) to measure alternately")
    parser.add_argument("--trials", type=int, nargs="+", default=None, help="N values (default 1000 5000)")
    parser.add_argument("--spread", type=float, nargs="+", default=[1.0, 0.05], help="noise of b (default 1 0.05)")
    parser.add_argument("--repeats", type=int, default=None)
    return common.parse_sized(parser, trials=([200], [1000, 5000]), repeats=(1, 3))


def measure(source: Path, trials: int, spread: float) -> dict[str, float]:
    env = common.child_env({})
    env["PYTHONPATH"] = str(source)
    result = subprocess.run([common.PYTHON, "-c", MEASURE, str(trials), str(spread)], env=env,
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def main() -> int:
    args = parse_args()
    common.header("The Pareto front's cost per computation", args)
    sides = [("now", common.ROOT / "src")]
    if args.before is not None:
        sides = [("before", args.before.resolve()), *sides]
    results: list[dict[str, Any]] = []
    for repeat, trials, spread, (name, source) in itertools.product(
            range(args.repeats), args.trials, args.spread, sides):
        results.append({"side": name, "trials": trials, "spread": spread, **measure(source, trials, spread)})
    rows = []
    for trials, spread in itertools.product(args.trials, args.spread):
        mine = [r for r in results if r["trials"] == trials and r["spread"] == spread]
        row = [trials, spread, int(common.median([r["front"] for r in mine]))]
        for name, _ in sides:
            row.append(common.spread([r["ms"] for r in mine if r["side"] == name], 1))
        rows.append(row)
    print(common.table(["trials", "spread", "front", *(f"{name}: ms per front" for name, _ in sides)], rows))
    print(f"\nmedian (min-max, n=repeats) of each process's median of 5 computations; {args.repeats} repeat(s).")
    common.write_json(args.json, {"args": vars(args), "runs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())

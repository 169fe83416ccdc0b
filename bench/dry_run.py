"""Figure 4: workflow overhead. `snakemake -n` on a finished study of 500 trials.

    .venv/bin/python bench/dry_run.py                 # 500 trials, 5 timed dry runs
    .venv/bin/python bench/dry_run.py --smoke         # 8 trials, 2 timed dry runs

A project like the workflow tests' (tests/workflow_project.py: the curve trainer through the python
launcher, 2 workers, TPE + MedianPruner, 2 retrain seeds) is swept to `--trials` finished trials by
a real `snakemake --cores 2` run, retrain, evaluation and report included. Then `snakemake -n`
runs `--repeats` times on the finished project: its wall time and the jobs it would run (zero
expected). For scale, Snakemake's own floor: `snakemake -n` on a one-rule Snakefile whose output
exists, in the same run, alternating with the dry runs above.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

SNAKEFILE = common.ROOT / "workflow" / "Snakefile"
FLOOR = 'rule all:\n    input: "done.txt"\n\nrule done:\n    output: "done.txt"\n    shell: "touch {output}"\n'


def parse_args() -> Any:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    return common.parse_sized(parser, trials=(8, 500), repeats=(2, 5))


def snakemake(directory: Path, *args: str, snakefile: Path = SNAKEFILE, timeout: float = 3600) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run([str(common.BIN / "snakemake"), "--snakefile", str(snakefile), "--cores", "2", *args],
                            cwd=directory, env=common.child_env(), capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - started
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} in {directory} exited with {result.returncode}:\n"
                         f"{output[-4000:]}")
    return wall, output


def planned_jobs(output: str) -> int:
    if "Nothing to be done" in output:
        return 0
    match = re.search(r"^total\s+(\d+)", output, re.M)
    if match is None:
        raise SystemExit(f"cannot read the planned jobs from:\n{output[-2000:]}")
    return int(match[1])


def main() -> int:
    args = parse_args()
    from tests.workflow_project import make

    common.header(f"Workflow overhead: `snakemake -n` on a finished study of {args.trials} trials", args)
    with common.workdir(args.keep, "dry-run") as root:
        project = make(root / "project", study={"n_trials": args.trials})
        build_s, _ = snakemake(project)
        print(f"  the sweep itself: {args.trials} trials, retrain, evaluation and report in {build_s:.0f} s",
              flush=True)
        floor_dir = root / "floor"
        floor_dir.mkdir()
        (floor_dir / "Snakefile").write_text(FLOOR)
        (floor_dir / "done.txt").write_text("")
        dry, floor = [], []
        for _ in range(args.repeats):  # alternating, so drifting load hits both alike
            dry.append(snakemake(project, "-n"))
            floor.append(snakemake(floor_dir, "-n", snakefile=floor_dir / "Snakefile"))
    jobs = sorted({planned_jobs(output) for _, output in dry})
    ours = [wall for wall, _ in dry]
    theirs = [wall for wall, _ in floor]
    rows = [
        [f"snakesweep workflow, finished study of {args.trials} trials", common.spread(ours),
         ", ".join(map(str, jobs))],
        ["one-rule Snakefile, output present (Snakemake's floor)", common.spread(theirs),
         ", ".join(map(str, sorted({planned_jobs(o) for _, o in floor})))],
        ["ratio", f"{common.median(ours) / common.median(theirs):.1f}x", ""],
    ]
    print()
    print(common.table(["`snakemake -n` on", "wall s", "jobs it would run"], rows))
    print(f"\nmedian (min-max, n={args.repeats} dry runs).")
    common.write_json(args.json, {"args": vars(args), "build_s": build_s, "dry_run_s": ours, "floor_s": theirs,
                                  "jobs": jobs})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Figure 8: the disk the default sweep leaves in results/, every trial's weights kept against the
default `trials.keep_weights: 1`.

    .venv/bin/python bench/disk.py            # the default sweep (config/config.yaml), as `make sweep` runs it
    .venv/bin/python bench/disk.py --smoke    # 4 trials of 1 epoch by one worker, the sweep only

For each setting a scratch project gets a copy of config/ and a link to data/, and
`snakemake --cores 2` runs the workflow there (the whole of it: sweep, retrain, evaluation,
report). Then `du` of results/ and of the trial directories (results/studies/), as a disk quota
counts them (blocks, a hard link once), and the weight files left there. `keep_weights: -1` keeps
every trial's weights, which is what every release before `trials.keep_weights` did.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402


def parse_args() -> Any:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--keep-weights", type=int, nargs="+", default=[-1, 1])
    return parser.parse_args()


def du_bytes(path: Path) -> int:
    return int(subprocess.run(["du", "-s", "--block-size=1", str(path)], capture_output=True, text=True,
                              check=True).stdout.split()[0])


def sweep(root: Path, keep: int, smoke: bool) -> dict[str, Any]:
    directory = root / f"keep-{keep}"
    shutil.copytree(common.ROOT / "config", directory / "config")
    (directory / "data").symlink_to(common.ROOT / "data")
    path = directory / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["trials"] = {"keep_weights": keep}
    targets: list[str] = []
    if smoke:  # the sweep alone, by one worker: the trials are what this figure is about
        config["study"]["n_trials"] = 4
        config["model"] = {**config["model"], "overrides": {"trainer.num_epochs": 1}}
        config["workers"] = {**config.get("workers", {}), "count": 1}
        targets = [str(Path(config.get("results", "results")) / "best_params.json")]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    log = directory / "snakemake.log"
    started = time.monotonic()
    with open(log, "wb") as output:
        code = subprocess.run([str(common.BIN / "snakemake"), "--snakefile", str(common.ROOT / "workflow" / "Snakefile"),
                               "--cores", "2", *targets], cwd=directory, env=common.child_env(), stdout=output,
                              stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"snakemake exited with {code}:\n{log.read_text(errors='replace')[-3000:]}")
    from snakesweep.launchers import make_launcher
    from snakesweep.paths import run_dirs

    launcher = make_launcher(config["launcher"])  # the launcher says which files are weights
    studies = directory / "results" / "studies"
    trials = [p for p in studies.glob("*/trials/*") if p.is_dir()]
    weights = [p for t in trials for run in run_dirs(t) for p in launcher.weight_files(run)]
    return {"keep_weights": keep, "wall_s": time.monotonic() - started, "trials": len(trials),
            "results_bytes": du_bytes(directory / "results"), "trials_bytes": du_bytes(studies),
            "with_weights": len({p.parent for p in weights}), "weight_files": len(weights),
            "weight_bytes": sum(p.stat().st_size for p in weights)}


def main() -> int:
    args = parse_args()
    common.header("Disk: results/ of the default sweep, all weights kept against trials.keep_weights", args)
    runs = []
    with common.workdir(args.keep, "disk") as root:
        for keep in args.keep_weights:
            run = sweep(root, keep, args.smoke)
            runs.append(run)
            print(f"  keep_weights {keep}: {run['results_bytes'] / 1e6:.0f} MB in {run['wall_s']:.0f} s", flush=True)
    rows = [[r["keep_weights"], r["trials"], f"{r['results_bytes'] / 1e6:.1f}", f"{r['trials_bytes'] / 1e6:.1f}",
             r["with_weights"], r["weight_files"]] for r in runs]
    print()
    print(common.table(["trials.keep_weights", "trials", "results/ MB", "of it trial directories MB",
                        "trials holding weights", "weight files"], rows))
    print("\ndu --block-size=1 (what a quota counts); MB = 10^6 bytes. -1: every trial's weights kept.")
    common.write_json(args.json, {"args": vars(args), "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())

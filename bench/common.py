"""What the benchmark scripts share: paths, projects, worker processes, statistics, tables.

Every benchmark runs the real library: workers are `python -m snakesweep.cli worker` processes (or
`snakesweep.worker.Worker` in-process where a script says so), on real storages, with the real
launchers. Figures are medians over repeats with their spread, and ratios within one run, because
the machine the table comes from is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PYTHON = sys.executable


# -- environment and processes -----------------------------------------------------------------
def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every process a benchmark starts: the venv's tools first, the repo importable."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONWARNINGS", "ignore")
    env.update(extra or {})
    return env


def worker_command(config_path: Path, index: int = 0, *, counts: Path | None = None) -> list[str]:
    """`python -m snakesweep.cli worker`; with `counts`, the same run inside bench.counting's storage counter."""
    args = ["worker", "--configfile", str(config_path), "--worker", str(index)]
    if counts is None:
        return [PYTHON, "-m", "snakesweep.cli", *args]
    return [PYTHON, "-m", "bench.counting", str(counts), *args]


def start_worker(config_path: Path, index: int = 0, *, counts: Path | None = None,
                 env: Mapping[str, str] | None = None, log: Path | None = None) -> subprocess.Popen[bytes]:
    """A worker process, run from the repo root, output to `log` (or discarded)."""
    output = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(worker_command(config_path, index, counts=counts), cwd=ROOT,
                                env=dict(env) if env is not None else child_env(),
                                stdout=output, stderr=subprocess.STDOUT)
    finally:
        if log is not None:
            output.close()


def wait_all(processes: Sequence[subprocess.Popen[bytes]], logs: Sequence[Path | None] = (),
             timeout: float = 1800) -> None:
    """Wait for every process; a non-zero exit is an error that shows the end of its log."""
    deadline = time.monotonic() + timeout
    for i, process in enumerate(processes):
        try:
            code = process.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise SystemExit(f"a worker ran past {timeout:.0f} s") from None
        if code != 0:
            log = logs[i] if i < len(logs) else None
            tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
            raise SystemExit(f"worker {i} exited with status {code}\n{tail}")


# -- projects ----------------------------------------------------------------------------------
def write_project(directory: Path, *, space: Any, jsonnet: str, optuna_json: Mapping[str, Any] | None = None,
                  **sections: Any) -> Path:
    """config.yaml, the space, optuna.json and the Jsonnet under `directory`; returns config.yaml.

    `sections` are merged over the defaults here (study, launcher, workers, objective, model, ...).
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "space.json").write_text(json.dumps(space))
    (directory / "model.jsonnet").write_text(jsonnet)
    (directory / "optuna.json").write_text(json.dumps(optuna_json or {
        "sampler": {"type": "RandomSampler", "attributes": {}},
        "pruner": {"type": "NopPruner", "attributes": {}},
    }))
    (directory / "test.jsonl").write_text("")
    data: dict[str, Any] = {
        "study": {"name": "bench", "optuna": str(directory / "optuna.json")},
        "search_space": str(directory / "space.json"),
        "model": {"config": str(directory / "model.jsonnet")},
        "retrain": {"test_data": str(directory / "test.jsonl")},
        "results": str(directory / "results"),
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def create_study(config_path: Path) -> Any:
    """The workflow's create_study step, in-process: schema, study and start points, once."""
    from snakesweep.config import load_config
    from snakesweep.study import create_study as create

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return create(load_config(config_path))


def load_trials(config_path: Path, env: Mapping[str, str] | None = None) -> list[Any]:
    """The study's trials, surplus claims left out (what every table of snakesweep counts)."""
    from snakesweep.config import load_config
    from snakesweep.study import load_study
    from snakesweep.trials import is_surplus

    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        study = load_study(load_config(config_path))
        return [t for t in study.get_trials(deepcopy=False) if not is_surplus(t)]
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def workdir(keep: Path | None, prefix: str) -> Iterator[Path]:
    """A scratch directory: `keep` if given (left in place), else a temporary one removed afterwards."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep.resolve()
        return
    path = Path(tempfile.mkdtemp(prefix=f"snakesweep-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def argument_parser(description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds: checks the script runs")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="work in DIR and leave it there (default: a temporary directory, removed)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the raw figures here")
    return parser


def parse_sized(parser: argparse.ArgumentParser, **sizes: tuple[Any, Any]) -> argparse.Namespace:
    """Parse the command line; each size NAME=(smoke, full) not given there takes the value for
    `--smoke` or for the full run."""
    args = parser.parse_args()
    for name, (smoke, full) in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, smoke if args.smoke else full)
    return args


# -- statistics and tables ---------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], digits: int = 2) -> str:
    """'median (min-max, n=K)' for a list of repeats."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (n=1)"
    return f"{median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f}, n={len(values)})"


def quartiles(values: Sequence[float], digits: int = 2) -> str:
    """'median [Q1-Q3]' for many values (trials rather than repeats)."""
    if len(values) < 4:
        return spread(values, digits)
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return f"{median(values):.{digits}f} [IQR {q1:.{digits}f}-{q3:.{digits}f}, n={len(values)}]"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, ready to paste into bench/README.md."""
    cells = [[str(c) for c in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def machine() -> str:
    """The machine in a few words: cores, memory, GPU or not."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = "GPU" if Path("/proc/driver/nvidia/gpus").is_dir() else "no GPU"
    return f"{os.cpu_count()} cores, {memory_gib:.0f} GiB, {gpu}, Python {platform.python_version()}"


def header(title: str, args: argparse.Namespace) -> None:
    size = "smoke" if args.smoke else "full"
    load = os.getloadavg()[0]
    print(f"## {title}\n{date.today().isoformat()}, {machine()}, size {size}, load average at start {load:.1f}\n",
          flush=True)


def write_json(path: Path | None, data: Any) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def rss_mib(pid: int) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of a process in MiB, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    if "VmRSS" not in values:
        return None
    return values["VmRSS"], values.get("VmHWM", values["VmRSS"])

"""The `allennlp` launcher: AllenNLP's own training of the rendered config, forked from a warm worker.

    launcher:
      type: allennlp
      include_package: [my_models]     # as `allennlp train --include-package my_models`

`prepare()` imports allennlp, torch, AllenNLP's plugins and the `include_package` modules once per
worker; each trial is a child forked from the worker, so it skips the seconds-long start of the
`allennlp` command but still runs in a process of its own. AllenNLP writes `metrics_epoch_N.json`
after each epoch and `metrics.json` at the end, which is all the worker needs.

Resuming is AllenNLP's own: its checkpointer writes `model_state_e<E>_b<B>.th` and
`training_state_e<E>_b<B>.th` (E epochs completed) and its trainer restores the newest pair it finds
in the serialization directory, as `allennlp train --recover` does. The worker moves that pair and
`best.th` from an interrupted trial's directory into the new one; a pair that is not a whole torch
file (cut off while it was written) is never offered.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snakesweep import process_env
from snakesweep.errors import UserError
from snakesweep.launchers import allennlp_compat
from snakesweep.launchers.base import Launcher, importable_cwd, string_list
from snakesweep.launchers.checkpoints import Checkpoint, CheckpointSearch
from snakesweep.launchers.fork import fork_training
from snakesweep.launchers.process import ForkedProcess
from snakesweep.trialfiles import read_final_metrics, write_final_metrics

FIELD = "launcher.include_package"
ARCHIVE = "model.tar.gz"
PARAMETERS = "parameters"
"""The key of metrics.json holding the trained model's number of trainable parameters."""
BEST = "best.th"
DATA_KEYS = ("train_data_path", "validation_data_path", "test_data_path")
_MODEL_STATE = re.compile(r"^model_state_e(\d+)_b(\d+)\.th$")


@Launcher.register("allennlp")
class AllenNLPLauncher(Launcher):
    """Trains with AllenNLP in a child forked from the worker."""

    fields = ("include_package",)

    def __init__(self, include_package: Sequence[str] = (), *, file: str | Path | None = None) -> None:
        self.file = file
        self.include_package = string_list(include_package, field=FIELD, file=file, example="[my_models]")
        self.prepared = False

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, file: str | Path | None = None) -> AllenNLPLauncher:
        return cls(spec.get("include_package") or (), file=file)

    def prepare(self) -> None:
        """Import what `allennlp train` imports, plus the user's packages; touch no GPU."""
        if self.prepared:
            return
        try:
            import allennlp.commands  # noqa: F401  (registers every model, reader, trainer the CLI knows)
            import torch  # noqa: F401
            from allennlp.common.plugins import import_plugins
            from allennlp.common.util import import_module_and_submodules
        except ImportError as error:
            raise UserError(
                f"cannot import allennlp: {error}",
                file=self.file,
                field="launcher.type",
                fix="install snakesweep[allennlp], or choose the command or python launcher",
            ) from None
        import_plugins()
        allennlp_compat.install()
        for package in self.include_package:
            try:
                with importable_cwd():
                    import_module_and_submodules(package)
            except Exception as error:
                raise UserError(
                    f"cannot import {package!r}: {type(error).__name__}: {error}",
                    file=self.file,
                    field=FIELD,
                    fix="check the package name, and that it imports in this environment",
                ) from None
        self.prepared = True

    def start(
        self,
        config_path: Path,
        serialization_dir: Path,
        *,
        trial_number: int,
        log_path: Path,
        threads: int,
        env: Mapping[str, str],
        resume_epoch: int = 0,
        wait_for_verdicts: bool = False,
    ) -> ForkedProcess:
        self.prepare()
        config_file = str(Path(config_path).absolute())
        directory = str(Path(serialization_dir).absolute())
        packages = list(self.include_package)

        def run() -> None:
            _train_in_place(config_file, directory, packages)

        return fork_training(run, log_path=log_path, threads=threads, env=env, wait_for_verdicts=wait_for_verdicts)

    def device_overrides(self) -> dict[str, Any]:
        """The first visible GPU, or the CPU."""
        return {"trainer.cuda_device": _cuda_device()}

    def check_data(self, rendered: Mapping[str, Any], source: str) -> None:
        """AllenNLP-style data paths in a rendered config must exist (URLs and globs are left alone)."""
        for key in DATA_KEYS:
            value = rendered.get(key)
            if isinstance(value, str) and "://" not in value and not any(c in value for c in "*?["):
                if not Path(value).exists():
                    raise UserError(
                        "data file not found", file=source, field=key, fix=f"create {value} or fix the path"
                    )

    def final_key_in_epoch_files(self, key: str) -> bool:
        """AllenNLP writes its metrics so far after each epoch; only the test_ keys and the parameter
        count (`parameters`, added once training has ended) come at the end."""
        return not key.startswith("test_") and key != PARAMETERS

    def weight_files(self, run_dir: Path) -> list[Path]:
        """Checkpoints, `best.th` (sharded: `best_w*.th`) and an archive."""
        if not Path(run_dir).is_dir():
            return []
        return sorted(p for p in Path(run_dir).iterdir() if p.is_file() and (p.suffix == ".th" or p.name == ARCHIVE))

    def find_checkpoint(self, run_dir: Path) -> CheckpointSearch:
        """The newest model and training state pair that are both whole, with `best.th`."""
        run_dir = Path(run_dir)
        points = sorted(((int(m[1]), int(m[2])) for p in run_dir.glob("model_state_e*_b*.th")
                         if (m := _MODEL_STATE.match(p.name))), reverse=True)
        search = CheckpointSearch()
        for epochs, batches in points:
            pair = (f"model_state_e{epochs}_b{batches}.th", f"training_state_e{epochs}_b{batches}.th")
            problems = [f"{name}: {problem}" for name in pair if (problem := _torch_file_problem(run_dir / name))]
            if problems:
                search.damaged += problems
                continue
            best = (BEST,) if (run_dir / BEST).is_file() else ()
            search.found = Checkpoint(epochs, pair + best)
            break
        return search

    def archive(self, model_dir: Path) -> None:
        """Write `model.tar.gz`, which evaluation reads."""
        from allennlp.models.archival import archive_model

        archive_model(model_dir)

    def evaluate(self, model_dir: Path, test_data: str, output: Path) -> None:
        """AllenNLP's evaluation of the archive on `test_data`."""
        from allennlp.commands.evaluate import evaluate_from_archive

        evaluate_from_archive(
            archive_file=Path(model_dir) / ARCHIVE,
            input_file=test_data,
            metrics_output_file=str(output),
            cuda_device=_cuda_device(),
        )


def _cuda_device() -> int:
    return 0 if process_env.visible_gpu() else -1


def _torch_file_problem(path: Path) -> str | None:
    """Why `path` is not a whole file of torch.save (a zip whose directory closes it), or None."""
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            if any(info.header_offset + info.compress_size > size for info in archive.infolist()):
                return "cut short"
    except FileNotFoundError:
        return "missing"
    except (OSError, zipfile.BadZipFile) as error:
        return f"not a whole torch file ({error})"
    return None


def _train_in_place(config_path: str, serialization_dir: str, include_package: Sequence[str] = ()) -> None:
    """Train the AllenNLP config at `config_path` into the existing `serialization_dir`.

    `allennlp train` (`train_model`) refuses a non-empty serialization directory unless asked to
    recover or to overwrite, yet the worker has already written the trial's config, params, seed,
    provenance and log there. Overwriting (`force`) would delete them, and recovering checks the
    directory's `config.json` against the config and then rewrites it in AllenNLP's layout. So a
    single-process run calls `_train_worker` directly, as `train_model` itself does: it builds the
    vocabulary, model and trainer, trains, writes `metrics_epoch_N.json` and `metrics.json`, and
    leaves the worker's files alone. It skips only `create_serialization_dir` (the directory exists),
    and the final `model.tar.gz`: a trial needs no archive, the retrain step makes one, and
    `best.th`, `vocabulary/` and `config.json` are left to rebuild it. The few lines of
    `train_model` before the call are repeated here: `meta.json`, and popping `evaluation` and
    `include_in_archive`, which `TrainModel` would refuse.

    Distributed training (a `distributed` section) needs `train_model`, the only code that starts
    the ranks (spawned by `torch.multiprocessing` into this process group, so stopping the trial
    stops them all). Its `recover` flag passes the directory check but then loads the vocabulary of
    an earlier run, which a new trial does not have. So the check becomes a plain `makedirs` and the
    archiving nothing, in this process only: call this function only in a process of its own, as
    the launcher does. `train_model` rewrites `config.json` from the same config, in AllenNLP's layout.
    Its rank 0 writes the epoch files but has no handshake with the worker (the ranks are spawned,
    the socket stays behind): the worker reads them as they appear and stops the ranks on a verdict.
    """
    from allennlp.commands import train as allennlp_train
    from allennlp.common import Params
    from allennlp.common import logging as common_logging
    from allennlp.common.meta import META_NAME, Meta
    from allennlp.models.archival import verify_include_in_archive
    from allennlp.training import util as training_util

    common_logging.FILE_FRIENDLY_LOGGING = True  # output goes to a file: no carriage-return progress bars
    params = Params.from_file(config_path)
    os.makedirs(serialization_dir, exist_ok=True)
    if "distributed" in params:
        training_util.create_serialization_dir = lambda params, directory, recover, force: os.makedirs(
            directory, exist_ok=True
        )
        allennlp_train.archive_model = lambda *args, **kwargs: None
        ranks_import = [*include_package, "snakesweep.launchers.allennlp_rank"]
        allennlp_train.train_model(params, serialization_dir, include_package=ranks_import, file_friendly_logging=True)
        return
    allennlp_compat.add_epoch_verdicts(params)  # wait for the worker's verdict at each epoch's end
    params.pop("evaluation", None)
    verify_include_in_archive(params.pop("include_in_archive", None))
    Meta.new().to_file(os.path.join(serialization_dir, META_NAME))
    model = allennlp_train._train_worker(
        process_rank=0,
        params=params,
        serialization_dir=serialization_dir,
        include_package=list(include_package),
        file_friendly_logging=True,
    )
    if model is not None:
        add_parameter_count(serialization_dir, model)


def add_parameter_count(serialization_dir: str | Path, model: Any) -> None:
    """`parameters` in metrics.json: the trained model's trainable parameters, a size to trade
    accuracy against (`objective.metrics: [best_validation_accuracy, parameters]`).

    Only metrics.json has it: the size is known once training has ended, and the epoch files are
    AllenNLP's own (`final_key_in_epoch_files` says so).
    """
    metrics = read_final_metrics(serialization_dir)
    if metrics is None:
        return
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    write_final_metrics(serialization_dir, {**metrics, PARAMETERS: count})

"""Launchers, with real processes: training runs, stop(), crashes, placeholders, threads, AllenNLP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from snakesweep.errors import UserError
from snakesweep.launchers import (
    AllenNLPLauncher,
    CommandLauncher,
    Launcher,
    PythonLauncher,
    TrainingProcess,
    make_launcher,
)
from snakesweep.trialfiles import read_epoch_metrics, read_final_metrics
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[1]
TRAINERS = ROOT / "tests" / "trainers"
ALLENNLP_CONFIG = ROOT / "tests" / "data" / "allennlp" / "tiny_classifier.json"


@pytest.fixture(autouse=True)
def in_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    """Launchers resolve modules and relative paths from the workflow's directory."""
    monkeypatch.chdir(ROOT)


# -- helpers --------------------------------------------------------------------------------------
def trial_dir(tmp_path: Path, config: dict[str, Any], name: str = "trial") -> tuple[Path, Path, Path]:
    """A trial directory as the worker leaves it: config, params and seed written, then training."""
    directory = tmp_path / name
    directory.mkdir()
    (directory / "params.json").write_text(json.dumps({"lr": 0.1}))
    (directory / "seed").write_text("13\n")
    config_path = directory / "config.json"
    config_path.write_text(json.dumps(config, indent=2))
    return config_path, directory, directory / "train.log"


def command_launcher(script: str, *extra: str) -> Launcher:
    launcher = make_launcher(
        {
            "type": "command",
            "command": ["python", str(TRAINERS / script), "--config", "{config}", "--out", "{serialization_dir}", *extra],
            "include_package": [],  # schema defaults for the other launchers are harmless
            "grace_s": 10,
        }
    )
    launcher.prepare()
    return launcher


def python_launcher(function: str) -> Launcher:
    launcher = make_launcher({"type": "python", "function": function})
    launcher.prepare()
    return launcher


LAUNCHERS: dict[str, Callable[[str], Launcher]] = {
    "command": lambda module: command_launcher(f"{module}.py"),
    "python": lambda module: python_launcher(f"tests.trainers.{module}:train"),
}


def start(launcher: Launcher, tmp_path: Path, config: dict[str, Any], *, threads: int = 1,
          env: dict[str, str] | None = None, trial_number: int = 0) -> tuple[TrainingProcess, Path, Path]:
    config_path, directory, log_path = trial_dir(tmp_path, config)
    process = launcher.start(
        config_path, directory, trial_number=trial_number, log_path=log_path, threads=threads, env=env or {}
    )
    return process, directory, log_path


def alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie that no init process reaped does not count."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def wait_for(condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    return wait_until(condition, f"waiting for {condition}", timeout=timeout, poll=0.02)


def finish(process: TrainingProcess, log_path: Path, timeout: float = 120.0) -> int:
    code = process.wait(timeout)
    if code is None:
        process.stop(1)
        raise AssertionError(f"training did not finish in {timeout}s; log:\n{log_path.read_text()}")
    return code


@pytest.fixture
def stopping() -> Iterator[list[TrainingProcess]]:
    """Processes a test started; whatever a failed test leaves running is stopped."""
    processes: list[TrainingProcess] = []
    yield processes
    for process in processes:
        process.stop(0)


# -- the registry and config errors ---------------------------------------------------------------
def test_registry_picks_by_type() -> None:
    assert Launcher.list_available() == ["allennlp", "command", "python"]
    assert isinstance(make_launcher({"type": "command", "command": ["true"]}), CommandLauncher)
    assert isinstance(make_launcher({"type": "python", "function": "json:dumps"}), PythonLauncher)
    assert isinstance(make_launcher({"type": "allennlp", "include_package": []}), AllenNLPLauncher)
    assert isinstance(make_launcher({}), AllenNLPLauncher)


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"type": "slurm"}, "launcher.type", "unknown launcher type"),
        ({"type": "command", "command": "python train.py --config {config}"}, "launcher.command", "write a list"),
        ({"type": "command"}, "launcher.command", "needs a command"),
        ({"type": "command", "command": []}, "launcher.command", "is empty"),
        ({"type": "command", "command": ["python", 3]}, "launcher.command", "list of strings"),
        ({"type": "command", "command": ["python", "--lr", "{lr}"]}, "launcher.command", "unknown placeholder {lr}"),
        ({"type": "command", "command": ["python", "{config"]}, "launcher.command", "{{"),
        ({"type": "command", "command": ["python", "{config.name}"]}, "launcher.command", "unknown placeholder"),
        ({"type": "command", "command": ["python", "{config:d}"]}, "launcher.command", "format"),
        ({"type": "command", "command": ["true"], "function": "a:b"}, "launcher.function", "python launcher only"),
        ({"type": "command", "command": ["true"], "comand": ["x"]}, "launcher.comand", "unknown key"),
        ({"type": "python"}, "launcher.function", "needs a function"),
        ({"type": "python", "function": "train.py"}, "launcher.function", "module:function"),
        ({"type": "python", "function": "a.b:c-d"}, "launcher.function", "module:function"),
        ({"type": "allennlp", "include_package": "my_models"}, "launcher.include_package", "write a list"),
    ],
)
def test_config_mistakes_are_user_errors(spec: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(UserError) as caught:
        make_launcher(spec)
    assert caught.value.field == field
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("function", "words"),
    [
        ("snakesweep_no_such_module:train", "cannot import 'snakesweep_no_such_module'"),
        ("tests.trainers.tiny_torch:no_such_function", "has no 'no_such_function'"),
        ("tests.trainers.crash:MESSAGE", "is not callable"),
    ],
)
def test_bad_python_function_fails_at_prepare(function: str, words: str) -> None:
    launcher = make_launcher({"type": "python", "function": function})
    with pytest.raises(UserError) as caught:
        launcher.prepare()
    assert caught.value.field == "launcher.function"
    assert words in str(caught.value)


def test_missing_program_fails_at_prepare() -> None:
    launcher = make_launcher({"type": "command", "command": ["snakesweep-no-such-program", "{config}"]})
    with pytest.raises(UserError, match="not found") as caught:
        launcher.prepare()
    assert caught.value.field == "launcher.command"


def test_missing_program_at_start_is_a_user_error(tmp_path: Path) -> None:
    launcher = make_launcher({"type": "command", "command": [str(tmp_path / "gone.sh")]})
    with pytest.raises(UserError, match="cannot run"):
        start(launcher, tmp_path, {})


# -- the command launcher -------------------------------------------------------------------------
def test_command_trains_with_placeholders_threads_and_env(tmp_path: Path) -> None:
    launcher = command_launcher("tiny_torch.py", "--name", "trial-{trial_number:03d}-of-{threads}-{{x}}")
    process, directory, log_path = start(
        launcher, tmp_path, {"epochs": 3}, threads=1, env={"SNAKESWEEP_TEST_EXTRA": "yes"}, trial_number=7
    )
    assert finish(process, log_path) == 0, log_path.read_text()
    assert list(read_epoch_metrics(directory)) == [0, 1, 2]
    assert "validation_accuracy" in read_final_metrics(directory)
    received = json.loads((directory / "received.json").read_text())
    assert received["name"] == "trial-007-of-1-{x}"
    assert received["argv"][:5] == [str(TRAINERS / "tiny_torch.py"), "--config", str(directory / "config.json"),
                                    "--out", str(directory)]
    assert received["threads"] == 1
    assert received["env"] == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                               "SNAKESWEEP_TEST_EXTRA": "yes"}
    assert "torch threads: 1" in log_path.read_text()
    assert "epoch 2" in log_path.read_text()


def test_command_log_is_appended(tmp_path: Path) -> None:
    launcher = make_launcher({"type": "command", "command": ["python", "-c", "print('second')"]})
    config_path, directory, log_path = trial_dir(tmp_path, {})
    log_path.write_text("first\n")
    process = launcher.start(config_path, directory, trial_number=0, log_path=log_path, threads=1, env={})
    assert finish(process, log_path) == 0
    assert log_path.read_text() == "first\nsecond\n"


def test_a_parameter_value_is_never_run_by_a_shell(tmp_path: Path) -> None:
    target = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    values = {"tag": f"; touch {target}", "subshell": f"$(touch {target})", "backticks": f"`touch {target}`",
              "placeholder": "{config}"}
    process, directory, log_path = start(command_launcher("tiny_torch.py"), tmp_path, {"epochs": 1, **values})
    assert finish(process, log_path) == 0, log_path.read_text()
    received = json.loads((directory / "received.json").read_text())
    assert received["tag"] == f"; touch {target}"
    assert {key: received["config"][key] for key in values} == values
    assert not target.exists()


# -- the python launcher --------------------------------------------------------------------------
def test_python_trains_in_a_forked_child_with_its_threads(tmp_path: Path) -> None:
    import torch

    before = torch.get_num_threads()
    launcher = python_launcher("tests.trainers.tiny_torch:train")
    process, directory, log_path = start(launcher, tmp_path, {"epochs": 3}, threads=1,
                                         env={"SNAKESWEEP_TEST_EXTRA": "yes"})
    assert finish(process, log_path) == 0, log_path.read_text()
    assert list(read_epoch_metrics(directory)) == [0, 1, 2]
    assert "validation_accuracy" in read_final_metrics(directory)
    received = json.loads((directory / "received.json").read_text())
    assert received["pid"] == process.pid != os.getpid()
    assert received["threads"] == 1
    assert received["env"]["OMP_NUM_THREADS"] == "1"
    assert received["env"]["SNAKESWEEP_TEST_EXTRA"] == "yes"
    assert "torch threads: 1" in log_path.read_text()
    assert torch.get_num_threads() == before  # the worker keeps its own setting
    assert "SNAKESWEEP_TEST_EXTRA" not in os.environ


def test_python_returned_metrics_become_metrics_json(tmp_path: Path) -> None:
    process, directory, log_path = start(python_launcher("tests.trainers.exits:return_metrics"), tmp_path, {})
    assert finish(process, log_path) == 0, log_path.read_text()
    assert read_final_metrics(directory) == {"validation_accuracy": 0.75}


def test_python_sys_exit_code_is_the_exit_code(tmp_path: Path) -> None:
    process, _, log_path = start(python_launcher("tests.trainers.exits:exit_with"), tmp_path, {"code": 3})
    assert finish(process, log_path) == 3
    assert "exiting with 3" in log_path.read_text()


# -- crashes and stops, for both launchers --------------------------------------------------------
@pytest.mark.parametrize("kind", ["command", "python"])
def test_a_crash_exits_non_zero_with_its_traceback_in_the_log(kind: str, tmp_path: Path) -> None:
    process, directory, log_path = start(LAUNCHERS[kind]("crash"), tmp_path, {})
    assert finish(process, log_path) == 1
    log = log_path.read_text()
    assert "Traceback (most recent call last)" in log
    assert "_fail_deep_down" in log
    assert "RuntimeError: the crash trainer fails on purpose" in log
    assert list(read_epoch_metrics(directory)) == [0]
    assert read_final_metrics(directory) is None


@pytest.mark.parametrize("kind", ["command", "python"])
def test_stop_ends_the_whole_group_and_no_epoch_follows(kind: str, tmp_path: Path,
                                                         stopping: list[TrainingProcess]) -> None:
    process, directory, log_path = start(LAUNCHERS[kind]("sleepy"), tmp_path, {"sleep_s": 0.05, "grandchild": True})
    stopping.append(process)
    grandchild = int(wait_for(lambda: (directory / "grandchild.pid").exists()
                              and (directory / "grandchild.pid").read_text()))
    wait_for(lambda: len(read_epoch_metrics(directory)) >= 2)
    assert process.poll() is None
    assert process.wait(0.01) is None
    assert alive(grandchild)

    code = process.stop(grace_s=1.0)  # the grandchild ignores SIGTERM: SIGKILL after the grace
    assert code == -signal.SIGTERM  # the trainer itself obeys SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)
    assert not alive(grandchild)
    epochs = set(os.listdir(directory))
    time.sleep(0.4)  # several epochs' worth
    assert set(os.listdir(directory)) == epochs
    assert process.stop() == code  # idempotent
    assert process.poll() == code


@pytest.mark.parametrize("kind", ["command", "python"])
def test_stop_kills_a_trainer_that_ignores_sigterm(kind: str, tmp_path: Path,
                                                  stopping: list[TrainingProcess]) -> None:
    process, directory, _ = start(LAUNCHERS[kind]("sleepy"), tmp_path, {"sleep_s": 0.05, "ignore_sigterm": True})
    stopping.append(process)
    wait_for(lambda: (directory / "trainer.pid").exists())
    assert process.stop(grace_s=0.3) == -signal.SIGKILL
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)


def test_stop_does_not_wait_out_the_grace_when_the_group_obeys(tmp_path: Path,
                                                                stopping: list[TrainingProcess]) -> None:
    process, directory, _ = start(LAUNCHERS["python"]("sleepy"), tmp_path, {"sleep_s": 0.05})
    stopping.append(process)
    wait_for(lambda: read_epoch_metrics(directory))
    began = time.monotonic()
    assert process.stop(grace_s=30) == -signal.SIGTERM
    assert time.monotonic() - began < 10


def test_stop_after_a_normal_exit_returns_the_code(tmp_path: Path) -> None:
    process, _, log_path = start(LAUNCHERS["python"]("sleepy"), tmp_path, {"epochs": 1, "sleep_s": 0})
    assert finish(process, log_path) == 0
    assert process.stop() == 0


def test_forked_child_gets_default_signal_handlers(tmp_path: Path, stopping: list[TrainingProcess]) -> None:
    """The worker turns SIGTERM into an exception; its trials must still die of SIGTERM."""

    class Caught(BaseException):
        pass

    def handler(signum: int, frame: Any) -> None:
        raise Caught

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        process, directory, log_path = start(LAUNCHERS["python"]("sleepy"), tmp_path, {"sleep_s": 0.05})
        stopping.append(process)
        wait_for(lambda: read_epoch_metrics(directory))
        assert process.stop(grace_s=5) == -signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert "Caught" not in log_path.read_text()


def test_a_forked_trial_ends_when_its_worker_is_killed(tmp_path: Path) -> None:
    """A worker killed with SIGKILL cannot stop its trial; the trial gets SIGTERM from the kernel."""
    script = textwrap.dedent(
        f"""
        import json, os, signal, sys, time
        from pathlib import Path
        sys.path.insert(0, {str(ROOT)!r})
        from snakesweep.launchers import make_launcher
        out = Path({str(tmp_path)!r}) / "trial"
        out.mkdir()
        (out / "config.json").write_text(json.dumps({{"sleep_s": 0.05}}))
        launcher = make_launcher({{"type": "python", "function": "tests.trainers.sleepy:train"}})
        launcher.prepare()
        process = launcher.start(out / "config.json", out, trial_number=0, log_path=out / "train.log",
                                 threads=1, env={{}})
        print(process.pid, flush=True)
        while not (out / "metrics_epoch_0.json").exists():
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    worker = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert worker.returncode == -signal.SIGKILL, worker.stderr
    trainer = int(worker.stdout.split()[0])
    wait_for(lambda: not alive(trainer))



# -- what each launcher decides for its trainer --------------------------------------------------
OTHER_SPECS = ({"type": "command", "command": ["true"]}, {"type": "python", "function": "json:dumps"})


@pytest.mark.parametrize(("devices", "expected"), [("1", 0), ("", -1), ("-1", -1)])
def test_allennlp_runs_get_the_seed_and_the_visible_gpu_or_the_cpu(
    monkeypatch: pytest.MonkeyPatch, devices: str, expected: int
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", devices)
    launcher = make_launcher({"type": "allennlp"})
    overrides = launcher.run_overrides(7, ["random_seed", "numpy_seed"], {"trainer.num_epochs": 2})
    assert overrides == {"random_seed": 7, "numpy_seed": 7, "trainer.cuda_device": expected}
    assert launcher.run_overrides(7, ["random_seed"], {"trainer.cuda_device": 3}) == {"random_seed": 7}


@pytest.mark.parametrize("spec", OTHER_SPECS)
def test_other_launchers_get_only_the_seed(monkeypatch: pytest.MonkeyPatch, spec: dict[str, Any]) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    launcher = make_launcher(spec)
    assert launcher.device_overrides() == {}
    assert launcher.run_overrides(7, ["seed"], {}) == {"seed": 7}


def test_only_the_allennlp_launcher_checks_data_paths(tmp_path: Path) -> None:
    rendered = {"train_data_path": str(tmp_path / "missing.jsonl"), "validation_data_path": "s3://bucket/x.jsonl",
                "test_data_path": str(tmp_path / "*.jsonl")}
    launcher = make_launcher({"type": "allennlp"})
    with pytest.raises(UserError, match="data file not found") as caught:
        launcher.check_data(rendered, "model.jsonnet")
    assert caught.value.field == "train_data_path"
    launcher.check_data({**rendered, "train_data_path": str(ALLENNLP_CONFIG)}, "model.jsonnet")
    for spec in OTHER_SPECS:
        make_launcher(spec).check_data(rendered, "model.jsonnet")


@pytest.mark.parametrize("spec", OTHER_SPECS)
def test_other_launchers_archive_nothing_and_ask_for_an_evaluate_command(spec: dict[str, Any], tmp_path: Path) -> None:
    launcher = make_launcher(spec)
    launcher.archive(tmp_path)
    with pytest.raises(UserError, match="no way to evaluate") as caught:
        launcher.evaluate(tmp_path, "test.jsonl", tmp_path / "metrics.json")
    assert caught.value.field == "retrain.evaluate_command"
    assert list(tmp_path.iterdir()) == []


# -- the allennlp launcher ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def allennlp_launcher() -> Launcher:
    launcher = make_launcher({"type": "allennlp", "include_package": ["tests.trainers.allennlp_plugin"]})
    launcher.prepare()
    return launcher


def allennlp_config(**trainer: Any) -> dict[str, Any]:
    config = json.loads(ALLENNLP_CONFIG.read_text())
    config["train_data_path"] = str(ROOT / config["train_data_path"])
    config["validation_data_path"] = str(ROOT / config["validation_data_path"])
    config["trainer"].update(trainer)
    return config


def test_allennlp_trains_a_tiny_model_end_to_end(allennlp_launcher: Launcher, tmp_path: Path) -> None:
    config = allennlp_config()
    process, directory, log_path = start(allennlp_launcher, tmp_path, config, threads=1)
    config_text = (directory / "config.json").read_text()
    assert finish(process, log_path) == 0, log_path.read_text()
    epochs = read_epoch_metrics(directory)
    assert list(epochs) == [0, 1]
    assert all(0.0 <= metrics["validation_accuracy"] <= 1.0 for metrics in epochs.values())
    final = read_final_metrics(directory)
    assert "best_validation_accuracy" in final
    shown = [key for key in final if allennlp_launcher.final_key_in_epoch_files(key)]
    assert "best_validation_accuracy" in shown and all(key in epochs[0] for key in shown), \
        "the worker may take a key missing from the first epoch file for one missing from metrics.json"
    # The worker's files are left as they were; a trial makes no model archive.
    assert (directory / "config.json").read_text() == config_text
    assert json.loads((directory / "params.json").read_text()) == {"lr": 0.1}
    assert (directory / "best.th").exists() and (directory / "vocabulary").is_dir()
    assert not (directory / "model.tar.gz").exists()
    assert "allennlp.training" in log_path.read_text()


def test_allennlp_include_package_reaches_the_trial(allennlp_launcher: Launcher, tmp_path: Path) -> None:
    config = allennlp_config(num_epochs=1)
    config["model"]["seq2vec_encoder"] = {"type": "snakesweep-test-mean", "embedding_dim": 16}
    process, directory, log_path = start(allennlp_launcher, tmp_path, config)
    assert finish(process, log_path) == 0, log_path.read_text()
    assert "validation_accuracy" in read_epoch_metrics(directory)[0]


def test_allennlp_optuna_pruner_callbacks_train_unchanged(allennlp_launcher: Launcher, tmp_path: Path) -> None:
    config = allennlp_config(num_epochs=1, callbacks=[{"type": "optuna_pruner", "monitor": "validation_accuracy"}])
    process, directory, log_path = start(allennlp_launcher, tmp_path, config)
    assert finish(process, log_path) == 0, log_path.read_text()
    assert "validation_accuracy" in read_epoch_metrics(directory)[0]


def test_allennlp_stop_ends_training(allennlp_launcher: Launcher, tmp_path: Path,
                                     stopping: list[TrainingProcess]) -> None:
    process, directory, log_path = start(allennlp_launcher, tmp_path, allennlp_config(num_epochs=500))
    stopping.append(process)
    wait_for(lambda: read_epoch_metrics(directory) or process.poll() is not None)
    assert process.stop(grace_s=60) == -signal.SIGTERM, log_path.read_text()  # a loaded machine: slow to exit
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)
    epochs = set(os.listdir(directory))
    time.sleep(0.5)
    assert set(os.listdir(directory)) == epochs
    assert read_final_metrics(directory) is None


def test_allennlp_bad_config_fails_the_trial_with_a_traceback(allennlp_launcher: Launcher, tmp_path: Path) -> None:
    config = allennlp_config()
    config["model"]["type"] = "snakesweep-no-such-model"
    process, _, log_path = start(allennlp_launcher, tmp_path, config)
    assert finish(process, log_path) == 1
    log = log_path.read_text()
    assert "Traceback" in log and "snakesweep-no-such-model" in log


def test_allennlp_archives_and_evaluates_a_trained_model(allennlp_launcher: Launcher, tmp_path: Path) -> None:
    process, directory, log_path = start(allennlp_launcher, tmp_path, allennlp_config(num_epochs=1))
    assert finish(process, log_path) == 0, log_path.read_text()
    allennlp_launcher.archive(directory)
    assert (directory / "model.tar.gz").exists()
    output = tmp_path / "test_metrics.json"
    allennlp_launcher.evaluate(directory, str(ROOT / "tests/data/allennlp/validation.jsonl"), output)
    assert 0.0 <= json.loads(output.read_text())["accuracy"] <= 1.0


def test_allennlp_unknown_include_package_fails_at_prepare() -> None:
    launcher = make_launcher({"type": "allennlp", "include_package": ["snakesweep_no_such_package"]})
    with pytest.raises(UserError, match="cannot import 'snakesweep_no_such_package'") as caught:
        launcher.prepare()
    assert caught.value.field == "launcher.include_package"


@pytest.mark.slow
def test_allennlp_distributed_training_on_two_cpu_ranks(allennlp_launcher: Launcher, tmp_path: Path) -> None:
    config = allennlp_config(num_epochs=1)
    config["distributed"] = {"cuda_devices": [-1, -1]}
    process, directory, log_path = start(allennlp_launcher, tmp_path, config)
    assert finish(process, log_path) == 0, log_path.read_text()
    assert "validation_accuracy" in read_epoch_metrics(directory)[0]
    assert (directory / "out_worker1.log").exists()
    assert json.loads((directory / "params.json").read_text()) == {"lr": 0.1}
    assert not (directory / "model.tar.gz").exists()

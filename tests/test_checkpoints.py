"""Checkpoints on disk: the trial file protocol's helpers, and what each launcher takes for a whole
checkpoint and for weights."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from snakesweep.launchers import make_launcher
from snakesweep.trialfiles import (
    CHECKPOINT_DIR_ENV,
    RESUME_EPOCH_ENV,
    find_checkpoints,
    resume_checkpoint,
    saving_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]
ECHO = ("import json, os, sys; json.dump(dict(argv=sys.argv[1:], env=[os.environ.get(k) for k in "
        f"({CHECKPOINT_DIR_ENV!r}, {RESUME_EPOCH_ENV!r})]), open(sys.argv[1] + '/seen.json', 'w'))")


def save(directory: Path, epoch: int, payload: bytes = b"w" * 100) -> None:
    with saving_checkpoint(directory, epoch) as staging:
        (staging / "state.pt").write_bytes(payload)
        (staging / "sub").mkdir()
        (staging / "sub" / "more.bin").write_bytes(payload)


def test_a_checkpoint_is_published_whole_and_replaces_the_older_one(tmp_path: Path) -> None:
    assert resume_checkpoint(tmp_path) is None
    save(tmp_path, 0)
    save(tmp_path, 1)
    saved = resume_checkpoint(tmp_path)
    assert saved is not None and saved.epoch == 1 and saved.directory == tmp_path / "checkpoints" / "epoch_1"
    assert (saved.directory / "sub" / "more.bin").read_bytes() == b"w" * 100
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch_1"]


def test_a_trainer_stopped_while_saving_leaves_no_checkpoint_that_looks_whole(tmp_path: Path) -> None:
    save(tmp_path, 0)
    with pytest.raises(KeyboardInterrupt), saving_checkpoint(tmp_path, 1) as staging:
        (staging / "state.pt").write_bytes(b"half")
        raise KeyboardInterrupt
    assert resume_checkpoint(tmp_path).epoch == 0
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch_0"]


@pytest.mark.parametrize("damage", ["truncate", "remove", "manifest"])
def test_a_damaged_checkpoint_is_reported_and_never_offered(tmp_path: Path, damage: str) -> None:
    save(tmp_path, 0)
    older = tmp_path / "checkpoints" / "epoch_0"
    kept = tmp_path / "older"
    os.rename(older, kept)  # saving epoch 1 would delete epoch 0: keep a copy aside
    save(tmp_path, 1)
    os.rename(kept, older)
    newest = tmp_path / "checkpoints" / "epoch_1"
    if damage == "truncate":
        (newest / "state.pt").write_bytes(b"w" * 10)
    elif damage == "remove":
        (newest / "sub" / "more.bin").unlink()
    else:
        (newest / "snakesweep-checkpoint.json").unlink()
    saved, damaged = find_checkpoints(tmp_path)
    assert saved is not None and saved.epoch == 0, "the older whole checkpoint is the one offered"
    assert len(damaged) == 1 and damaged[0].startswith("checkpoints/epoch_1: ")


@pytest.mark.parametrize("kind", ["command", "python"])
def test_protocol_weights_and_checkpoint_of_the_command_and_python_launchers(tmp_path: Path, kind: str) -> None:
    spec = {"type": "command", "command": ["python", "x.py"]} if kind == "command" else {
        "type": "python", "function": "tests.trainers.curve:train"}
    launcher = make_launcher(spec)
    save(tmp_path, 3)
    (tmp_path / "checkpoints" / ".epoch_4.x1").mkdir()  # a save cut short
    for name in ("model.pt", "best.th", "nested/w.safetensors", "metrics.json", "config.json", "train.log"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    weights = sorted(str(p.relative_to(tmp_path)) for p in launcher.weight_files(tmp_path))
    assert weights == ["best.th", "checkpoints/.epoch_4.x1", "checkpoints/epoch_3", "model.pt", "nested/w.safetensors"]
    search = launcher.find_checkpoint(tmp_path)
    assert search.found.epoch == 4 and search.found.files == ("checkpoints/epoch_3",) and not search.damaged


def test_the_command_launcher_tells_the_trainer_where_checkpoints_go_and_where_to_resume(tmp_path: Path) -> None:
    launcher = make_launcher({"type": "command", "command": [
        sys.executable, "-c", ECHO, "{serialization_dir}", "{checkpoint_dir}", "{resume_epoch}"]})
    launcher.prepare()
    (tmp_path / "config.json").write_text("{}")
    process = launcher.start(tmp_path / "config.json", tmp_path, trial_number=3, log_path=tmp_path / "train.log",
                             threads=1, env={}, resume_epoch=5)
    assert process.wait(60) == 0, (tmp_path / "train.log").read_text()
    seen = json.loads((tmp_path / "seen.json").read_text())
    checkpoints = str(tmp_path.absolute() / "checkpoints")
    assert seen == {"argv": [str(tmp_path.absolute()), checkpoints, "5"], "env": [checkpoints, "5"]}


def test_an_unknown_placeholder_is_still_refused() -> None:
    from snakesweep.errors import UserError

    with pytest.raises(UserError, match="resume_from"):
        make_launcher({"type": "command", "command": ["python", "x.py", "{resume_from}"]})


# -- the allennlp launcher: AllenNLP's own checkpoint files ------------------------------------------
def torch_file(path: Path, size: int = 1000) -> None:
    import torch

    torch.save({"w": torch.zeros(size)}, path)


def test_allennlp_offers_the_newest_whole_pair_with_best_th(tmp_path: Path) -> None:
    launcher = make_launcher({"type": "allennlp"})
    for epochs in (2, 3):
        torch_file(tmp_path / f"model_state_e{epochs}_b0.th")
        torch_file(tmp_path / f"training_state_e{epochs}_b0.th")
    os.link(tmp_path / "model_state_e3_b0.th", tmp_path / "best.th")
    (tmp_path / "metrics_epoch_2.json").write_text("{}")
    (tmp_path / "vocabulary").mkdir()
    search = launcher.find_checkpoint(tmp_path)
    assert search.found.epoch == 3 and not search.damaged
    assert search.found.files == ("model_state_e3_b0.th", "training_state_e3_b0.th", "best.th")
    assert [p.name for p in launcher.weight_files(tmp_path)] == [
        "best.th", "model_state_e2_b0.th", "model_state_e3_b0.th", "training_state_e2_b0.th", "training_state_e3_b0.th"]


@pytest.mark.parametrize("damage", ["cut", "missing"])
def test_allennlp_never_offers_a_pair_cut_short_or_incomplete(tmp_path: Path, damage: str) -> None:
    launcher = make_launcher({"type": "allennlp"})
    for epochs in (2, 3):
        torch_file(tmp_path / f"model_state_e{epochs}_b0.th")
        torch_file(tmp_path / f"training_state_e{epochs}_b0.th")
    newest = tmp_path / "training_state_e3_b0.th"
    if damage == "cut":  # a torch.save stopped half way
        newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    else:  # stopped between the model's state and the trainer's
        newest.unlink()
    search = launcher.find_checkpoint(tmp_path)
    assert search.found.epoch == 2 and search.found.files == ("model_state_e2_b0.th", "training_state_e2_b0.th")
    assert len(search.damaged) == 1 and search.damaged[0].startswith("training_state_e3_b0.th: ")

"""The trial file protocol: atomic writers, tolerant readers, the epoch watcher."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from snakesweep.trialfiles import (
    EpochWatcher,
    read_epoch_metrics,
    read_final_metrics,
    write_epoch_metrics,
    write_final_metrics,
)


class Scalar:
    """Stands for a numpy or torch scalar: JSON-unfriendly, with .item()."""

    def __init__(self, value: float) -> None:
        self.value = value

    def item(self) -> float:
        return self.value


def test_writers_write_the_allennlp_file_names(tmp_path: Path) -> None:
    path = write_epoch_metrics(tmp_path, 3, {"validation_accuracy": 0.5, "epoch": 3})
    assert path == tmp_path / "metrics_epoch_3.json"
    assert json.loads(path.read_text()) == {"validation_accuracy": 0.5, "epoch": 3}
    final = write_final_metrics(str(tmp_path), {"best_validation_accuracy": 0.75})
    assert final == tmp_path / "metrics.json"
    assert json.loads(final.read_text()) == {"best_validation_accuracy": 0.75}
    assert sorted(os.listdir(tmp_path)) == ["metrics.json", "metrics_epoch_3.json"]  # no temp files left


def test_writers_create_the_directory_and_convert_scalars(tmp_path: Path) -> None:
    out = tmp_path / "new" / "trial"
    write_epoch_metrics(out, 0, {"loss": Scalar(1.5), "nan": float("nan")})
    assert read_epoch_metrics(out)[0]["loss"] == 1.5


def test_overwriting_replaces_the_whole_file(tmp_path: Path) -> None:
    write_final_metrics(tmp_path, {"a": "x" * 1000})
    write_final_metrics(tmp_path, {"b": 1})
    assert read_final_metrics(tmp_path) == {"b": 1}


@pytest.mark.parametrize("epoch", [-1, 1.0, "1", True])
def test_bad_epoch_numbers_are_refused(tmp_path: Path, epoch: object) -> None:
    with pytest.raises(ValueError, match="epoch"):
        write_epoch_metrics(tmp_path, epoch, {})  # type: ignore[arg-type]


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    write_final_metrics(tmp_path, {"old": 1})
    with pytest.raises(TypeError):
        write_final_metrics(tmp_path, {"bad": object()})
    with pytest.raises(TypeError):
        write_epoch_metrics(tmp_path, 0, [("not", "a mapping")])  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == ["metrics.json"]
    assert read_final_metrics(tmp_path) == {"old": 1}


def test_read_epoch_metrics_sorts_numerically_and_skips_what_is_not_ready(tmp_path: Path) -> None:
    for epoch in (10, 2, 0, 1):
        write_epoch_metrics(tmp_path, epoch, {"epoch": epoch})
    (tmp_path / "metrics_epoch_11.json").write_text('{"epoch": 1')  # a trainer writing in place
    (tmp_path / "metrics_epoch_12.json").write_text("")
    (tmp_path / "metrics_epoch_13.json").write_text("[1, 2]")  # not an object
    (tmp_path / "metrics_epoch_x.json").write_text("{}")
    (tmp_path / ".metrics_epoch_14.json.abc.tmp").write_text("{}")
    (tmp_path / "metrics_epoch_15.json").mkdir()
    epochs = read_epoch_metrics(tmp_path)
    assert list(epochs) == [0, 1, 2, 10]
    assert epochs[10] == {"epoch": 10}


def test_readers_of_a_missing_directory(tmp_path: Path) -> None:
    assert read_epoch_metrics(tmp_path / "absent") == {}
    assert read_final_metrics(tmp_path / "absent") is None
    assert EpochWatcher(tmp_path / "absent").new_epochs() == []


def test_read_final_metrics_waits_for_a_whole_object(tmp_path: Path) -> None:
    assert read_final_metrics(tmp_path) is None
    (tmp_path / "metrics.json").write_text('{"validation_accuracy": 0.')
    assert read_final_metrics(tmp_path) is None
    (tmp_path / "metrics.json").write_bytes(b'{"x": "\xff"}')
    assert read_final_metrics(tmp_path) is None
    (tmp_path / "metrics.json").write_text('{"validation_accuracy": 0.5}')
    assert read_final_metrics(tmp_path) == {"validation_accuracy": 0.5}


def test_watcher_returns_each_epoch_once(tmp_path: Path) -> None:
    watcher = EpochWatcher(tmp_path)
    assert watcher.new_epochs() == []
    write_epoch_metrics(tmp_path, 0, {"acc": 0.1})
    write_epoch_metrics(tmp_path, 1, {"acc": 0.2})
    assert watcher.new_epochs() == [(0, {"acc": 0.1}), (1, {"acc": 0.2})]
    assert watcher.new_epochs() == []
    write_epoch_metrics(tmp_path, 2, {"acc": 0.3})
    assert watcher.new_epochs() == [(2, {"acc": 0.3})]
    assert watcher.seen == {0, 1, 2}


def test_watcher_does_not_read_seen_files_again(tmp_path: Path) -> None:
    watcher = EpochWatcher(tmp_path)
    write_epoch_metrics(tmp_path, 0, {"acc": 0.1})
    assert watcher.new_epochs() == [(0, {"acc": 0.1})]
    (tmp_path / "metrics_epoch_0.json").write_text("garbage")  # would fail to parse if read
    write_epoch_metrics(tmp_path, 0 + 1, {"acc": 0.2})
    assert watcher.new_epochs() == [(1, {"acc": 0.2})]


def test_watcher_retries_a_partial_file_on_the_next_poll(tmp_path: Path) -> None:
    watcher = EpochWatcher(tmp_path)
    path = tmp_path / "metrics_epoch_0.json"
    path.write_text('{"validation_accuracy": 0.')
    write_epoch_metrics(tmp_path, 1, {"validation_accuracy": 0.6})
    assert watcher.new_epochs() == [(1, {"validation_accuracy": 0.6})]
    path.write_text('{"validation_accuracy": 0.5}')
    assert watcher.new_epochs() == [(0, {"validation_accuracy": 0.5})]
    assert watcher.new_epochs() == []


def test_readers_never_see_half_a_file_while_a_writer_replaces_it(tmp_path: Path) -> None:
    big = {f"metric_{i}": i / 7 for i in range(3000)}
    write_epoch_metrics(tmp_path, 0, big)
    write_final_metrics(tmp_path, big)
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            write_epoch_metrics(tmp_path, 0, {**big, "n": n})
            write_final_metrics(tmp_path, {**big, "n": n})

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(300):
            assert 0 in read_epoch_metrics(tmp_path)
            assert read_final_metrics(tmp_path) is not None
            assert EpochWatcher(tmp_path).new_epochs()[0][0] == 0
    finally:
        stop.set()
        writer.join()

"""A trainer that sleeps through each epoch, so a test can stop it mid-run; no torch, quick to start.

    python tests/trainers/sleepy.py --config CONFIG --out SERIALIZATION_DIR
    launcher function: tests.trainers.sleepy:train

Config keys: `epochs` (1000), `sleep_s` (0.1), `grandchild` (false: when true, first spawns a
helper process that ignores SIGTERM and writes its pid to `grandchild.pid`), `ignore_sigterm`
(false: the trainer itself ignores SIGTERM, so only SIGKILL ends it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from snakesweep.trialfiles import write_epoch_metrics, write_final_metrics

HELPER = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)\n"


def train(config: dict[str, Any], serialization_dir: str) -> None:
    out = Path(serialization_dir)
    if config.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if config.get("grandchild"):
        helper = subprocess.Popen([sys.executable, "-c", HELPER])
        tmp = out / "grandchild.pid.tmp"
        tmp.write_text(str(helper.pid))
        tmp.replace(out / "grandchild.pid")
    (out / "trainer.pid").write_text(str(os.getpid()))
    for epoch in range(int(config.get("epochs", 1000))):
        time.sleep(float(config.get("sleep_s", 0.1)))
        write_epoch_metrics(out, epoch, {"epoch": epoch, "validation_accuracy": epoch / 1000})
        print(f"epoch {epoch}", flush=True)
    write_final_metrics(out, {"validation_accuracy": 1.0})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    train(json.loads(Path(args.config).read_text()), args.out)


if __name__ == "__main__":
    main()

"""Score a retrained digits model on the held-out test part; the only code that loads it.

    python examples/pytorch-digits/evaluate.py MODEL_DIR TEST_DATA OUTPUT

The workflow's `evaluate` rule runs it through `retrain.evaluate_command` with MODEL_DIR the
retrained model's directory (holding `best.th`), TEST_DATA `retrain.test_data` (test_split.json,
which describes the test part: the digits come from scikit-learn, not from a file) and OUTPUT the
JSON file of test metrics to write: {"accuracy": ..., "loss": ..., "examples": ...}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from digits import SPLIT, accuracy_and_loss, build_model, indices_digest, load_part, split_indices


def check_split(spec_path: Path) -> int:
    """The split test_split.json describes is the one digits.py makes; the test part's size."""
    spec = json.loads(spec_path.read_text())
    if spec.get("part") != "test":
        raise SystemExit(f"{spec_path}: part is {spec.get('part')!r}, not 'test'")
    expected = {key: spec.get(key) for key in SPLIT}
    if expected != SPLIT:
        raise SystemExit(f"{spec_path}: split {expected} differs from digits.SPLIT {SPLIT}")
    test = split_indices()["test"]
    if len(test) != spec["examples"] or indices_digest(test) != spec["indices_sha256"]:
        raise SystemExit(f"{spec_path}: the test indices differ from the recorded ones "
                         "(a changed numpy or scikit-learn?); the split is not the one held out")
    return len(test)


def evaluate(model_dir: Path, test_data: Path, output: Path) -> dict:
    examples = check_split(test_data)
    saved = torch.load(model_dir / "best.th", weights_only=True)
    model = build_model(saved["model"])
    model.load_state_dict(saved["state_dict"])
    x_test, y_test = load_part("test")
    accuracy, loss = accuracy_and_loss(model, x_test, y_test)
    metrics = {"accuracy": accuracy, "loss": loss, "examples": examples}
    output.write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    print(json.dumps(evaluate(*map(Path, argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The workflow's steps: what each script in workflow/scripts/ calls, with logging and clean errors."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from snakesweep.errors import Interrupted, UserError, one_line
from snakesweep.logs import setup_logging
from snakesweep.paths import Paths


def run_step(snakemake: Any, step: Callable[[Any], Any]) -> None:
    """Run one step of a Snakemake job: log to the rule's log and stderr; a user error is one line, exit 1."""
    setup_logging(snakemake.log[0] if snakemake.log else None)
    try:
        step(snakemake)
    except (UserError, Interrupted) as error:
        line, code = one_line(error)
        logging.getLogger("snakesweep").error("%s", line)
        sys.exit(code)


def create_study(snakemake: Any) -> None:
    from snakesweep import storage as storages
    from snakesweep.study import create_study as create, study_spec
    from snakesweep.tracking import listening
    from snakesweep.trialfiles import write_json

    config = snakemake.config
    spec = study_spec(config)
    study = create(config, spec)
    marker = {
        "study": study.study_name,
        "fingerprint": spec.fingerprint,
        "storage": storages.mask(storages.storage_url(config)),
        "definition": spec.definition,
    }
    write_json(snakemake.output[0], marker)
    logging.getLogger("snakesweep").info("study %s ready in %s", study.study_name, marker["storage"])
    with listening(config, spec.name, "create_study", ship="at_close") as tracker:
        params = {"direction": ", ".join(spec.directions), "metric": ", ".join(spec.metrics),
                  "sampler": spec.sampler, "pruner": spec.pruner}
        tracker.study_created(params, {"fingerprint": spec.fingerprint, "storage": marker["storage"]})


def worker(snakemake: Any) -> None:
    from snakesweep.worker import run_worker

    run_worker(snakemake.config, int(snakemake.wildcards.worker), threads=snakemake.threads,
               summary_path=snakemake.output[0])


def select(snakemake: Any) -> None:
    from snakesweep.selection import select as select_best
    from snakesweep.study import study_spec
    from snakesweep.tracking import listening

    config = snakemake.config
    with listening(config, study_spec(config).name, "select", ship="at_close") as tracker:
        summary = select_best(config, snakemake.output.trials, snakemake.output.best_params,
                              snakemake.output.best_config, tracker)
    logging.getLogger("snakesweep").info("%s in trial %d: %s", _answer(summary), summary["trial"],
                                         json.dumps(summary["params"]))


def _answer(summary: dict[str, Any]) -> str:
    """What best_params.json holds, in words: the best value, or the front and the chosen trial's values."""
    if "front" in summary:
        values = ", ".join(f"{name} {value:.4g}" for name, value in summary["values"].items())
        return f"Pareto front of {len(summary['front'])} trials; chosen ({summary['select']['rule']}): {values}"
    return f"best {summary['metric']} {summary['value']:.4g}"


def retrain(snakemake: Any) -> None:
    from snakesweep.final import retrain as train

    train(snakemake.config, snakemake.input.best_config, int(snakemake.wildcards.seed),
          Path(snakemake.output[0]).parent, threads=snakemake.threads)


def evaluate(snakemake: Any) -> None:
    from snakesweep.final import evaluate as score
    from snakesweep.tracking import listening
    from snakesweep.trialfiles import read_epoch_metrics

    config, model_dir, seed = snakemake.config, Path(snakemake.input[0]).parent, int(snakemake.wildcards.seed)
    metrics = score(config, model_dir, snakemake.output[0])
    best = json.loads(Paths.of(config).best_params.read_text())
    # Shipped by test_metrics, after every seed: the evaluations may run on nodes side by side.
    with listening(config, best["study"], f"evaluate-{seed}", ship="never") as tracker:
        tracker.seed_tested(seed, best["params"], metrics, model_dir, read_epoch_metrics(model_dir))


def test_metrics(snakemake: Any) -> None:
    from snakesweep.final import write_test_metrics
    from snakesweep.tracking import listening

    config = snakemake.config
    result = write_test_metrics(dict(zip(config["retrain"]["seeds"], snakemake.input)), snakemake.output[0])
    study = json.loads(Paths.of(config).best_params.read_text())["study"]
    with listening(config, study, "test_metrics", ship="at_close") as tracker:
        tracker.tested(result)


def where_is_the_answer(config: dict[str, Any]) -> str:
    """The closing words of a successful run."""
    paths = Paths.of(config)
    lines = ["", "snakesweep: done."]
    if paths.best_params.exists():
        summary = json.loads(paths.best_params.read_text())
        lines.append(f"  {_answer(summary)}, params: {paths.best_params}")
    if paths.test_metrics.exists():
        lines.append(f"  test metrics (mean and std over seeds): {paths.test_metrics}")
    lines.append(f"  every trial: {paths.trials_csv}, trial directories under {paths.results / 'studies'}")
    return "\n".join(lines)


def report(snakemake: Any) -> None:
    from snakesweep.report import write_report

    out_dir = Paths.of(snakemake.config).report_dir
    seeds = snakemake.config["retrain"]["seeds"]
    summary = write_report(snakemake.config, out_dir, test_metrics=snakemake.input.test_metrics,
                           retrained=dict(zip(seeds, snakemake.input.retrained)))
    counts = summary["counts"]
    logging.getLogger("snakesweep").info(
        "report of %s in %s: %d complete, %d pruned, %d failed trials", summary["study"], out_dir,
        counts["complete"], counts["pruned"], counts["failed"],
    )

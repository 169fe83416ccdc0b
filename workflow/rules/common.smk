# Names and paths computed once by the library; rules below only refer to them.
from snakesweep.workflow import check_executor_or_exit, plan_or_exit
from snakesweep.steps import where_is_the_answer
from snakesweep.report import report_outputs


PLAN = plan_or_exit(config)
PATHS = PLAN.paths
STUDY = PLAN.study_name
SEEDS = config["retrain"]["seeds"]


def final_targets():
    return [
        PATHS.best_params,
        PATHS.trials_csv,
        PATHS.best_config,
        PATHS.test_metrics,
        PATHS.report_dir / "summary.html",
    ]


def declared(output):
    """A report output as declared: a directory, an entry of `snakemake --report`, or a plain file."""
    path = PATHS.report_dir / output.file
    if output.directory:
        return directory(path)
    if output.category:
        caption = f"../report/{output.caption}"
        return report(path, caption=caption, category=output.category, labels=dict(output.labels))
    return path

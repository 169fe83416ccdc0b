# Names and paths computed once by the library; rules below only refer to them.
from snakesweep.workflow import check_executor_or_exit, plan_or_exit
from snakesweep.steps import where_is_the_answer


PLAN = plan_or_exit(config)
RESULTS = config["results"]
STUDY_DIR = PLAN.study_dir


def final_targets():
    return [
        f"{RESULTS}/best_params.json",
        f"{RESULTS}/trials.csv",
        f"{RESULTS}/best_config.json",
        f"{RESULTS}/test_metrics.json",
        f"{RESULTS}/report/summary.html",
    ]

from snakesweep.steps import test_metrics, run_step

run_step(snakemake, test_metrics)  # noqa: F821 (the object Snakemake hands to scripts)

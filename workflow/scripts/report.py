from snakesweep.steps import report, run_step

run_step(snakemake, report)  # noqa: F821 (the object Snakemake hands to scripts)

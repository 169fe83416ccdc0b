from snakesweep.steps import create_study, run_step

run_step(snakemake, create_study)  # noqa: F821 (the object Snakemake hands to scripts)

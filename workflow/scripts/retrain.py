from snakesweep.steps import retrain, run_step

run_step(snakemake, retrain)  # noqa: F821 (the object Snakemake hands to scripts)

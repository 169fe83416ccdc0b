from snakesweep.steps import evaluate, run_step

run_step(snakemake, evaluate)  # noqa: F821 (the object Snakemake hands to scripts)

from snakesweep.steps import worker, run_step

run_step(snakemake, worker)  # noqa: F821 (the object Snakemake hands to scripts)

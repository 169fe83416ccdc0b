from snakesweep.steps import select, run_step

run_step(snakemake, select)  # noqa: F821 (the object Snakemake hands to scripts)

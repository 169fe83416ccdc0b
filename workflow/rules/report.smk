# Plots and the summary table for `snakemake --report report.html`; the interactive versions of the
# plots are under <results>/report/html/ (open index.html). The outputs are the library's list.

localrules:
    report,


rule report:
    input:
        best_params=PATHS.best_params,
        trials=PATHS.trials_csv,
        test_metrics=PATHS.test_metrics,
        retrained=[PATHS.retrain_metrics(seed) for seed in SEEDS],
    output:
        **{output.name: declared(output) for output in report_outputs(config)},
    log:
        PATHS.log("report"),
    conda:
        "../envs/snakesweep.yaml"
    script:
        "../scripts/report.py"

# Plots and the summary table for `snakemake --report report.html`; the interactive versions of the
# plots are under <results>/report/html/ (open index.html).
REPORT = f"{RESULTS}/report"


localrules:
    report,


rule report:
    input:
        best_params=f"{RESULTS}/best_params.json",
        trials=f"{RESULTS}/trials.csv",
        test_metrics=f"{RESULTS}/test_metrics.json",
        retrained=expand(f"{RESULTS}/final/seed-{{seed}}/metrics.json", seed=config["retrain"]["seeds"]),
    output:
        optimization_history=report(
            f"{REPORT}/optimization_history.png",
            caption="../report/optimization_history.rst",
            category="Sweep",
            labels={"figure": "optimization history"},
        ),
        parallel_coordinates=report(
            f"{REPORT}/parallel_coordinates.png",
            caption="../report/parallel_coordinates.rst",
            category="Sweep",
            labels={"figure": "parallel coordinates"},
        ),
        param_importances=report(
            f"{REPORT}/param_importances.png",
            caption="../report/param_importances.rst",
            category="Sweep",
            labels={"figure": "parameter importances"},
        ),
        slices=report(
            f"{REPORT}/slices.png",
            caption="../report/slices.rst",
            category="Sweep",
            labels={"figure": "slices"},
        ),
        expected_max=report(
            f"{REPORT}/expected_max.png",
            caption="../report/expected_max.rst",
            category="Sweep",
            labels={"figure": "expected best against trials"},
        ),
        learning_curves=report(
            f"{REPORT}/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Trials",
            labels={"figure": "learning curves"},
        ),
        test_scores=report(
            f"{REPORT}/test_scores.png",
            caption="../report/test_scores.rst",
            category="Final model",
            labels={"figure": "test scores across seeds"},
        ),
        summary_html=report(
            f"{REPORT}/summary.html",
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "summary"},
        ),
        summary_rst=f"{REPORT}/summary.rst",
        summary_json=f"{REPORT}/summary.json",
        html=directory(f"{REPORT}/html"),
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../envs/snakesweep.yaml"
    script:
        "../scripts/report.py"

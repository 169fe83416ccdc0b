localrules:
    select,


rule select:
    input:
        expand(PATHS.worker_summary(STUDY, "{worker}"), worker=range(config["workers"]["count"])),
    output:
        trials=PATHS.trials_csv,
        best_params=PATHS.best_params,
        best_config=PATHS.best_config,
    params:
        # Several objectives: the rule that picks the trial to retrain; a changed rule selects again.
        **({"select": PLAN.select} if PLAN.select else {}),
    log:
        PATHS.log("select"),
    conda:
        "../envs/snakesweep.yaml"
    script:
        "../scripts/select.py"

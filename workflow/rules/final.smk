rule retrain:
    input:
        best_config=PATHS.best_config,
    output:
        PATHS.retrain_metrics("{seed}"),
    params:
        overrides=config["retrain"]["overrides"],
    threads: config["workers"]["threads"]
    resources:
        mem_mb=config["workers"]["mem_mb"],
        runtime=config["workers"]["runtime"],
        gpu=config["workers"]["gpu"],
    log:
        PATHS.log("retrain-{seed}"),
    conda:
        "../envs/snakesweep.yaml"
    script:
        "../scripts/retrain.py"


rule evaluate:
    input:
        PATHS.retrain_metrics("{seed}"),
    output:
        PATHS.seed_test_metrics("{seed}"),
    params:
        test_data=config["retrain"]["test_data"],
    threads: config["workers"]["threads"]
    log:
        PATHS.log("evaluate-{seed}"),
    conda:
        "../envs/snakesweep.yaml"
    script:
        "../scripts/evaluate.py"


localrules:
    test_metrics,


rule test_metrics:
    input:
        [PATHS.seed_test_metrics(seed) for seed in SEEDS],
    output:
        PATHS.test_metrics,
    log:
        PATHS.log("test_metrics"),
    conda:
        "../envs/snakesweep.yaml"
    script:
        "../scripts/test_metrics.py"

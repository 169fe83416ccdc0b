rule retrain:
    input:
        best_config=f"{RESULTS}/best_config.json",
    output:
        f"{RESULTS}/final/seed-{{seed}}/metrics.json",
    params:
        overrides=config["retrain"]["overrides"],
    threads: config["workers"]["threads"]
    resources:
        mem_mb=config["workers"]["mem_mb"],
        runtime=config["workers"]["runtime"],
        gpu=config["workers"]["gpu"],
    log:
        f"{RESULTS}/logs/retrain-{{seed}}.log",
    conda:
        "../envs/snakesweep.yaml"
    script:
        "../scripts/retrain.py"


rule evaluate:
    input:
        f"{RESULTS}/final/seed-{{seed}}/metrics.json",
    output:
        f"{RESULTS}/final/seed-{{seed}}/test_metrics.json",
    params:
        test_data=config["retrain"]["test_data"],
    threads: config["workers"]["threads"]
    log:
        f"{RESULTS}/logs/evaluate-{{seed}}.log",
    conda:
        "../envs/snakesweep.yaml"
    script:
        "../scripts/evaluate.py"


localrules:
    test_metrics,


rule test_metrics:
    input:
        expand(f"{RESULTS}/final/seed-{{seed}}/test_metrics.json", seed=config["retrain"]["seeds"]),
    output:
        f"{RESULTS}/test_metrics.json",
    log:
        f"{RESULTS}/logs/test_metrics.log",
    conda:
        "../envs/snakesweep.yaml"
    script:
        "../scripts/test_metrics.py"

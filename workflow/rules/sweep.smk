rule worker:
    input:
        f"{STUDY_DIR}/study.json",
    output:
        f"{STUDY_DIR}/workers/{{worker}}.json",
    params:
        # A larger budget reruns the workers, which add only the missing trials.
        n_trials=PLAN.n_trials,
    threads: config["workers"]["threads"]
    resources:
        mem_mb=config["workers"]["mem_mb"],
        runtime=config["workers"]["runtime"],
        gpu=config["workers"]["gpu"],
    log:
        f"{STUDY_DIR}/logs/worker-{{worker}}.log",
    conda:
        "../envs/snakesweep.yaml"
    script:
        "../scripts/worker.py"

rule worker:
    input:
        PATHS.study_marker(STUDY),
    output:
        PATHS.worker_summary(STUDY, "{worker}"),
    params:
        # A larger budget reruns the workers, which add only the missing trials.
        n_trials=PLAN.n_trials,
    threads: config["workers"]["threads"]
    resources:
        mem_mb=config["workers"]["mem_mb"],
        runtime=config["workers"]["runtime"],
        gpu=config["workers"]["gpu"],
    log:
        PATHS.study_log(STUDY, "worker-{worker}"),
    conda:
        "../envs/snakesweep.yaml"
    script:
        "../scripts/worker.py"

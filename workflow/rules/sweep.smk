rule worker:
    input:
        PATHS.study_marker(STUDY),
    output:
        PATHS.worker_summary(STUDY, "{worker}"),
    params:
        # A larger budget (trials, epochs, hours) reruns the workers, which add only what is missing;
        # a changed patience decides the stop again.
        n_trials=PLAN.n_trials,
        budget=PLAN.budget,
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

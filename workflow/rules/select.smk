localrules:
    select,


rule select:
    input:
        expand(f"{STUDY_DIR}/workers/{{worker}}.json", worker=range(config["workers"]["count"])),
    output:
        trials=f"{RESULTS}/trials.csv",
        best_params=f"{RESULTS}/best_params.json",
        best_config=f"{RESULTS}/best_config.json",
    log:
        f"{RESULTS}/logs/select.log",
    conda:
        "../envs/snakesweep.yaml"
    script:
        "../scripts/select.py"

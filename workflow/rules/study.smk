localrules:
    create_study,


rule create_study:
    input:
        PLAN.inputs,
    output:
        f"{STUDY_DIR}/study.json",
    params:
        study=PLAN.study_name,
    log:
        f"{STUDY_DIR}/logs/create_study.log",
    conda:
        "../envs/snakesweep.yaml"
    script:
        "../scripts/create_study.py"

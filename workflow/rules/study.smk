localrules:
    create_study,


rule create_study:
    input:
        PLAN.inputs,
    output:
        PATHS.study_marker(STUDY),
    params:
        study=STUDY,
    log:
        PATHS.study_log(STUDY, "create_study"),
    conda:
        "../envs/snakesweep.yaml"
    script:
        "../scripts/create_study.py"

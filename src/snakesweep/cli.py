"""The `snakesweep` command: each subcommand is a thin call into the library."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import warnings
from collections.abc import Callable, Sequence

from snakesweep.errors import Interrupted, UserError, one_line
from snakesweep.display import BEST_FORMATS, FORMATS, SORT_KEYS
from snakesweep.view import STATES
from snakesweep.logs import setup_logging

_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def _command(name: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def register(function: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        _COMMANDS[name] = function
        return function

    return register


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snakesweep", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--configfile", default="config/config.yaml", help="config.yaml (default: %(default)s)")
        return p

    render = sub.add_parser("render", help="render a Jsonnet config with params and print the JSON")
    render.add_argument("jsonnet")
    render.add_argument("--params", default="{}", help="JSON object of parameter values")
    render.add_argument("--override", "-o", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted override applied after rendering, e.g. trainer.num_epochs=20")
    render.add_argument("--style", choices=["auto", "extvar", "tla"], default="auto")
    render.add_argument("--strict", action="store_true", help="an unread parameter is an error")

    with_config(sub.add_parser("check", help="validate config, space, optuna.json and Jsonnet; try the storage"))
    with_config(sub.add_parser("create-study", help="create the study once (schema, study, start points)"))

    worker = with_config(sub.add_parser("worker", help="run trials until the study holds its budget"))
    worker.add_argument("--worker", type=int, default=0, help="this worker's index (default: %(default)s)")
    worker.add_argument("--threads", type=int, default=None, help="CPU threads a trial may use")
    worker.add_argument("--summary", default=None, help="write the worker's summary JSON here")

    status = with_config(sub.add_parser(
        "status", help="finished, pruned, failed and running trials, the best so far, speed and time left"))
    status.add_argument("--watch", type=float, nargs="?", const=10.0, default=None, metavar="SECONDS",
                        help="refresh every SECONDS (default 10) until Ctrl-C")
    status.add_argument("--json", action="store_true", help="print the status as JSON")

    best = with_config(sub.add_parser("best-params", help="the best trial's params"))
    best.add_argument("--format", choices=BEST_FORMATS, default="json",
                      help="json: as the best trial rendered them (constants included); allennlp-optuna: "
                           "name=value of the sampled params, as `allennlp best-params` printed them")

    trials = with_config(sub.add_parser("trials", help="the trials table, sorted"))
    trials.add_argument("--format", choices=FORMATS, default="text")
    trials.add_argument("--sort", choices=SORT_KEYS, default="value",
                        help="value: best first (default); number; duration: longest first")
    trials.add_argument("--state", action="append", default=[], metavar="STATE",
                        help=f"only trials in this state ({', '.join(STATES)}); repeatable")
    trials.add_argument("--limit", type=int, default=None, help="at most this many rows")

    with_config(sub.add_parser("track", help="log to MLflow what an MLflow outage left pending"))

    report = with_config(sub.add_parser("report", help="write the plots (PNG, HTML) and the summary of the study"))
    report.add_argument("--out", default=None, help="output directory (default: <results>/report)")
    return parser


@_command("render")
def _render(args: argparse.Namespace) -> int:
    from snakesweep.render import parse_override, render

    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as error:
        raise UserError(f"not valid JSON: {error.msg}", field="--params", fix="""pass e.g. '{"lr": 0.01}'""") from None
    if not isinstance(params, dict):
        raise UserError("must be a JSON object", field="--params", fix="""pass e.g. '{"lr": 0.01}'""")
    overrides = dict(parse_override(text) for text in args.override)
    config = render(args.jsonnet, params, style=args.style, overrides=overrides, strict=args.strict)
    print(json.dumps(config, indent=2))
    return 0


@_command("check")
def _check(args: argparse.Namespace) -> int:
    from snakesweep.check import check

    return check(args.configfile)


@_command("create-study")
def _create_study(args: argparse.Namespace) -> int:
    from snakesweep.config import load_config
    from snakesweep.study import create_study

    study = create_study(load_config(args.configfile))
    print(study.study_name)
    return 0


@_command("track")
def _track(args: argparse.Namespace) -> int:
    from snakesweep.config import load_config
    from snakesweep.tracking import catch_up

    left = catch_up(load_config(args.configfile))
    if left:
        raise UserError(f"MLflow did not answer; {len(left)} journals still wait to be logged",
                        file=str(left[0].parent), fix="bring MLflow back, then run snakesweep track again")
    print("MLflow tracking is up to date")
    return 0


@_command("worker")
def _worker(args: argparse.Namespace) -> int:
    from snakesweep.config import load_config
    from snakesweep.worker import run_worker

    run_worker(load_config(args.configfile), args.worker, threads=args.threads, summary_path=args.summary)
    return 0


@_command("status")
def _status(args: argparse.Namespace) -> int:
    from snakesweep.config import load_config
    from snakesweep.display import format_status, format_status_json, watch
    from snakesweep.view import status

    config = load_config(args.configfile)
    if args.watch is not None:
        return watch(config, args.watch, as_json=args.json)
    state = status(config)
    print(format_status_json(state) if args.json else format_status(state))
    return 0


@_command("best-params")
def _best_params(args: argparse.Namespace) -> int:
    from snakesweep.config import load_config
    from snakesweep.display import format_best_params
    from snakesweep.view import best_of

    print(format_best_params(*best_of(load_config(args.configfile)), args.format))
    return 0


@_command("trials")
def _trials(args: argparse.Namespace) -> int:
    from snakesweep.config import load_config
    from snakesweep.display import format_trials
    from snakesweep.view import sorted_trials

    unknown = [state for state in args.state if state.lower() not in STATES]
    if unknown:
        raise UserError(f"no trial state {unknown[0]!r}", field="--state", fix=f"use one of: {', '.join(STATES)}")
    frame = sorted_trials(load_config(args.configfile), args.sort, states=args.state, limit=args.limit)
    print(format_trials(frame, args.format))
    return 0


@_command("report")
def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from snakesweep.config import load_config
    from snakesweep.paths import Paths
    from snakesweep.report import write_report

    config = load_config(args.configfile)
    paths = Paths.of(config)
    out = Path(args.out) if args.out else paths.report_dir
    retrained = {seed: paths.retrain_metrics(seed) for seed in config["retrain"]["seeds"]}
    summary = write_report(config, out, test_metrics=paths.test_metrics, retrained=retrained)
    print(f"report of {summary['study']}: {out}/summary.html, plots in {out}/*.png, "
          f"interactive: {out}/html/index.html")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not as a traceback at the interpreter's exit
    except BrokenPipeError:
        # `snakesweep trials | head`: the reader is gone. End as other commands do, quietly, with SIGPIPE's status.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    setup_logging()
    warnings.formatwarning = lambda message, category, *_: f"snakesweep: warning: {message}\n"
    try:
        return _COMMANDS[args.command](args)
    except (UserError, KeyboardInterrupt, Interrupted) as error:
        line, code = one_line(error)
        if not isinstance(error, KeyboardInterrupt):
            print(f"snakesweep: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())

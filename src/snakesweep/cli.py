"""The `snakesweep` command: each subcommand is a thin call into the library."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence

from snakesweep.errors import Interrupted, UserError
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


@_command("worker")
def _worker(args: argparse.Namespace) -> int:
    from snakesweep.config import load_config
    from snakesweep.worker import run_worker

    run_worker(load_config(args.configfile), args.worker, threads=args.threads, summary_path=args.summary)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging()
    warnings.formatwarning = lambda message, category, *_: f"snakesweep: warning: {message}\n"
    try:
        return _COMMANDS[args.command](args)
    except UserError as error:
        print(f"snakesweep: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Interrupted as interrupted:
        print(f"snakesweep: stopped by {interrupted}; the running trial was queued again", file=sys.stderr)
        return 128 + interrupted.signum


if __name__ == "__main__":
    sys.exit(main())

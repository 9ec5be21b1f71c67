"""Command line: ``hatch-lambda requirements|build|inspect|verify|cache`` (also ``python -m hatch_lambda``).

Each command is a module of this package with ``add_parser`` and ``run``; a
:class:`~hatch_lambda.errors.LambdaBuildError` from any of them is printed here
and ends the command with exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from hatch_lambda.cli import build, cache, inspect, requirements, verify
from hatch_lambda.errors import LambdaBuildError

COMMANDS = (requirements, build, inspect, verify, cache)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hatch-lambda", description=__doc__.split("\n\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except LambdaBuildError as exc:
        print(f"hatch-lambda: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``hatch-lambda verify PATH``: smoke-import a built layer or fat zip under its runtime."""

from __future__ import annotations

import argparse
import json
import sys

from hatch_lambda.checks.artifacts import (
    FUNCTION_KIND,
    Artifact,
    artifact_command,
    find_artifacts,
    target_of,
)
from hatch_lambda.checks.importtime import profile_lines
from hatch_lambda.checks.smoke import RUNNERS, failure_error, smoke_import
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.runtime.target import Target


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = artifact_command(
        commands, "verify",
        help="import every top-level module of a layer or fat zip with the runtime's Python, as Lambda would",
        path_help="a layer or fat zip, or the output directory (with manifest.json)",
    )
    parser.add_argument("--skip", action="append", default=[], metavar="MODULE",
                        help="a top-level module not to import (it cannot be imported on its own)")
    parser.add_argument("--runner", choices=RUNNERS, default="auto",
                        help="host: this machine's pythonX.Y; docker: the Lambda image; "
                             "auto (default): host when its version and CPU match, else docker")
    parser.add_argument("--image", help="image for the docker runner (default: public.ecr.aws/lambda/python:{python})")
    parser.add_argument("--importtime", action="store_true",
                        help="also profile a cold start: import the modules in a fresh interpreter with "
                             "-X importtime and show the total and the 15 slowest imports")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """0: every module imported; 1: some failed, or the zip holds unsafe entries; 2: an error."""
    artifacts = [a for a in find_artifacts(args.path) if a.kind != FUNCTION_KIND]
    if not artifacts:
        raise LambdaBuildError(f"{args.path} holds no layer or fat zip",
                               "a function's slim zip needs its layer: verify layer.zip")
    by_target: dict[Target, list[Artifact]] = {}
    for artifact in artifacts:
        by_target.setdefault(target_of(artifact, args.python, args.arch), []).append(artifact)
    results = []
    for target, group in by_target.items():
        results += smoke_import(group, target, skip=tuple(args.skip), runner=args.runner, image=args.image,
                                log=lambda line: print(line, file=sys.stderr), importtime=args.importtime)
    error = failure_error(results)
    if args.json:
        print(json.dumps({"ok": error is None, "results": [r.as_dict() for r in results]}, indent=2))
    else:
        for result in results:
            print(f"{result.artifact}: {len(result.modules) - len(result.failures)} of {len(result.modules)} "
                  f"top-level modules imported with {result.interpreter}"
                  + (f" ({len(result.skipped)} skipped: {', '.join(result.skipped)})" if result.skipped else "")
                  + (f"; {len(result.unsafe)} unsafe entries not extracted" if result.unsafe else ""))
            if result.profile is not None:
                print("\n".join(profile_lines(result.profile)))
        if error is not None:
            print(f"hatch-lambda: {error}", file=sys.stderr)
    return 0 if error is None else 1

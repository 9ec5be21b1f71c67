"""``hatch-lambda cache``: where the cache is, what it holds, and pruning it to a size."""

from __future__ import annotations

import argparse
import re

from hatch_lambda.cache.store import KINDS, cache_dir, entries, prune_cache
from hatch_lambda.errors import LambdaBuildError

UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}


def parse_size(text: str) -> int:
    """``"2G"``, ``"500MB"``, ``"0"``: bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match[2].lower() not in UNITS:
        raise LambdaBuildError(f"--max-size {text!r} is not a size", "write it like 2G, 500M or 0")
    return int(float(match[1]) * UNITS[match[2].lower()])


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("cache", help="show or prune the download and build cache")
    actions = parser.add_subparsers(dest="cache_command", required=True)
    actions.add_parser("dir", help="print the cache directory")
    actions.add_parser("info", help="print the cache's size by kind of entry")
    prune = actions.add_parser("prune", help="remove least recently used entries until the cache fits a size")
    prune.add_argument("--max-size", default="2G", help="size to keep at most, e.g. 2G, 500M, 0 (default: 2G)")
    prune.add_argument("--older-than-days", type=float, metavar="DAYS",
                       help="also remove every entry unused for longer than this")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    cache = cache_dir()
    if args.cache_command == "dir":
        print(cache)
        return 0
    if args.cache_command == "info":
        found = entries(cache)
        for kind in KINDS:
            mine = [e for e in found if e.kind == kind]
            print(f"{kind:7} {len(mine):6} entries {sum(e.size for e in mine) / 2**20:10.1f} MiB")
        print(f"{'total':7} {len(found):6} entries {sum(e.size for e in found) / 2**20:10.1f} MiB  ({cache})")
        return 0
    result = prune_cache(cache, max_bytes=parse_size(args.max_size), older_than_days=args.older_than_days)
    print(f"removed {result.removed} entries ({result.freed / 2**20:.1f} MiB); "
          f"{result.kept} left ({result.size / 2**20:.1f} MiB) in {cache}")
    return 0

"""``hf-tsel metrics``: print the metric registry."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "metrics", help="list the transferability metrics and their metadata",
        description="List every registered transferability metric with its paper, what it consumes (features, a "
                    "source head's probabilities, the whole model set) and its parameters. Any name listed can be "
                    "passed to `--metrics`.")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--no-transforms", action="store_true", help="hide '<transform>+<metric>' combinations")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..metrics import list_metrics

    table = list_metrics(include_transforms=not args.no_transforms)
    print(json.dumps([m.as_dict() for m in table], indent=2) if args.json else table)
    return 0

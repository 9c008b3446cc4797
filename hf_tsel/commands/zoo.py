"""``hf-tsel zoo list|show NAME``: the bundled model zoos and their entries."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "zoo", help="list the bundled model zoos or show one",
        description="List the zoos that ship with hf-tsel (`list`), or show the models of a bundled zoo or of your "
                    "own zoo YAML (`show NAME_OR_YAML`): hub id, loader, revision, family, pre-training, pooling, "
                    "license. Any of them can be passed to `--zoo`.")
    actions = parser.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="names of the bundled zoos and their sizes")
    listing.add_argument("--json", action="store_true", help="print machine-readable JSON")
    show = actions.add_parser("show", help="the models of one zoo (bundled name or YAML path)")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..zoo import list_zoos, load_zoo  # here, not at the top: `hf-tsel --help` must not load torch

    if args.zoo_command == "list":
        zoos = {name: load_zoo(name) for name in list_zoos()}
        if args.json:
            print(json.dumps({name: [e.name for e in entries] for name, entries in zoos.items()}, indent=2))
            return 0
        table = Table(title="bundled zoos (`hf-tsel zoo show NAME` for details)")
        for column in ("zoo", "models", "families"):
            table.add_column(column)
        for name, entries in zoos.items():
            table.add_row(name, str(len(entries)), ", ".join(sorted({e.family for e in entries})))
        Console().print(table)
        return 0
    entries = load_zoo(args.name)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
        return 0
    table = Table(title=f"zoo {args.name}: {len(entries)} models")
    for column in ("name", "hub_id", "loader", "revision", "family", "pretraining", "pooling", "license"):
        table.add_column(column)
    for e in entries:
        table.add_row(e.name, e.hub_id, e.loader, e.revision, e.family, e.pretraining, e.pooling, e.license)
    Console().print(table)
    return 0

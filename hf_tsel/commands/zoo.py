"""``hf-tsel zoo list|show NAME|search``: the bundled model zoos, their entries, and zoos from a Hub search."""

from __future__ import annotations

import argparse
import json
import sys

from ._args import positive_int


def count_type(text: str) -> int:
    """``--max-params 30M``: a count with an optional k/M/B suffix."""
    from ..hub_zoo import parse_count

    try:
        return parse_count(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_search(actions: argparse._SubParsersAction) -> None:
    from ..defaults import HUB_SORTS  # not hub_zoo: `hf-tsel --help` must not load torch

    search = actions.add_parser(
        "search", help="build a zoo from a Hub search (pinned entries; skipped repos with reasons)",
        description="List the Hub's models with these filters and write the first --limit usable ones as a zoo YAML, "
                    "each pinned to its current commit, with params (safetensors metadata), licence, family and "
                    "published ImageNet top-1 where the Hub has them. The same query works as --zoo "
                    "\"hub:library=timm&max-params=30M&limit=50\" (docs/zoos.md).")
    search.add_argument("search", nargs="?", help="text in the repo id (e.g. resnet)")
    search.add_argument("--library", default="timm", help="comma list of timm, transformers (default timm)")
    search.add_argument("--pipeline-tag", help="Hub pipeline tag, e.g. image-classification or image-feature-extraction")
    search.add_argument("--tags", help="comma list of tags every model must have (e.g. dino)")
    search.add_argument("--author", help="user or organisation that owns the repos")
    search.add_argument("--license", help="comma list of accepted licences (default: any)")
    search.add_argument("--max-params", type=count_type, metavar="N", help="at most N parameters (30M, 1.5B)")
    search.add_argument("--min-downloads", type=count_type, metavar="N", help="at least N downloads (last 30 days)")
    search.add_argument("--sort", choices=HUB_SORTS, default="downloads", help="Hub sort key, descending (default downloads)")
    search.add_argument("--limit", type=positive_int, default=50, metavar="K", help="models in the zoo (default 50)")
    search.add_argument("--output", "-o", metavar="ZOO.yaml", help="write the zoo here (default: only print it)")
    search.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    search.add_argument("--json", action="store_true", help="print machine-readable JSON")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "zoo", help="list the bundled model zoos or show one",
        description="List the zoos that ship with hf-tsel (`list`), or show the models of a bundled zoo or of your "
                    "own zoo YAML (`show NAME_OR_YAML`): hub id, loader, revision, family, pre-training, pooling, "
                    "license. Any of them can be passed to `--zoo`.")
    actions = parser.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="names of the bundled zoos and their sizes")
    listing.add_argument("--json", action="store_true", help="print machine-readable JSON")
    show = actions.add_parser("show", help="the models of one zoo (bundled name, YAML path or \"hub:QUERY\")")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print machine-readable JSON")
    _add_search(actions)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..hub_zoo import load_zoo_or_search
    from ..zoo import list_zoos, load_zoo  # here, not at the top: `hf-tsel --help` must not load torch

    if args.zoo_command == "search":
        return _search(args)
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
    entries = load_zoo_or_search(args.name)
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


def _search(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..errors import EXIT_USER_ERROR
    from ..hub_zoo import HubQuery, search_hub, write_zoo
    from ._args import check_output_file

    if args.output:
        check_output_file(args.output, "--output", overwrite=args.overwrite)
    query = HubQuery.build(search=args.search, library=args.library, pipeline_tag=args.pipeline_tag, tags=args.tags,
                           author=args.author, license=args.license, max_params=args.max_params,
                           min_downloads=args.min_downloads, sort=args.sort, limit=args.limit)
    found = search_hub(query)
    if args.json:
        print(json.dumps({"query": str(found.query), "models": [e.to_dict() for e in found.entries],
                          "skipped": found.skipped, "filtered": found.filtered, "scanned": found.scanned}, indent=2))
    else:
        table = Table(title=escape(found.summary()))
        for column in ("name", "hub_id", "revision", "params", "family", "pretraining", "license", "top-1"):
            table.add_column(column)
        for e in found.entries:
            params, top1 = e.metadata.get("params"), e.metadata.get("imagenet_top1")
            table.add_row(escape(e.name), escape(e.hub_id), e.revision[:12], "?" if params is None else f"{params:,}",
                          e.family, e.pretraining, e.license, "" if top1 is None else f"{top1:g}")
        Console().print(table)
        for skipped in found.skipped:
            print(f"  skipped {skipped['model']}: {skipped['reason']}")
    if args.output:
        print(f"wrote {write_zoo(found, args.output)} ({len(found.entries)} models, {len(found.skipped)} skipped "
              f"listed under gaps); rank it with: hf-tsel rank DATASET --zoo {args.output} --budget 30m")
    if not found.entries:
        print("error: no model passed the filters; widen the search (another library, a larger --max-params, fewer "
              "--tags or licences)", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0

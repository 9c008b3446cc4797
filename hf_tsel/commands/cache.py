"""``hf-tsel cache list|clear``: inspect or empty the feature cache."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cache", help="list or clear cached features",
        description="List the feature cache's entries (one per model and dataset sample), or delete all or some of "
                    "them. Only folders this tool wrote are deleted; anything else in the folder is listed as kept.")
    parser.add_argument("--cache-dir", help="feature cache folder (default $HF_TSEL_HOME/features)")
    actions = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="one line per cached (model, dataset sample)")
    listing.add_argument("--json", action="store_true", help="print machine-readable JSON")
    clear = actions.add_parser("clear", help="delete cached features (all, or of one model / dataset)")
    clear.add_argument("--model", action="append", dest="models", metavar="ID",
                       help="only entries of this model (zoo name or hub id); repeatable")
    clear.add_argument("--dataset", help="only entries of this dataset")
    for action in (listing, clear):  # also accepted after the action; SUPPRESS keeps a value given before it
        action.add_argument("--cache-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..features import FeatureCache

    cache = FeatureCache(args.cache_dir)
    if args.cache_command == "clear":
        removed = sum(cache.clear(model=model, dataset=args.dataset) for model in args.models or [None])
        print(f"removed {removed} cache entr{'y' if removed == 1 else 'ies'} from {cache.root}")
        kept = cache.foreign_items()
        if kept:
            print(f"kept {len(kept)} item(s) that are not hf-tsel cache entries: "
                  + ", ".join(p.name for p in kept[:20]) + (", ..." if len(kept) > 20 else ""))
        return 0
    entries = cache.entries()
    if args.json:
        print(json.dumps(entries, indent=2, default=str))
        return 0
    table = Table(title=f"{len(entries)} cached feature sets in {cache.root} (--json for revisions and keys)")
    table.add_column("model", no_wrap=True)
    table.add_column("dataset", no_wrap=True)
    for column in ("split", "samples", "dim", "logits", "MB"):
        table.add_column(column, justify="right")
    for e in entries:
        table.add_row(str(e.get("model")), str(e.get("dataset")), str(e.get("split")), str(e.get("num_samples")),
                      str(e.get("feature_dim")), "yes" if e.get("has_source_logits") else "no",
                      f"{e.get('bytes', 0) / 1e6:.1f}")
    Console().print(table)
    partial = cache.partial_entries()
    if partial:
        print(f"{len(partial)} unfinished extraction(s) with checkpointed chunks (resumed by the next run): "
              + ", ".join(k[:10] for k in partial))
    return 0

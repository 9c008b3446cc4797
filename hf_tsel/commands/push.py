"""``hf-tsel push``: merge a results file into a Hub dataset repo."""

from __future__ import annotations

import argparse

from ..hub_access import is_hub_repo_id
from ._args import positive_int


def repo_id_type(value: str) -> str:
    """argparse type of ``--repo ORG/NAME`` options."""
    if not is_hub_repo_id(value):
        raise argparse.ArgumentTypeError(f"expected ORG/NAME, got {value!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push", help="publish a results file to a Hub dataset repo (merged with what is there)",
        description="Merge the records of RESULTS (a file written by `hf-tsel rank --output` or `hf-tsel demo "
                    "--output`) into the Hub dataset repo ORG/NAME, creating it if needed, and regenerate its "
                    "dataset card. Pushing the same records again changes nothing; a newer run of the same "
                    "(dataset, config, split, model, revision, metric) replaces the older record. Uses HF_TOKEN "
                    "or the token saved by `hf auth login`.")
    parser.add_argument("results", metavar="RESULTS", help="results file (.csv, .json or .parquet)")
    parser.add_argument("--repo", required=True, type=repo_id_type, metavar="ORG/NAME",
                        help="Hub dataset repo to publish to")
    parser.add_argument("--private", action="store_true", help="create the repo as private if it does not exist")
    parser.add_argument("--message", help="commit message (default: a summary of the push)")
    parser.add_argument("--max-attempts", type=positive_int, default=5,
                        help="merge-and-commit attempts when others push at the same time (default: 5)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..publish import push_results

    if args.max_attempts < 1:
        raise UserError("--max-attempts must be at least 1")
    report = push_results(args.results, args.repo, private=args.private or None, commit_message=args.message,
                          max_attempts=args.max_attempts)
    print(report)
    return 0

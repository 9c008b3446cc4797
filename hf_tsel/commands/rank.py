"""``hf-tsel rank``: rank a zoo of backbones by transferability to a dataset."""

from __future__ import annotations

import argparse
import time

from ._funnel import print_funnel
from ._options import add_budget_option, add_data_options, add_model_options, command_line, extraction_arguments
from ._ranking_output import add_run_options, check_outputs, exit_code, plain_warnings, print_leaderboard, write_outputs
from ._race import add_race_options, check_race_request, run_race
from .push import repo_id_type


_SAMPLE_OPTIONS = ("split", "config", "revision", "image_column", "label_column", "samples_per_class", "max_samples")


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..defaults import DEFAULT_METRICS

    parser = subparsers.add_parser("rank", help="rank backbones by transferability to a dataset",
                                   description="Extract frozen features of every model (cached), score them with "
                                               "transferability metrics and print a leaderboard.")
    add_data_options(parser)
    add_model_options(parser)
    add_run_options(parser, default_metrics_help=f"default: {','.join(DEFAULT_METRICS)}")
    parser.add_argument("--from-cache", action="store_true",
                        help="score only features already in the cache (e.g. written by `hf-tsel extract --shard` "
                             "on several machines); load no model, and fail naming the models that have none")
    parser.add_argument("--push-to", metavar="ORG/NAME", type=repo_id_type,
                        help="after saving the results locally, merge them into this Hub dataset repo "
                             "(as `hf-tsel push`)")
    add_race_options(parser)
    add_budget_option(parser)  # also the funnel's bound (registered once)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..extraction import MissingFeaturesError
    from ..ranking import rank

    started = time.perf_counter()
    options = extraction_arguments(args)
    check_outputs(args.output, overwrite=args.overwrite)
    check_race_request(args, args.split)
    plain_warnings()
    try:
        df = rank(args.dataset, metrics=args.metrics, use_cache=not args.no_cache, from_cache=args.from_cache,
                  n_boot=args.n_boot, goal=args.goal, budget=args.budget, race=args.confirm is not None, **options)
    except MissingFeaturesError as exc:
        raise MissingFeaturesError(exc.missing, exc.cache_root,
                                   f"extract them first with: {command_line(args, 'extract', exc.missing)}") from None
    if "run" not in df.attrs:  # a non-main process of `accelerate launch`
        return 0
    df = run_race(args, df, args.dataset, started, **{k: options[k] for k in _SAMPLE_OPTIONS})
    print_leaderboard(df, show_metrics=args.show_metrics or bool(args.metrics))
    print_funnel(df.attrs["run"].get("funnel"))
    write_outputs(df, args.output)
    if args.push_to:
        from ..publish import push_results

        print(push_results(df, args.push_to, run_metadata=df.attrs["run"],
                           local_path=args.output[0] if args.output else None))
    return exit_code(df)

"""``hf-tsel extract``: fill the feature cache for a zoo (or a share of it) without scoring."""

from __future__ import annotations

import argparse
import sys

from ._args import check_epoch_budget
from ._funnel import print_funnel
from ._options import (add_budget_option, add_data_options, add_extraction_options, add_model_options, command_line,
                       extraction_arguments)


def shard_type(text: str) -> tuple[int, int]:
    """``--shard i/n`` (1-based) or ``auto`` (from Slurm array / torchrun variables), checked when parsed."""
    import os

    from ..errors import UserError
    from ..features.scheduling import parse_shard, shard_from_scheduler

    try:
        return shard_from_scheduler(os.environ) if text.strip().lower() == "auto" else parse_shard(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _work_alone_on_launch_share(shard: tuple) -> None:
    """Under torchrun with ``--shard auto`` every process extracts its own share: leave the process group."""
    import os

    import torch

    from ..features.scheduling import detach_from_launch

    if getattr(shard, "launcher", None) != "torchrun" or shard[1] == 1:
        return
    local_rank = detach_from_launch(os.environ)
    if local_rank is not None and torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())  # this process's GPU of the node


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract", help="extract features of a zoo into the cache, without scoring",
        description="Sample the dataset and write every model's frozen features to the feature cache (models "
                    "already cached are skipped). With --shard i/n several machines each extract a share of the "
                    "zoo into one cache folder on shared storage; `hf-tsel rank --from-cache` then scores them all.")
    add_data_options(parser)
    add_model_options(parser)
    add_extraction_options(parser)
    parser.add_argument("--shard", type=shard_type, metavar="I/N|auto",
                        help="extract only the I-th of N shares of the zoo (1-based: 1/2 and 2/2 cover a zoo; "
                             "share I holds the models at zoo positions I, I+N, I+2N, ...). auto: I and N from a "
                             "Slurm job array (SLURM_ARRAY_TASK_ID/_MIN/_COUNT) or else from a torchrun / accelerate "
                             "launch (RANK+1 of WORLD_SIZE; each process then extracts its share on its own)")
    add_budget_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import EXIT_PARTIAL_FAILURE, EXIT_USER_ERROR
    from ..extraction import extract

    check_epoch_budget(args.budget, race=False)
    if args.shard:
        _work_alone_on_launch_share(args.shard)
    shard = args.shard and tuple(args.shard[:2])
    funnel = None
    if args.budget is not None and args.budget.is_time:  # the funnel: cheapest first, within the time (per share)
        from ..funnel_extract import budgeted_extract

        result, funnel = budgeted_extract(args.dataset, budget=args.budget, shard=shard, **extraction_arguments(args))
    else:
        result = extract(args.dataset, shard=shard, **extraction_arguments(args))
    if not result.is_main_process:
        return 0
    for name, outcome in result.items():
        if outcome.status == "left_out":
            continue  # listed by the funnel's report below
        if outcome.features is None:
            print(f"{name}: failed: {outcome.error}")
        else:
            features = outcome.features.features
            print(f"{name}: {outcome.status}, {features.shape[0]} samples x {features.shape[1]} features")
    done, tried = len(result.features), sum(o.status != "left_out" for o in result.values())
    print(f"{done} of {len(result)} model(s) have features in {result.cache_dir}")
    print_funnel(funnel and funnel.report(args.budget))
    if result.cache_error:
        print(f"warning: the cache could not be written ({result.cache_error})", file=sys.stderr)
    if done:
        when = f"once all {args.shard[1]} shares are extracted, " if args.shard else ""
        print(f"{when}score them with: {command_line(args, 'rank', args.models)} --from-cache")
    return 0 if tried and done == tried else EXIT_PARTIAL_FAILURE if done else EXIT_USER_ERROR

"""``hf-tsel rank``: rank a zoo of backbones by transferability to a dataset."""

from __future__ import annotations

import argparse

from ._args import positive_int
from ._ranking_output import add_run_options, check_outputs, exit_code, plain_warnings, print_leaderboard, write_outputs
from .push import repo_id_type


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..defaults import DEFAULT_METRICS, DEFAULT_ZOO

    parser = subparsers.add_parser("rank", help="rank backbones by transferability to a dataset",
                                   description="Extract frozen features of every model (cached), score them with "
                                               "transferability metrics and print a leaderboard.")
    parser.add_argument("dataset", help="Hub dataset id (org/name), a local imagefolder / parquet folder, or a "
                                        "folder written by Dataset.save_to_disk")
    data = parser.add_argument_group("data")
    data.add_argument("--config", help="dataset configuration (subset) name")
    data.add_argument("--split", default="train", help="split to sample (default train)")
    data.add_argument("--revision", help="dataset revision (branch, tag or commit) on the Hub")
    data.add_argument("--image-column", help="image column (default: the first Image column)")
    data.add_argument("--label-column", help="label column (default: the first ClassLabel, else 'label'-like column)")
    data.add_argument("--samples-per-class", type=positive_int, help="stratified sample: at most K images per class")
    data.add_argument("--max-samples", type=positive_int, help="stratified sample: at most N images in total")
    models = parser.add_argument_group("models")
    models.add_argument("--zoo", help=f"bundled zoo name or zoo YAML path (default {DEFAULT_ZOO}; see `hf-tsel zoo list`)")
    models.add_argument("--model", action="append", dest="models", metavar="ID",
                        help="rank this model (Hub id, timm name, local folder, or a name in --zoo); repeatable")
    models.add_argument("--loader", choices=["timm", "transformers", "checkpoint", "onnx"],
                        help="loader for --model ids (default: guessed)")
    models.add_argument("--allow-pickle", action="store_true",
                        help="allow pickle checkpoints (loaded with torch.load(weights_only=True))")
    models.add_argument("--trust-remote-code", action="store_true", help="allow models whose code lives in their repo")
    add_run_options(parser, default_metrics_help=f"default: {','.join(DEFAULT_METRICS)}")
    parser.add_argument("--push-to", metavar="ORG/NAME", type=repo_id_type,
                        help="after saving the results locally, merge them into this Hub dataset repo "
                             "(as `hf-tsel push`)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..ranking import rank

    check_outputs(args.output, overwrite=args.overwrite)
    plain_warnings()
    df = rank(args.dataset, zoo=args.zoo, models=args.models, metrics=args.metrics, split=args.split,
              config=args.config, revision=args.revision, image_column=args.image_column,
              label_column=args.label_column, samples_per_class=args.samples_per_class, max_samples=args.max_samples,
              seed=args.seed, batch_size=args.batch_size, num_workers=args.num_workers, device=args.device,
              precision=args.precision, cache_dir=args.cache_dir, use_cache=not args.no_cache,
              allow_pickle=args.allow_pickle, trust_remote_code=args.trust_remote_code, loader=args.loader,
              progress=not args.quiet, n_boot=args.n_boot)
    if "run" not in df.attrs:  # a non-main process of `accelerate launch`
        return 0
    print_leaderboard(df, show_metrics=args.show_metrics or bool(args.metrics))
    write_outputs(df, args.output)
    if args.push_to:
        from ..publish import push_results

        print(push_results(df, args.push_to, run_metadata=df.attrs["run"],
                           local_path=args.output[0] if args.output else None))
    return exit_code(df)

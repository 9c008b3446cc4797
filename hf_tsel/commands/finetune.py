"""``hf-tsel finetune``: measure ground-truth accuracies of a zoo on a dataset."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from ._args import check_output_file, non_negative_float, positive_float, positive_int, seed_int
from ._options import add_compute_options


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..defaults import DEFAULT_ZOO

    parser = subparsers.add_parser(
        "finetune", help="ground-truth accuracy of every model (linear probe or full fine-tuning)",
        description="Train every model of a zoo on the train split and measure test accuracy: a linear probe on "
                    "cached frozen features, or full fine-tuning over the papers' hyper-parameter grid (resumable). "
                    "Accuracies go to a ground-truth table (and optionally into a results file).")
    parser.add_argument("dataset", help="Hub dataset id, local dataset folder (same forms as `hf-tsel rank`)")
    parser.add_argument("--zoo", help=f"bundled zoo name or zoo YAML path (default {DEFAULT_ZOO}; see `hf-tsel zoo list`)")
    parser.add_argument("--model", action="append", dest="models", metavar="ID", help="model to train (repeatable)")
    parser.add_argument("--protocol", choices=["linear-probe", "full"], default="linear-probe",
                        help="linear-probe (default): logistic regression on frozen features; full: fine-tune "
                             "backbone + new head over --grid")
    data = parser.add_argument_group("data")
    data.add_argument("--config", help="dataset configuration name")
    data.add_argument("--revision", help="dataset revision on the Hub")
    data.add_argument("--split", default="train", help="training split (default train)")
    data.add_argument("--test-split", default="test", help="evaluation split (default test)")
    data.add_argument("--image-column", help="image column (default: auto-detected)")
    data.add_argument("--label-column", help="label column (default: auto-detected)")
    data.add_argument("--samples-per-class", type=positive_int, metavar="K",
                      help="train on at most K images per class (default: every image)")
    data.add_argument("--test-samples-per-class", type=positive_int, metavar="K",
                      help="evaluate on at most K images per class (default: every image)")
    data.add_argument("--seed", type=seed_int, default=0, help="sampling seed (default 0)")
    full = parser.add_argument_group("full fine-tuning")
    full.add_argument("--grid", choices=["sgd", "adamw"], default="sgd",
                      help="sgd: lr {1e-1..1e-4} x wd {0,1e-6..1e-3} (LEAD/PED/SFDA); adamw: lr {1e-5,2e-5,5e-5} x "
                           "wd {1e-2,1e-4} (ITM)")
    full.add_argument("--lr", type=positive_float, nargs="+", help="override the grid's learning rates")
    full.add_argument("--weight-decay", type=non_negative_float, nargs="+", help="override the grid's weight decays")
    full.add_argument("--epochs", type=positive_int, default=10, help="epochs per grid point (default 10)")
    full.add_argument("--seeds", type=seed_int, nargs="+", default=[0], help="training seeds averaged per grid point")
    full.add_argument("--no-augment", action="store_true", help="no random flip/translation while training")
    full.add_argument("--train-layers", choices=["all", "last"], default="all",
                      help="all (default) or only the backbone's last stage (plus the head)")
    full.add_argument("--selection", choices=["best-epoch", "last-epoch"], default="best-epoch",
                      help="accuracy of a grid point: best test accuracy over epochs (ITM) or the last epoch's")
    full.add_argument("--max-steps-per-epoch", type=positive_int, help="cap the steps of an epoch (quick runs)")
    full.add_argument("--work-dir", default="finetune-runs",
                      help="checkpoints and per-grid-point results (default ./finetune-runs); re-runs resume here")
    compute = parser.add_argument_group("compute")
    add_compute_options(compute, batch_size=32, batch_help="images per step per process (training and the linear "
                                                            "probe's feature extraction)")
    parser.add_argument("--output", default="ground_truth.csv",
                        help="GT table csv: its rows of the models trained here are updated, the others kept "
                             "(default ground_truth.csv)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the --output table instead of updating it")
    parser.add_argument("--attach-to", metavar="RESULTS",
                        help="also write the accuracies into this results file (ground_truth_accuracy column)")
    parser.add_argument("--cache-dir", help="feature cache folder (default $HF_TSEL_HOME/features)")
    parser.add_argument("--allow-pickle", action="store_true", help="allow pickle checkpoints (weights_only=True)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output (per-epoch and extraction lines)")
    parser.set_defaults(func=run)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "dataset"


def _sampling(args: argparse.Namespace, split: str, per_class: int | None) -> dict:
    return dict(split=split, config=args.config, revision=args.revision, image_column=args.image_column,
                label_column=args.label_column, samples_per_class=per_class, seed=args.seed)


def _linear_probe_rows(args: argparse.Namespace, zoo: str | Path) -> list[dict]:
    from ..groundtruth.features import zoo_features
    from ..groundtruth.linear_probe import linear_probe

    from ._progress import ConsoleProgress

    common = dict(cache_dir=args.cache_dir, device=args.device, allow_pickle=args.allow_pickle,
                  batch_size=args.batch_size, num_workers=args.num_workers, precision=args.precision,
                  on_event=None if args.quiet else ConsoleProgress())
    train = zoo_features(args.dataset, zoo, **_sampling(args, args.split, args.samples_per_class), **common)
    test = zoo_features(args.dataset, zoo, **_sampling(args, args.test_split, args.test_samples_per_class), **common)
    rows = []
    for model, features in train.features.items():
        if model not in test.features:
            continue
        result = linear_probe(features.features, train.data.labels[features.positions], test.features[model].features,
                              test.data.labels[test.features[model].positions], seed=args.seed)
        print(f"{model}: linear-probe accuracy {result.accuracy:.4f} (C={result.c:g})")
        rows.append({"dataset": train.data.name, "model": model, "protocol": "linear-probe",
                     "accuracy": result.accuracy, "num_train": result.num_train, "num_test": result.num_test,
                     "hyperparameters": f"C={result.c:g}"})
    for model, why in {**train.failures, **test.failures}.items():
        print(f"{model}: skipped ({why})")
    return rows


def _full_rows(args: argparse.Namespace, entries: list, test: Any) -> list[dict]:
    """Fine-tune each entry on the train split and evaluate on ``test`` (the test split, already loaded)."""
    from ..data import load_image_dataset
    from ..errors import UserError
    from ..features import make_accelerator
    from ..groundtruth.finetune import GRIDS, FinetuneConfig, Grid, finetune
    from ..groundtruth.trainable import PreprocessedImages, trainable_backbone

    base = GRIDS[args.grid]
    grid = Grid(base.optimizer, tuple(args.lr or base.learning_rates), tuple(args.weight_decay or base.weight_decays))
    config = FinetuneConfig(grid=grid, epochs=args.epochs, batch_size=args.batch_size, seeds=tuple(args.seeds),
                            augment=not args.no_augment, train_layers=args.train_layers, selection=args.selection,
                            max_steps_per_epoch=args.max_steps_per_epoch)
    train = load_image_dataset(args.dataset, **_sampling(args, args.split, args.samples_per_class))
    accelerator = make_accelerator(args.device, args.precision)
    rows = []
    for entry in entries:
        try:
            trainable = trainable_backbone(entry, allow_pickle=args.allow_pickle)
        except UserError as exc:
            print(f"{entry.name}: skipped ({exc})")
            continue
        run_dir = Path(args.work_dir) / _slug(train.name) / _slug(entry.name) / args.grid

        def report(event: dict, name: str = entry.name) -> None:
            if accelerator.is_main_process and not args.quiet:
                accuracy = "not evaluated" if event["accuracy"] is None else f"test accuracy {event['accuracy']:.4f}"
                print(f"{name}: lr={event['lr']:g} wd={event['weight_decay']:g} seed={event['seed']} "
                      f"epoch {event['epoch']}/{config.epochs}: {accuracy}")

        result = finetune(trainable.build, trainable.feature_dim, train.num_classes,
                          PreprocessedImages(train, trainable.preprocessor), PreprocessedImages(test, trainable.preprocessor),
                          config, run_dir, accelerator=accelerator, on_epoch_end=report, num_workers=args.num_workers)
        if accelerator.is_main_process:
            print(f"{entry.name}: fine-tuned accuracy {result.accuracy:.4f} ({result.hyperparameters})")
        rows.append({"dataset": train.name, "model": entry.name, "protocol": "full", "accuracy": result.accuracy,
                     "num_train": train.num_samples, "num_test": test.num_samples,
                     "hyperparameters": f"{args.grid}:{result.hyperparameters}", "seconds": result.seconds})
    if not accelerator.is_main_process:
        return []
    return rows


def _check_before_work(args: argparse.Namespace) -> Any:
    """What would fail after the training, checked first: the --output table (written to, or updated: it must be a
    ground-truth table), the --attach-to results file, and the test split; returns the test split's sample."""
    from ..data import load_image_dataset
    from ..errors import MissingSplitError
    from ..groundtruth.table import read_ground_truth
    from ..results import read_results

    check_output_file(args.output, "--output")
    if Path(args.output).is_file() and not args.overwrite:
        read_ground_truth(args.output, seeds=True)  # its rows are kept: a file of another kind is refused now
    if args.attach_to:
        read_results(args.attach_to)
    try:
        return load_image_dataset(args.dataset, **_sampling(args, args.test_split, args.test_samples_per_class))
    except MissingSplitError as exc:
        raise MissingSplitError(exc.dataset, exc.split, exc.available, option="--test-split") from None


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..errors import UserError
    from ..groundtruth.table import attach_ground_truth, upsert_ground_truth
    from ..defaults import DEFAULT_ZOO
    from ..extraction import resolve_models

    if args.protocol == "linear-probe" and args.models:
        raise UserError("--model works with --protocol full; for the linear probe pass a --zoo (name or YAML)")
    test = _check_before_work(args)
    if args.protocol == "linear-probe":  # extracts the test split's features itself (cached, from the dataset id)
        rows = _linear_probe_rows(args, args.zoo or DEFAULT_ZOO)
    else:
        rows = _full_rows(args, resolve_models(args.zoo, args.models), test)
    if not rows:
        return 0 if args.protocol == "full" else 1
    if args.overwrite:
        Path(args.output).unlink(missing_ok=True)
    table = upsert_ground_truth(args.output, pd.DataFrame(rows))
    print(f"wrote {len(rows)} accuracies to {args.output} ({len(table)} rows in total)")
    if args.attach_to:
        from ..results import read_results, write_results

        results, run_metadata = read_results(args.attach_to)
        write_results(attach_ground_truth(results, table, rows[0]["protocol"]), args.attach_to, run_metadata)
        print(f"attached ground truth to {args.attach_to}")
    return 0

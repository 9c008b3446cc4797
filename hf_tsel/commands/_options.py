"""Options shared by the commands that sample a dataset and extract features (``extract``, ``rank``, ``demo``)."""

from __future__ import annotations

import argparse
import shlex
from typing import Any, Sequence

from ._args import non_negative_int, positive_int, seed_int

# (flag, argparse keyword arguments) of the options that decide which samples are read: one table
# both registers them and rebuilds a command line with the same sample.
_DATA_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("--config", {"help": "dataset configuration (subset) name"}),
    ("--split", {"default": "train", "help": "split to sample (default train)"}),
    ("--revision", {"help": "dataset revision (branch, tag or commit) on the Hub"}),
    ("--image-column", {"help": "image column (default: the first Image column)"}),
    ("--label-column", {"help": "label column (default: the first ClassLabel, else 'label'-like column)"}),
    ("--samples-per-class", {"type": positive_int, "metavar": "K",
                             "help": "stratified sample: at most K images per class (default: every image)"}),
    ("--max-samples", {"type": positive_int, "metavar": "N",
                       "help": "stratified sample: at most N images in total (default: no limit)"}),
]
_MODEL_FLAGS = ("--loader", "--allow-pickle", "--trust-remote-code")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The dataset argument and the options that choose its sample."""
    parser.add_argument("dataset", help="Hub dataset id (org/name), a local imagefolder / parquet folder, or a "
                                        "folder written by Dataset.save_to_disk")
    group = parser.add_argument_group("data")
    for flag, options in _DATA_OPTIONS:
        group.add_argument(flag, **options)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Which models (a zoo or named models) and how they may be loaded."""
    from ..defaults import DEFAULT_ZOO

    group = parser.add_argument_group("models")
    group.add_argument("--zoo", help=f"bundled zoo name or zoo YAML path (default {DEFAULT_ZOO}; see `hf-tsel zoo list`)")
    group.add_argument("--model", action="append", dest="models", metavar="ID",
                       help="this model (Hub id, timm name, local folder, or a name in --zoo); repeatable")
    group.add_argument("--loader", choices=["timm", "transformers", "checkpoint", "onnx"],
                       help="loader for --model ids (default: guessed)")
    group.add_argument("--allow-pickle", action="store_true",
                       help="allow pickle checkpoints (loaded with torch.load(weights_only=True))")
    group.add_argument("--trust-remote-code", action="store_true", help="allow models whose code lives in their repo")


def parallel_type(text: str) -> str:
    from ..extraction import PARALLEL_MODES

    if text not in PARALLEL_MODES:
        raise argparse.ArgumentTypeError(f"invalid choice {text!r}; choose one of {', '.join(PARALLEL_MODES)}")
    return text


def add_compute_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, batch_size: int = 64,
                        batch_help: str = "images per forward pass (halved on CUDA out-of-memory)") -> None:
    """``--batch-size``, ``--num-workers``, ``--device``, ``--precision``: the same names, types and choices in every
    command that runs models."""
    from ..defaults import PRECISIONS

    parser.add_argument("--batch-size", type=positive_int, default=batch_size, metavar="B",
                        help=f"{batch_help} (default {batch_size})")
    parser.add_argument("--num-workers", type=non_negative_int, default=0, metavar="W",
                        help="DataLoader worker processes for decoding and preprocessing (default 0)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: CUDA when available, else CPU")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="autocast precision; auto = bf16 (or fp16) on CUDA, fp32 on CPU; fp16 needs CUDA "
                             "(default auto)")


def add_budget_option(parser: argparse.ArgumentParser) -> None:
    """``--budget``, one meaning everywhere (:mod:`hf_tsel.budget`); registered once even if two features ask."""
    from ._args import budget

    if "--budget" in parser._option_string_actions:  # the funnel and the race both bound by it
        return
    parser.add_argument("--budget", type=budget, metavar="TIME|Nep",
                        help="a wall-clock duration (90s, 30m, 2h) bounds the whole run, a --confirm race "
                             "included; an epoch count (6ep) bounds only a --confirm race and is refused without "
                             "one (default: no bound)")


def add_extraction_options(parser: argparse.ArgumentParser, *,
                           seed_help: str = "seed of the sampling (default 0)") -> None:
    """Seed, batching, device, cache folder, multi-process mode and progress output."""
    parser.add_argument("--seed", type=seed_int, default=0, help=seed_help)
    add_compute_options(parser)
    parser.add_argument("--cache-dir", help="feature cache folder (default $HF_TSEL_HOME/features)")
    parser.add_argument("--parallel", type=parallel_type, default="auto", metavar="{auto,zoo,images}",
                        help="under a multi-process launch (accelerate launch, torchrun): whole models per "
                             "process (zoo) or each model's images split across processes (images); auto = zoo "
                             "when the zoo has more models than there are processes")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")


def extraction_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`hf_tsel.extract` (and :func:`hf_tsel.rank`) from parsed options."""
    from ._progress import ConsoleProgress

    values = {_dest(flag): getattr(args, _dest(flag)) for flag, _ in _DATA_OPTIONS}
    for name in ("seed", "batch_size", "num_workers", "device", "precision", "cache_dir", "parallel"):
        values[name] = getattr(args, name)
    for name in ("zoo", "models", "loader", "allow_pickle", "trust_remote_code"):
        if hasattr(args, name):
            values[name] = getattr(args, name)
    values["on_event"] = None if args.quiet else ConsoleProgress()
    if args.quiet:
        _silence_library_progress_bars()
    return values


def _silence_library_progress_bars() -> None:
    """``--quiet`` also stops the bars that datasets (preparing a dataset) and huggingface_hub (downloads) draw."""
    import datasets
    from huggingface_hub.utils import disable_progress_bars

    datasets.disable_progress_bars()
    disable_progress_bars()


def command_line(args: argparse.Namespace, command: str, models: Sequence[str] | None) -> str:
    """An ``hf-tsel COMMAND`` line for ``models`` (default: the zoo) on the same sample and cache as ``args``."""
    words = ["hf-tsel", command, args.dataset]
    for flag, options in _DATA_OPTIONS:
        value = getattr(args, _dest(flag))
        if value is not None and value != options.get("default"):
            words += [flag, str(value)]
    if args.seed:
        words += ["--seed", str(args.seed)]
    if args.zoo:
        words += ["--zoo", args.zoo]
    for model in models or []:
        words += ["--model", model]
    for flag in _MODEL_FLAGS:
        value = getattr(args, _dest(flag), None)
        if value:
            words += [flag] if value is True else [flag, str(value)]
    if args.cache_dir:
        words += ["--cache-dir", args.cache_dir]
    return shlex.join(words)

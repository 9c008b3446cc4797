"""``hf-tsel benchmark``: reproduce the seed papers' tables, or run the offline or the zoo ranking benchmark."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from ._args import add_renamed_option, positive_int, seed_int
from ._options import add_compute_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("benchmark", help="compare rankings with published or measured ground truth")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND")

    paper = kinds.add_parser(
        "paper", help="score a paper zoo on a paper dataset; our weighted tau next to the published one",
        description="Ranks the zoo on one target dataset of the seed papers (LEAD: supervised-cnn, ITM: foundation), "
                    "takes the published fine-tuning accuracies as ground truth and prints, for every method, our "
                    "weighted Kendall tau next to the paper's. Needs the Hub (and preferably a GPU).")
    paper.add_argument("--zoo", required=True, help="supervised-cnn, foundation, or a zoo YAML whose stem names a "
                                                    "benchmark of --paper-results")
    paper.add_argument("--dataset", required=True, help="paper dataset key, e.g. cifar10, dtd, oxford_pets")
    paper.add_argument("--dataset-source", help="load the dataset from here (Hub id or folder) instead of the "
                                                "mapped Hub dataset")
    paper.add_argument("--metrics", help="comma-separated metrics (default: every paper method we implement)")
    paper.add_argument("--samples-per-class", type=positive_int, help="stratified sample of the train split")
    paper.add_argument("--max-samples", type=positive_int, help="at most N images in total")
    paper.add_argument("--paper-results", help="folder laid out like hf_tsel/resources/paper_results (default: bundled)")
    add_compute_options(paper)
    paper.add_argument("--cache-dir", help="feature cache folder")
    paper.add_argument("--output", help="write the comparison table to this csv")
    paper.set_defaults(func=run_paper)

    offline = kinds.add_parser(
        "offline", help="packaged backbones x offline datasets, scored and checked against measured ground truth",
        description="The offline ranking benchmark (see benchmarks/offline_ranking.py); cached, so a re-run "
                    "computes only what is missing. The rows this run computes replace their own in the tables "
                    "already in --results-dir; the others are kept (so --metrics NEW adds a metric's rows).")
    offline.add_argument("--datasets", help="comma-separated offline datasets (default: all)")
    offline.add_argument("--zoos", default="offline,offline-benchmark", help="comma-separated zoos")
    offline.add_argument("--metrics", help="comma-separated metrics (default: every registry metric + ped+sfda, ped+logme)")
    offline.add_argument("--protocols", default="linear-probe,finetune-last", help="ground-truth protocols")
    offline.add_argument("--samples-per-class", type=positive_int, default=30, metavar="K",
                         help="train images per class of each dataset (default 30)")
    offline.add_argument("--test-samples-per-class", type=positive_int, default=20, metavar="K",
                         help="test images per class of each dataset (default 20)")
    add_renamed_option(offline, "--train-per-class", "--samples-per-class", type=positive_int)
    add_renamed_option(offline, "--test-per-class", "--test-samples-per-class", type=positive_int)
    offline.add_argument("--finetune-epochs", type=positive_int, default=10)
    offline.add_argument("--work-dir", help="scores / probes / fine-tuning cache (default $HF_TSEL_HOME/offline-benchmark)")
    offline.add_argument("--cache-dir", help="feature cache folder (default: the shared one)")
    offline.add_argument("--results-dir", default="benchmarks/results", help="where the csv / md tables go")
    offline.set_defaults(func=run_offline)

    zoo = kinds.add_parser(
        "zoo", help="dozens of small models trained here x offline target tasks, with measured ground truth",
        description="Builds (or reuses) the zoo benchmark's models under --work-dir, extracts features through the "
                    "normal rank path, scores every registry metric and measures linear-probe and full fine-tune "
                    "ground truth on every target task; writes zoo_*.csv and zoo_summary.md. Everything is cached, "
                    "so a re-run only computes what is missing (see docs/groundtruth.md).")
    zoo.add_argument("--tiny", action="store_true", help="3 models x 2 tasks, few hundred images, 1 epoch (smoke test)")
    zoo.add_argument("--tasks", help="comma-separated target tasks (default: all)")
    zoo.add_argument("--metrics", help="comma-separated metrics (default: every registered metric, see docs)")
    zoo.add_argument("--threads", type=int, default=1, help="torch / BLAS threads (default 1: fastest on a busy CPU)")
    zoo.add_argument("--seeds", type=seed_int, nargs="+", help="training seeds of the fine-tune ground truth, which is "
                                                                "their mean (default 0 1 2; --tiny: 0 1)")
    zoo.add_argument("--work-dir", help="models, features and ground-truth cache (default $HF_TSEL_HOME/zoo-benchmark)")
    zoo.add_argument("--results-dir", default="benchmarks/results", help="where the csv / md tables go")
    zoo.add_argument("--export-zoo", help="also write the zoo YAML with $HF_TSEL_HOME-relative model paths here "
                                          "(e.g. model_zoos/zoo-benchmark.yaml)")
    zoo.set_defaults(func=run_zoo)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _csv_list(text: str | None) -> tuple[str, ...] | None:
    return tuple(t.strip() for t in text.split(",") if t.strip()) if text else None


def run_paper(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..evaluation import weighted_kendall_tau
    from ..groundtruth.paper import comparison_table, load_paper_benchmark, paper_accuracies
    from ..metrics import MetricInputError, get_metric
    from ..ranking import rank
    from ..zoo import load_zoo

    key = Path(args.zoo).stem if args.zoo.endswith((".yaml", ".yml")) else args.zoo
    bench = load_paper_benchmark(key, args.paper_results)
    if args.dataset not in bench.accuracies.columns:
        raise UserError(f"the {key} paper tables have no dataset {args.dataset!r}; choose one of "
                        f"{list(bench.accuracies.columns)}")
    spec = bench.datasets.get(args.dataset)
    if spec is not None and spec.multi_label and not args.dataset_source:
        raise UserError(f"{args.dataset} is multi-label; single-label transferability metrics do not apply to it")
    if spec is None and not args.dataset_source:
        raise UserError(f"no Hub dataset is mapped for {args.dataset!r}; pass --dataset-source")
    zoo_names = {entry.name for entry in load_zoo(args.zoo)}
    gaps = bench.missing_models(zoo_names)
    if gaps:
        print(f"paper models without a zoo entry (left out of the ground truth): {', '.join(gaps)}")
    wanted = _csv_list(args.metrics) or tuple(m for m in bench.methods.values() if m)
    metrics = []
    for name in wanted:
        try:
            metrics.append(get_metric(name).name)
        except MetricInputError:
            print(f"metric {name!r} is not registered; its row stays empty")
    if not metrics:
        raise UserError("none of the requested metrics is registered; see `hf-tsel metrics`")
    source = args.dataset_source or spec.hub_id
    started = time.perf_counter()
    results = rank(source, zoo=args.zoo, metrics=metrics, split=spec.train_split if spec else "train",
                   revision=spec.revision if spec and not args.dataset_source else None,
                   label_column=spec.label_column if spec else None, samples_per_class=args.samples_per_class,
                   max_samples=args.max_samples, device=args.device, batch_size=args.batch_size,
                   num_workers=args.num_workers, precision=args.precision,
                   cache_dir=args.cache_dir)
    accuracies = paper_accuracies(bench, args.dataset)
    ours = {}
    for metric, group in results.groupby("metric"):
        scored = {m: float(s) for m, s in zip(group["model"], group["score"]) if m in accuracies and not math.isnan(s)}
        ours[metric] = weighted_kendall_tau(scored, {m: accuracies[m] for m in scored}) if len(scored) >= 2 else None
    table = comparison_table(bench, args.dataset, ours)
    _print_comparison(table, f"{bench.paper}: {key} zoo on {args.dataset} "
                             f"({results['model'].nunique()} models, {time.perf_counter() - started:.0f}s)")
    if args.output:
        table.to_csv(args.output, index=False, float_format="%.4f")
    return 0


def _print_comparison(table, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(title=title)
    for column, label in (("method", "paper method"), ("metric", "our metric"), ("paper_weighted_tau", "paper τw"),
                          ("our_weighted_tau", "our τw"), ("difference", "ours − paper")):
        view.add_column(label, justify="left" if column in ("method", "metric") else "right")
    for row in table.to_dict("records"):
        cells = [row["method"], row["metric"]]
        cells += ["-" if row[c] is None or math.isnan(row[c]) else f"{row[c]:+.3f}" if c == "difference"
                  else f"{row[c]:.3f}" for c in ("paper_weighted_tau", "our_weighted_tau", "difference")]
        view.add_row(*cells)
    Console(width=160).print(view)


def run_offline(args: argparse.Namespace) -> int:
    from ..offline.benchmark import (OfflineBenchmarkConfig, markdown_summary, merged_with_tables,
                                     run_offline_benchmark, write_benchmark_tables)
    from ..offline.benchmark_datasets import OFFLINE_DATASETS

    config = OfflineBenchmarkConfig(
        datasets=_csv_list(args.datasets) or tuple(OFFLINE_DATASETS), zoos=_csv_list(args.zoos),
        metrics=_csv_list(args.metrics), protocols=_csv_list(args.protocols), train_per_class=args.samples_per_class,
        test_per_class=args.test_samples_per_class, finetune_epochs=args.finetune_epochs,
        work_dir=Path(args.work_dir) if args.work_dir else None,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None)
    result = run_offline_benchmark(config, log=lambda message: print(message, flush=True))
    result = merged_with_tables(result, args.results_dir)
    paths = write_benchmark_tables(result, args.results_dir)
    summary = markdown_summary(result)
    summary_path = Path(args.results_dir) / "offline_summary.md"
    summary_path.write_text(summary)
    print(summary)
    print(f"wrote {', '.join(str(p) for p in [*paths, summary_path])} in {result.seconds:.0f}s")
    return 0


def run_zoo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..offline.zoo.benchmark import (ZooBenchmarkConfig, default_work_dir, portable_zoo_yaml, run_zoo_benchmark,
                                         tiny_config, write_results)

    work_dir = Path(args.work_dir) if args.work_dir else default_work_dir() / ("tiny" if args.tiny else "")
    config = tiny_config(work_dir) if args.tiny else ZooBenchmarkConfig(work_dir=work_dir)
    config = replace(config, threads=args.threads, metrics=_csv_list(args.metrics),
                     tasks=_csv_list(args.tasks) or config.tasks,
                     finetune_seeds=tuple(args.seeds or config.finetune_seeds))
    result = run_zoo_benchmark(config, log=lambda message: print(message, flush=True))
    paths = write_results(result, args.results_dir)
    if args.export_zoo:
        Path(args.export_zoo).write_text(portable_zoo_yaml(result))
        paths.append(Path(args.export_zoo))
    print(f"wrote {', '.join(str(p) for p in paths)} in {result.timings['total']:.0f}s")
    return 0

"""``hf-tsel evaluate``: how well transferability scores predict ground-truth accuracy."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ._args import add_renamed_option, check_output_file, comma_list

LABELS = {"weighted_kendall_tau": "τw", "kendall_tau": "Kendall τ", "spearman_rho": "Spearman", "pearson_r": "Pearson",
          "rel@1": "Rel@1", "rel@3": "Rel@3", "top1_regret": "regret@1"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="correlate scores with ground-truth accuracies (weighted tau, Kendall, Spearman, Rel@k)",
        description="Per dataset and metric: weighted Kendall tau, Kendall tau, Spearman, Pearson, Rel@1, Rel@3 and "
                    "top-1 regret of the scores against ground-truth accuracies.")
    parser.add_argument("scores", help="results file from `hf-tsel rank` (csv/json/parquet) or a "
                                       "dataset,model,metric,score csv")
    parser.add_argument("--ground-truth", help="GT table from `hf-tsel finetune` or a results file with "
                                               "ground_truth_accuracy (default: the scores file itself)")
    parser.add_argument("--protocol", help="only this ground-truth protocol (e.g. linear-probe, full, paper)")
    parser.add_argument("--metrics", help="only these metrics, comma-separated (default: every metric in the scores)")
    add_renamed_option(parser, "--metric", "--metrics", append=True)
    parser.add_argument("--format", choices=["rich", "csv"], default="rich", help="table on stdout (default rich)")
    parser.add_argument("--output", help="also write the table to this csv file")
    parser.add_argument("--plot", metavar="PNG", help="plot score against accuracy, one panel per metric (one file "
                                                      "per dataset/protocol when there are several)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output and --plot files that already exist")
    parser.set_defaults(func=run)


def print_rich(table) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(title="Ranking quality (higher is better; regret: lower is better)")
    for column in ("dataset", "protocol", "metric", "n"):
        view.add_column(column, justify="right" if column == "n" else "left")
    measures = [c for c in LABELS if c in table.columns]
    for column in measures:
        view.add_column(LABELS[column], justify="right")
    for row in table.to_dict("records"):
        cells = [str(row["dataset"]), str(row["protocol"]), str(row["metric"]), str(row["num_models"])]
        cells += ["-" if math.isnan(float(row[c])) else f"{float(row[c]):.3f}" for c in measures]
        view.add_row(*cells)
    Console(width=200).print(view)


def run(args: argparse.Namespace) -> int:
    from ..groundtruth.evaluate import evaluation_table, plot_scores_vs_accuracy, read_scores
    from ..groundtruth.table import ground_truth_from_results, read_ground_truth
    from ..errors import UserError
    from ._ranking_output import plain_warnings

    plain_warnings()

    for option, path in (("--output", args.output), ("--plot", args.plot)):
        if path:
            check_output_file(path, option, overwrite=args.overwrite)
    metrics = comma_list(args.metrics)
    if metrics == []:
        raise UserError("the metric list is empty (--metrics \"\")",
                        fix="name at least one metric of the scores, or leave out --metrics for all of them.")
    scores = read_scores(args.scores)
    truth = read_ground_truth(args.ground_truth) if args.ground_truth else ground_truth_from_results(scores,
                                                                                                     where=args.scores)
    table = evaluation_table(scores, truth, protocol=args.protocol, metrics=metrics)
    if args.format == "csv":
        print(table.to_csv(index=False, float_format="%.4f"), end="")
    else:
        print_rich(table)
    plots = []
    if args.plot:
        pairs = list(table[["dataset", "protocol"]].drop_duplicates().itertuples(index=False))
        target = Path(args.plot)
        plots = [(dataset, protocol, target if len(pairs) == 1 else target.with_name(
            f"{target.stem}-{_safe(dataset)}-{protocol}{target.suffix or '.png'}")) for dataset, protocol in pairs]
        for *_, path in plots:  # one plot per pair: their names are known only now, still before anything is written
            check_output_file(str(path), "--plot", overwrite=args.overwrite)
    if args.output:
        table.to_csv(args.output, index=False, float_format="%.4f")
    for dataset, protocol, path in plots:
        print(f"plot: {plot_scores_vs_accuracy(scores, truth, dataset, protocol, path, metrics=metrics)}")
    return 0


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))

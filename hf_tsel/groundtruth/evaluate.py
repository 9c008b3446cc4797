"""Correlate transferability scores with ground-truth accuracies, as a table and as a plot."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..errors import ResultsError, UserError
from ..evaluation import evaluate_ranking, weighted_kendall_tau
from ..results import read_csv_table, read_results

SCORE_COLUMNS = ("dataset", "model", "metric", "score")
_SCORES_FIX = ("pass a results file from `hf-tsel rank --output`, or a csv with the columns "
               f"{','.join(SCORE_COLUMNS)}.")
MEASURES = ("weighted_kendall_tau", "kendall_tau", "spearman_rho", "pearson_r", "rel@1", "rel@3", "top1_regret")


def read_scores(path: str | Path) -> pd.DataFrame:
    """Scores from a results file (any :mod:`hf_tsel.results` format) or a ``dataset,model,metric,score`` csv."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"scores file {path} does not exist; create one with `hf-tsel rank --output FILE`")
    if path.suffix == ".csv":
        frame = read_csv_table(path, fix=_SCORES_FIX)
        if "schema_version" not in frame.columns:
            missing = [c for c in SCORE_COLUMNS if c not in frame.columns]
            if missing:
                raise ResultsError(f"the scores file {path} lacks the column(s) {missing}", fix=_SCORES_FIX)
            return _numeric_scores(frame, path)

    frame, _ = read_results(path)
    return frame


def _numeric_scores(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    values = pd.to_numeric(frame["score"], errors="coerce")
    bad = frame["score"].notna() & values.isna()
    if bad.any():
        row = bad.idxmax()
        raise ResultsError(f"the scores file {path} has non-numeric scores ({int(bad.sum())} row(s); line {row + 2}: "
                           f"{frame.loc[row, 'score']!r})", fix="write numbers (or leave the cell empty for no score).")
    return frame.assign(score=values)


def evaluation_table(scores: pd.DataFrame, ground_truth: pd.DataFrame, *, protocol: str | None = None,
                     metrics: Sequence[str] | None = None, ks: Sequence[int] = (1, 3)) -> pd.DataFrame:
    """One row per (dataset, protocol, metric): every measure of :func:`hf_tsel.evaluation.evaluate_ranking`.

    Models are matched by name within a dataset; models without a score (empty: not applicable) or
    without an accuracy are left out (``num_models`` says how many remained; models on one side only
    are named in a warning, and no model in common is an error). Several scores for one (dataset,
    model, metric) and infinite scores are refused. Fewer than two models give NaNs.
    """
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise UserError(f"the scores lack column(s) {missing}; pass a results file from `hf-tsel rank`")
    if protocol is not None:
        ground_truth = ground_truth[ground_truth["protocol"] == protocol]
        if ground_truth.empty:
            raise UserError(f"the ground truth has no rows of protocol {protocol!r}")
    if metrics:
        unknown = sorted(set(metrics) - set(scores["metric"]))
        if unknown:
            raise UserError(f"metric(s) {unknown} are not in the scores", fix="choose --metrics among "
                            f"{sorted(set(scores['metric']))}.")
        scores = scores[scores["metric"].isin(list(metrics))]
    common = sorted(set(scores["dataset"]) & set(ground_truth["dataset"]))
    if not common:
        raise UserError(f"no dataset is in both the scores {sorted(set(scores['dataset']))[:5]} and the ground truth "
                        f"{sorted(set(ground_truth['dataset']))[:5]}; dataset names must match exactly")
    _check_scores(scores[scores["dataset"].isin(common)])
    _check_models(scores[scores["dataset"].isin(common)], ground_truth[ground_truth["dataset"].isin(common)])
    rows = []
    for (dataset, gt_protocol), gt in ground_truth[ground_truth["dataset"].isin(common)].groupby(["dataset", "protocol"]):
        accuracies = dict(zip(gt["model"], gt["accuracy"].astype(float)))
        for metric, group in scores[scores["dataset"] == dataset].groupby("metric", sort=True):
            valid = {m: float(s) for m, s in zip(group["model"], group["score"])
                     if m in accuracies and s is not None and not pd.isna(s) and math.isfinite(float(s))}
            row = {"dataset": dataset, "protocol": gt_protocol, "metric": metric, "num_models": len(valid)}
            row.update(dict.fromkeys([*MEASURES[:4], *(f"rel@{k}" for k in ks), "top1_regret"], math.nan))
            if len(valid) >= 2:
                row.update(evaluate_ranking(valid, {m: accuracies[m] for m in valid}, ks=ks))
            rows.append(row)
    return pd.DataFrame(rows)


def _check_scores(scores: pd.DataFrame) -> None:
    """Refuse what would be dropped or overwritten silently: several scores for one (dataset, model, metric)
    (the ground truth refuses its duplicates too) and infinite scores (a metric that broke down)."""
    key = ["dataset", "model", "metric"]
    duplicated = scores.duplicated(subset=key, keep=False)
    if duplicated.any():
        row = scores[duplicated].iloc[0]
        raise ResultsError(f"the scores have {int(duplicated.sum())} rows for one (dataset, model, metric), e.g. "
                           f"dataset {row['dataset']!r}, model {row['model']!r}, metric {row['metric']!r}",
                           fix="keep one score per (dataset, model, metric); results of several splits or configs "
                               "go in separate files.")
    values = pd.to_numeric(scores["score"], errors="coerce")
    infinite = values.notna() & ~values.apply(lambda v: math.isfinite(v) if pd.notna(v) else True)
    if infinite.any():
        row = scores[infinite].iloc[0]
        raise ResultsError(f"the score of model {row['model']!r} for metric {row['metric']!r} on {row['dataset']!r} "
                           f"is {float(row['score']):g} ({int(infinite.sum())} infinite score(s))",
                           fix="scores must be finite numbers; leave the cell empty for a model without a score.")


def _check_models(scores: pd.DataFrame, ground_truth: pd.DataFrame) -> None:
    """Model names must match between the two tables: none in common is an error, a partial match a warning
    naming the models left out (they would otherwise vanish from every measure)."""
    for dataset in sorted(set(scores["dataset"])):
        scored = set(scores.loc[scores["dataset"] == dataset, "model"])
        known = set(ground_truth.loc[ground_truth["dataset"] == dataset, "model"])
        if not scored & known:
            raise UserError(f"no model of dataset {dataset!r} is in both the scores {sorted(scored)[:5]} and the "
                            f"ground truth {sorted(known)[:5]}",
                            fix="model names must match exactly (the zoo entry names that `hf-tsel rank` writes).")
        for side, names in (("without an accuracy in the ground truth", scored - known),
                            ("without a score", known - scored)):
            if names:
                listed = ", ".join(sorted(names)[:8]) + (", ..." if len(names) > 8 else "")
                warnings.warn(f"dataset {dataset!r}: {len(names)} model(s) {side} are left out: {listed}",
                              stacklevel=3)


def plot_scores_vs_accuracy(scores: pd.DataFrame, ground_truth: pd.DataFrame, dataset: str, protocol: str,
                            path: str | Path, *, metrics: Sequence[str] | None = None) -> Path:
    """PNG with one panel per metric: each model's score against its accuracy, titled with weighted tau."""
    try:
        import matplotlib
    except ImportError:
        raise UserError("plotting needs matplotlib: pip install 'hf-tsel[space]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gt = ground_truth[(ground_truth["dataset"] == dataset) & (ground_truth["protocol"] == protocol)]
    accuracies = dict(zip(gt["model"], gt["accuracy"].astype(float)))
    rows = scores[(scores["dataset"] == dataset) & scores["model"].isin(accuracies) & scores["score"].notna()]
    names = [m for m in (metrics or sorted(rows["metric"].unique())) if m in set(rows["metric"])]
    if not names:
        raise UserError(f"nothing to plot for dataset {dataset!r} and protocol {protocol!r}")
    columns = min(4, len(names))
    lines = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(3.6 * columns, 3.2 * lines), squeeze=False)
    for axis, metric in zip(axes.flat, names):
        group = rows[rows["metric"] == metric]
        x, y = group["score"].astype(float).tolist(), [accuracies[m] for m in group["model"]]
        axis.scatter(x, y, s=18)
        for model, xi, yi in zip(group["model"], x, y):
            axis.annotate(model, (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
        tau = weighted_kendall_tau(x, y) if len(x) >= 2 else math.nan
        axis.set_title(f"{metric}  (τw={tau:.2f})", fontsize=9)
        axis.set_xlabel("score", fontsize=8)
        axis.set_ylabel(f"accuracy ({protocol})", fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(names):]:
        axis.set_visible(False)
    figure.suptitle(f"{dataset}: predicted score vs. ground truth", fontsize=10)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

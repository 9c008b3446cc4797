"""Results as the Space shows them: loading (Hub repo or local files), filtering and views.

Everything here is plain pandas so it can be tested without a browser; ``spaces_app/app.py`` wires it
to Gradio components. Malformed or foreign records never crash the loading: they are skipped and a
note saying which and why is returned for display.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..defaults import ANSWER_METRIC
from ..evaluation import weighted_kendall_tau
from ..metrics import list_metrics
from ..metrics.consensus import answer_config
from ..racing import RACE_METRIC
from ..recommendation import answer_from_scores, recommendation_line
from ..results import RESULT_FIELDS, ResultsError, best_first, rank_interval_text, read_results, validate_results
from .schema import merge_results, split_valid_records

__all__ = ["RESULTS_PATH_ENV", "RESULTS_REPO_ENV", "MEAN_RANK", "RECOMMENDATION", "LoadedResults",
           "load_leaderboard_results", "target_label", "leaderboard_view", "recommendation_html", "model_view",
           "prediction_vs_truth", "metrics_markdown"]

RESULTS_REPO_ENV = "HF_TSEL_RESULTS_REPO"
RESULTS_PATH_ENV = "HF_TSEL_RESULTS_PATH"
MEAN_RANK = "mean rank (all metrics)"
RECOMMENDATION = "recommendation (consensus, P(best))"
_RESULT_SUFFIXES = (".parquet", ".json", ".csv")


@dataclass
class LoadedResults:
    """The valid records found, where they came from and notes about anything skipped."""

    table: pd.DataFrame
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def targets(self) -> list[str]:
        return sorted({target_label(*key) for key in _targets(self.table)})


def _targets(df: pd.DataFrame):
    return df[["dataset", "config", "split"]].itertuples(index=False, name=None)


def target_label(dataset: str, config, split: str) -> str:
    """How a (dataset, config, split) target is named in the Space, e.g. ``org/flowers [full] / test``."""
    has_config = isinstance(config, str) and config
    return f"{dataset}" + (f" [{config}]" if has_config else "") + f" / {split}"


def _result_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in _RESULT_SUFFIXES and p.is_file()
                  and "runs" not in p.relative_to(root).parts and not p.name.endswith(".run.json")
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def _raw_records(path: Path) -> pd.DataFrame:
    """The records of a results file without validation (to find the valid ones one by one)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path, dtype=str).astype(object).where(lambda d: d.notna(), None).pipe(_numeric)
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("records"), list):
        raise ResultsError("not an hf-tsel results file (no 'records' list)")
    return pd.DataFrame(document["records"])


def _numeric(df: pd.DataFrame) -> pd.DataFrame:
    for name in ("score", "rank", "num_samples", "num_classes", "seed", "seconds", "extraction_seconds",
                 "ground_truth_accuracy", "p_top1", "rank_low", "rank_high"):
        if name in df.columns:
            df[name] = pd.to_numeric(df[name], errors="coerce")
    return df


def _read_file(path: Path, name: str) -> tuple[pd.DataFrame | None, list[str]]:
    try:
        return read_results(path)[0], []
    except (ResultsError, ValueError, OSError) as err:
        first_error = err
    try:
        raw = _raw_records(path)
    except (ResultsError, ValueError, OSError) as err:
        return None, [f"{name}: skipped, not a readable results file ({err})"]
    if not {"dataset", "model", "metric"} <= set(raw.columns):  # a foreign table: one note, not one per row
        return None, [f"{name}: skipped, not hf-tsel results ({first_error})"]
    valid, notes = split_valid_records(raw.reset_index(drop=True), name)
    return valid, notes


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=[f"*{s}" for s in _RESULT_SUFFIXES],
                                  ignore_patterns=["runs/*"]))


def load_leaderboard_results(source: str | Path | None = None) -> LoadedResults:
    """Load results from a local file/folder or a Hub dataset repo id.

    Without ``source`` the ``HF_TSEL_RESULTS_PATH`` (local) or ``HF_TSEL_RESULTS_REPO`` (Hub) environment
    variable is used. Unreadable files and invalid records are skipped and listed in ``notes``; when a key
    appears in several files the newest record wins.
    """
    source = source or os.environ.get(RESULTS_PATH_ENV) or os.environ.get(RESULTS_REPO_ENV)
    empty = validate_results(pd.DataFrame(columns=list(RESULT_FIELDS)))
    if not source:
        return LoadedResults(empty, "nothing", [f"No results configured: set {RESULTS_REPO_ENV}=ORG/NAME (a Hub "
                                                f"dataset written by `hf-tsel push`) or {RESULTS_PATH_ENV}=PATH."])
    root = Path(source)
    notes: list[str] = []
    if not root.exists():
        try:
            root = _download(str(source))
        except Exception as err:  # the Space must still start and say what went wrong
            return LoadedResults(empty, str(source), [f"Could not download the results repo {source}: {err}"])
    table = empty
    for path in _result_files(root):
        name = str(path.relative_to(root)) if path != root else path.name
        records, file_notes = _read_file(path, name)
        notes += file_notes
        if records is None or not len(records):
            continue
        try:
            outcome = merge_results(table, records)
        except ResultsError as err:
            notes.append(f"{name}: skipped ({err})")
            continue
        table = outcome.table
        superseded = outcome.replaced + len(outcome.kept_newer)
        if superseded:
            notes.append(f"{name}: {superseded} record(s) superseded by a newer run of the same model and metric")
    if not len(table) and not notes:
        notes.append(f"No results files found in {source}.")
    return LoadedResults(table, str(source), notes)


def _for_target(df: pd.DataFrame, target: str | None) -> pd.DataFrame:
    mask = pd.Series([target_label(*key) == target for key in _targets(df)], index=df.index, dtype=bool)
    return df[mask]


def leaderboard_view(df: pd.DataFrame, target: str | None, metric: str | None, *, families=None,
                     pretraining=None, search: str = "") -> pd.DataFrame:
    """The leaderboard of one target under one metric (or ``MEAN_RANK`` over all), filtered."""
    rows = _for_target(df, target)
    if families is not None:
        rows = rows[rows["family"].isin(families)]
    if pretraining is not None:
        rows = rows[rows["pretraining"].isin(pretraining)]
    if search.strip():
        needle = search.strip().lower()
        text = rows["model"] + " " + rows["model_id"] + " " + rows["family"] + " " + rows["pretraining"]
        rows = rows[text.str.lower().str.contains(needle, regex=False)]
    identity = ["model", "family", "pretraining", "model_id", "model_revision"]
    accuracy = rows.groupby("model")["ground_truth_accuracy"].max()
    if metric == RECOMMENDATION:
        view = _consensus_rows(rows).rename(columns={"num_samples": "images", "score": ANSWER_METRIC})
        view["P(best)"] = view["p_top1"]
        view["rank 90%"] = [rank_interval_text(low, high) for low, high in zip(view["rank_low"], view["rank_high"])]
        columns = ["rank", "model", ANSWER_METRIC, "P(best)", "rank 90%"]
    elif metric == MEAN_RANK:
        scored = rows[rows["metric"] != RACE_METRIC]  # the race ranks only its top-K: not a metric of every model
        filled = scored.assign(model_revision=scored["model_revision"].fillna(""))
        view = (filled.groupby(identity, dropna=False)
                .agg(score=("rank", "mean"), metrics=("rank", "count"), images=("num_samples", "max"))  # scored metrics
                .reset_index().sort_values(["score", "model"]).rename(columns={"score": "mean rank"}))
        view.insert(0, "rank", view["mean rank"].rank(method="min").astype(int))
        columns = ["rank", "model", "mean rank", "metrics"]
    else:
        view = best_first(rows[rows["metric"] == metric])
        view = view.rename(columns={"num_samples": "images"})
        columns = ["rank", "model", "score"] + (["race_round", "race_epochs"] if metric == RACE_METRIC else [])
    if accuracy.notna().any():
        view["fine-tuned accuracy"] = view["model"].map(accuracy)
        columns.append("fine-tuned accuracy")
    columns += ["family", "pretraining", "images", "model_id", "model_revision"] + (["note"] if "note" in view else [])
    view = view.assign(model_revision=view["model_revision"].fillna("").str[:10])
    return view[columns].round({"mean rank": 2, "score": 4, ANSWER_METRIC: 4, "P(best)": 3,
                                "fine-tuned accuracy": 4}).reset_index(drop=True)


def _consensus_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The target's ``consensus`` records, best first; results without them (older files) get the default goal's
    consensus recomputed from the member metrics they hold (no P(best): that needs the features)."""
    stored = rows[rows["metric"] == ANSWER_METRIC]
    if not len(stored):
        scores = answer_from_scores(rows)
        if scores:
            members = rows[rows["metric"].isin(answer_config().members)]
            stored = members.drop_duplicates("model").set_index("model").loc[list(scores)].reset_index()
            stored = stored.assign(metric=ANSWER_METRIC, score=stored["model"].map(scores), p_top1=float("nan"),
                                   rank_low=pd.NA, rank_high=pd.NA)
            stored["rank"] = stored["score"].rank(method="min", ascending=False).astype(int)
    return best_first(stored)


def recommendation_html(df: pd.DataFrame, target: str | None, *, families=None, pretraining=None) -> str:
    """The answer for one target: the recommendation line and one P(best) bar per model (HTML)."""
    from html import escape

    rows = _for_target(df, target)
    if families is not None:
        rows = rows[rows["family"].isin(families)]
    if pretraining is not None:
        rows = rows[rows["pretraining"].isin(pretraining)]
    table = _consensus_rows(rows)
    if not len(table):
        return "<p>No consensus for this target: rank it with `hf-tsel rank` (version 0.1 or later) and push.</p>"
    table = table.reset_index(drop=True).assign(p_top1=lambda t: t["p_top1"].astype(float))
    goals = table["goal"].dropna().unique() if "goal" in table else []
    if len(goals) == 1:  # the answer line's wording follows the goal the run answered
        table.attrs["goal"] = str(goals[0])
    bars = []
    for r in table.itertuples():
        share = 0.0 if pd.isna(r.p_top1) else float(r.p_top1)
        label = "n/a" if pd.isna(r.p_top1) else f"{share:.2f}"
        bars.append(f'<div class="confidence-row"><span style="display:inline-block;width:14em">{escape(r.model)}</span>'
                    f'<span class="confidence-bar" style="display:inline-block;height:0.9em;width:{share * 20:.2f}em;'
                    f'background:#4f8bd6"></span> P(best) {label} {rank_interval_text(r.rank_low, r.rank_high)}</div>')
    note = "" if table["p_top1"].notna().any() else (
        "<p>These results carry no P(best) (written before it existed); the consensus was recomputed from the "
        "member metrics they hold.</p>")
    return (f"<p><b>{escape(recommendation_line(table))}</b></p>{note}<div id='confidence-bars'>{''.join(bars)}</div>")


def model_view(df: pd.DataFrame, model: str | None) -> pd.DataFrame:
    """Every score of one model: per target and metric, with its rank among the models scored there."""
    rows = df[df["model"] == model].copy()
    sizes = df.groupby(["dataset", "split", "metric"], dropna=False)["model"].nunique()
    rows["of"] = [sizes.get((d, s, m)) for d, s, m in rows[["dataset", "split", "metric"]].itertuples(index=False)]
    rows["target"] = [target_label(*key) for key in _targets(rows)]
    view = rows[["target", "metric", "score", "rank", "of", "ground_truth_accuracy", "num_samples", "timestamp"]]
    return view.rename(columns={"ground_truth_accuracy": "fine-tuned accuracy", "num_samples": "images"}) \
        .sort_values(["target", "metric"]).reset_index(drop=True)


def prediction_vs_truth(df: pd.DataFrame, target: str | None, metric: str | None) -> tuple[pd.DataFrame, str]:
    """Points (predicted score, fine-tuned accuracy) of one target and metric, and a line with the weighted tau.

    The weighted Kendall tau (:func:`hf_tsel.evaluation.weighted_kendall_tau`, hyperbolic weights) is the
    agreement measure of the transferability papers: 1 means the metric orders the models like fine-tuning.
    """
    rows = _for_target(df, target)
    rows = rows[(rows["metric"] == metric) & rows["ground_truth_accuracy"].notna() & rows["score"].notna()]
    points = rows[["model", "family", "score", "ground_truth_accuracy"]].rename(
        columns={"ground_truth_accuracy": "fine-tuned accuracy"}).reset_index(drop=True)
    if len(points) < 2:
        return points, (f"No fine-tuned accuracies for {target} under {metric}: run `hf-tsel finetune` / "
                        "`hf-tsel evaluate` and push the results with ground truth to see this plot.")
    tau = weighted_kendall_tau(points["score"].to_numpy(float), points["fine-tuned accuracy"].to_numpy(float))
    value = "undefined (all scores or all accuracies are equal)" if math.isnan(tau) else f"**{tau:.3f}**"
    return points, f"Weighted Kendall tau between {metric} and fine-tuned accuracy on {target}: {value} " \
                   f"({len(points)} models)."


def metrics_markdown() -> str:
    """A markdown table of the registered metrics (from :func:`hf_tsel.metrics.list_metrics`)."""
    lines = ["| metric | needs | stochastic | summary | paper |", "|---|---|---|---|---|"]
    for spec in list_metrics(include_transforms=False):
        info = spec.as_dict()
        needs = {"features": "features", "source_probs": "source-classifier probabilities",
                 "features+source_probs": "features and source-classifier probabilities",
                 "model_set": "features of all models",
                 "reference_features": "features of the model's source reference images"}.get(info["consumes"], info["consumes"])
        cells = [f"`{info['name']}`", needs, "yes" if info["stochastic"] else "no", info["summary"], info["paper"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines)

"""The dataset card (``README.md``) of a published results repo.

The card is a pure function of the records, so pushing the same records again reproduces it byte for
byte (and makes no commit). Its YAML ``configs:`` block points ``datasets.load_dataset(repo)`` at the
results parquet file.
"""

from __future__ import annotations

import pandas as pd
import yaml

from ..results import RESULTS_SCHEMA_VERSION, schema_markdown
from .schema import KEY_FIELDS

__all__ = ["RESULTS_PATH_IN_REPO", "render_card"]

RESULTS_PATH_IN_REPO = "data/results.parquet"
_MAX_MODELS_PER_TABLE = 30


def _cell(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown_table(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(_cell(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _target_name(dataset: str, config, split: str) -> str:
    return f"{dataset}" + (f" ({config})" if _cell(config) else "") + f", split `{split}`"


def _summary_table(group: pd.DataFrame) -> str:
    """Models by mean rank over the metrics, with each metric's rank and the fine-tuned accuracy if known."""
    ranks = group.pivot_table(index=["model", "family", "pretraining"], columns="metric", values="rank",
                              aggfunc="min")
    table = ranks.assign(**{"mean rank": ranks.mean(axis=1)}).sort_values("mean rank")
    table = table[["mean rank", *ranks.columns]].round(2)
    accuracy = group.dropna(subset=["ground_truth_accuracy"]).groupby("model")["ground_truth_accuracy"].max()
    if len(accuracy):
        table["fine-tuned accuracy"] = table.index.get_level_values("model").map(accuracy)
    table = table.reset_index().head(_MAX_MODELS_PER_TABLE)
    table.columns = [str(c) for c in table.columns]
    return _markdown_table(table)


def _int_values(df: pd.DataFrame, column: str) -> str:
    return ", ".join(str(v) for v in sorted({int(v) for v in df[column].dropna()}))


def _provenance(df: pd.DataFrame) -> str:
    def values(column: str) -> str:
        return ", ".join(sorted({_cell(v) for v in df[column] if _cell(v)})) or "n/a"

    rows = []
    for (dataset, config, split), group in df.groupby(["dataset", "config", "split"], dropna=False, sort=True):
        rows.append({"target": _target_name(dataset, config, split), "images": _int_values(group, "num_samples"),
                     "classes": _int_values(group, "num_classes"), "seeds": _int_values(group, "seed"),
                     "runs": group["run_id"].nunique()})
    return "\n".join([
        f"- hf-tsel versions: {values('tool_version')}",
        f"- hardware: {values('hardware')}",
        f"- latest run: {df['timestamp'].max()}",
        "",
        _markdown_table(pd.DataFrame(rows)),
    ])


def render_card(df: pd.DataFrame, repo_id: str) -> str:
    """The ``README.md`` text for a results repo holding the validated table ``df``."""
    metadata = {
        "pretty_name": f"hf-tsel transferability results ({repo_id})",
        "tags": ["hf-tsel", "transferability-estimation", "model-selection", "image-classification"],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": RESULTS_PATH_IN_REPO}]}],
    }
    sections = [
        "---\n" + yaml.safe_dump(metadata, sort_keys=False) + "---",
        "# Transferability results",
        f"{len(df)} records: {df['model'].nunique()} models scored on {df['dataset'].nunique()} target "
        f"dataset(s) with {df['metric'].nunique()} transferability metric(s), produced by "
        "`hf-tsel rank` and published with `hf-tsel push`.",
        "```python\nfrom datasets import load_dataset\n\n"
        f"results = load_dataset(\"{repo_id}\", split=\"train\").to_pandas()\n```",
        "## How the scores were made",
        "Each model is run frozen (no fine-tuning) over the target split; its pooled features (and, for "
        "metrics that need them, its source-classifier probabilities) are scored against the target labels by "
        "each transferability metric. Every score is oriented so that higher predicts better fine-tuning "
        "accuracy, and `rank` 1 is the best model for that dataset, split and metric. Where a model was also "
        "fine-tuned, `ground_truth_accuracy` holds the measured accuracy so the metrics can be checked.",
        _provenance(df) if len(df) else "",
        "## Summary per target dataset",
        "Rank of every model under each metric (1 = predicted best) and its mean rank over the metrics.",
    ]
    for (dataset, config, split), group in df.groupby(["dataset", "config", "split"], dropna=False, sort=True):
        sections += [f"### {_target_name(dataset, config, split)}", _summary_table(group)]
    sections += [
        "## Schema",
        f"One record per ({', '.join(KEY_FIELDS)}); schema version {RESULTS_SCHEMA_VERSION}. "
        "Pushing again replaces a record only with a newer run of the same key.",
        schema_markdown(),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"

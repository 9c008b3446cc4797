"""Ground-truth tables: one row per (dataset, model, protocol) with the measured accuracy.

A GT table is a csv with the columns ``dataset, model, protocol, accuracy`` followed by optional
details (``num_train``, ``num_test``, ``hyperparameters``, ``seconds``, ``source``). Accuracy is a
fraction in [0, 1]. Results files carrying ``ground_truth_accuracy`` are accepted wherever a GT
table is, so ``hf-tsel evaluate`` can read either.

A seeded protocol keeps one row per training seed (``seed`` column) next to the row used as ground
truth, whose ``seed`` is empty (the mean over seeds; ``seeds`` says how many). Tables without a
``seed`` column (written before seeds were kept) are ground truth throughout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from ..errors import UserError
from ..results import read_csv_table, read_results

GT_FIELDS: tuple[str, ...] = ("dataset", "model", "protocol", "accuracy")
SEED = "seed"
PROTOCOLS: tuple[str, ...] = ("linear-probe", "full", "finetune-last", "paper")
# What each protocol trains, as the answer's goals name it (hf_tsel.defaults.GOALS): a linear head on frozen features,
# or fine-tuning (every layer, the last stage, or the papers' published fine-tuning).
GOAL_OF_PROTOCOL: dict[str, str] = {"linear-probe": "linear-probe", "full": "finetune", "finetune-last": "finetune",
                                    "paper": "finetune"}


def ground_truth_frame(rows: Iterable[Mapping]) -> pd.DataFrame:
    """A validated GT table from row mappings (missing detail columns are left empty)."""
    frame = pd.DataFrame(list(rows))
    for column in GT_FIELDS:
        if column not in frame:
            frame[column] = pd.Series(dtype="object")
    return validate_ground_truth(frame)


def validate_ground_truth(frame: pd.DataFrame, *, where: str = "ground-truth table") -> pd.DataFrame:
    """Check columns, accuracy range and uniqueness; return a copy with the canonical column order."""
    missing = [c for c in GT_FIELDS if c not in frame.columns]
    if missing:
        raise UserError(f"{where} lacks column(s) {missing}; a GT table needs {list(GT_FIELDS)}")
    frame = frame.copy()
    raw = frame["accuracy"]
    frame["accuracy"] = pd.to_numeric(raw, errors="coerce")
    unusable = frame["accuracy"].isna() | ~frame["accuracy"].between(0, 1)
    if unusable.any():
        position = int(unusable.to_numpy().argmax())
        row, value = frame.iloc[position], raw.iloc[position]
        shown = "missing or not a number" if pd.isna(row["accuracy"]) else f"{float(row['accuracy']):g}"
        if pd.notna(value) and pd.isna(row["accuracy"]):
            shown = f"not a number ({value!r})"
        fix = ("divide percentages by 100." if row["accuracy"] > 1 else
               "give every model an accuracy in [0, 1], or leave its row out.")
        raise UserError(f"{where}: accuracy of {row['model']!r} on {row['dataset']!r} is {shown}; accuracies are "
                        f"fractions in [0, 1] ({int(unusable.sum())} row(s) affected)", fix=fix)
    duplicated = frame.duplicated(subset=_row_key(frame), keep=False)
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        raise UserError(f"{where}: several rows for dataset {row['dataset']!r}, model {row['model']!r}, protocol "
                        f"{row['protocol']!r}; keep one accuracy per (dataset, model, protocol"
                        f"{', seed' if SEED in frame.columns else ''})")
    extra = [c for c in frame.columns if c not in GT_FIELDS]
    return frame[list(GT_FIELDS) + extra].reset_index(drop=True)


def _row_key(frame: pd.DataFrame) -> list[str]:
    return [*GT_FIELDS[:3], *([SEED] if SEED in frame.columns else [])]


def ground_truth_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows used as ground truth: all of a table without seeds, else those with an empty ``seed``."""
    return frame if SEED not in frame.columns else frame[frame[SEED].isna()].reset_index(drop=True)


def seed_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-seed rows of a GT table (none for a table without seeds)."""
    return frame.iloc[:0] if SEED not in frame.columns else frame[frame[SEED].notna()].reset_index(drop=True)


def read_ground_truth(path: str | Path, *, seeds: bool = False) -> pd.DataFrame:
    """Read a GT table csv, or a results file (any format of :mod:`hf_tsel.results`) with ground truth.

    Only the ground-truth rows are returned (:func:`ground_truth_rows`); ``seeds=True`` keeps the per-seed ones.
    """
    table = _read_table(Path(path))
    return table if seeds else ground_truth_rows(table)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"ground-truth file {path} does not exist; create it with `hf-tsel finetune`")
    if path.suffix == ".csv":
        fix = (f"a ground-truth table has the columns {list(GT_FIELDS)} (`hf-tsel finetune` writes one), or pass a "
               "results file with ground_truth_accuracy.")
        frame = read_csv_table(path, fix=fix)
        if "accuracy" in frame.columns:
            return validate_ground_truth(frame, where=str(path))
        if "schema_version" not in frame.columns:
            raise UserError(f"the ground-truth file {path} lacks the column 'accuracy' (it has {list(frame.columns)})",
                            fix=fix)

    results, _ = read_results(path)
    return ground_truth_from_results(results, where=str(path))


def ground_truth_from_results(results: pd.DataFrame, *, where: str = "results") -> pd.DataFrame:
    """The GT table carried by results records (``ground_truth_accuracy``/``ground_truth_protocol``)."""
    if "ground_truth_accuracy" not in results.columns or results["ground_truth_accuracy"].isna().all():
        raise UserError(f"{where} has no ground_truth_accuracy values; pass a GT table from `hf-tsel finetune`")
    rows = results.dropna(subset=["ground_truth_accuracy"])
    frame = pd.DataFrame({"dataset": rows["dataset"], "model": rows["model"],
                          "protocol": rows["ground_truth_protocol"].fillna("unknown"),
                          "accuracy": rows["ground_truth_accuracy"]}).drop_duplicates()
    return validate_ground_truth(frame, where=where)


def write_ground_truth(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a GT table csv (rows sorted by dataset, protocol, model), replacing the file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = validate_ground_truth(frame).sort_values(["dataset", "protocol", "model", *_row_key(frame)[3:]])
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def upsert_ground_truth(path: str | Path, rows: pd.DataFrame) -> pd.DataFrame:
    """Merge ``rows`` into the GT table at ``path`` (new rows win on the same dataset/model/protocol)."""
    path = Path(path)
    old = read_ground_truth(path, seeds=True) if path.is_file() else None
    merged = rows if old is None else pd.concat([old, rows], ignore_index=True)
    merged = merged.drop_duplicates(subset=_row_key(merged), keep="last")
    write_ground_truth(merged, path)
    return validate_ground_truth(merged)


def accuracies_for(frame: pd.DataFrame, dataset: str, protocol: str | None = None) -> dict[str, float]:
    """``{model: accuracy}`` of one dataset (and protocol; required when the table holds several)."""
    rows = frame[frame["dataset"] == dataset]
    protocols = sorted(rows["protocol"].unique())
    if protocol is None:
        if len(protocols) > 1:
            raise UserError(f"the GT table has protocols {protocols} for {dataset!r}; choose one with --protocol")
    else:
        rows = rows[rows["protocol"] == protocol]
    return dict(zip(rows["model"], rows["accuracy"].astype(float)))


def attach_ground_truth(results: pd.DataFrame, ground_truth: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Results records with ``ground_truth_accuracy``/``ground_truth_protocol`` filled from a GT table."""
    gt = ground_truth[ground_truth["protocol"] == protocol][["dataset", "model", "accuracy"]]
    merged = results.drop(columns=["ground_truth_accuracy", "ground_truth_protocol"], errors="ignore").merge(
        gt, on=["dataset", "model"], how="left")
    merged = merged.rename(columns={"accuracy": "ground_truth_accuracy"})
    merged["ground_truth_protocol"] = merged["ground_truth_accuracy"].notna().map({True: protocol, False: None})
    return merged

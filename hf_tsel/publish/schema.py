"""Record keys, field documentation and the merge rule for published results.

The record format itself lives in :mod:`hf_tsel.results`; this module adds what publishing needs on top:
which fields identify a record (:data:`KEY_FIELDS`), what every field means (:data:`FIELD_DOCS`, from
:data:`hf_tsel.results.RESULT_SCHEMA`), and how a new batch of records is merged into a published table
(:func:`merge_results`): new keys are added, a newer run of the same key replaces the older record,
identical records change nothing, and nothing is dropped without being counted in the
:class:`MergeOutcome`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..results import RESULT_FIELDS, RESULT_SCHEMA, ResultsError, add_ranks, read_results, validate_results

__all__ = ["KEY_FIELDS", "FIELD_DOCS", "MergeOutcome", "load_records", "merge_results", "record_key",
           "split_valid_records", "same_records"]

KEY_FIELDS: tuple[str, ...] = ("dataset", "config", "split", "model", "model_revision", "metric")

# name -> (type, description), from the one schema definition in hf_tsel.results
FIELD_DOCS: dict[str, tuple[str, str]] = {f.name: (f.type_text, f.doc) for f in RESULT_SCHEMA}


@dataclass
class MergeOutcome:
    """The merged table and what happened to every incoming record."""

    table: pd.DataFrame
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    kept_newer: list[str] = field(default_factory=list)  # incoming records older than the published ones

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced)

    def summary(self) -> str:
        text = f"{self.added} added, {self.replaced} replaced, {self.unchanged} unchanged"
        if self.kept_newer:
            text += (f", {len(self.kept_newer)} not applied because the published record is newer "
                     f"(e.g. {self.kept_newer[0]})")
        return text


def record_key(record: dict[str, Any]) -> tuple[str, ...]:
    """The identity of a record: its dataset, config, split, model, model revision and metric."""
    return tuple("" if _missing(record[name]) else str(record[name]) for name in KEY_FIELDS)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    if _missing(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _content(record: dict[str, Any]) -> str:
    """A canonical text of a record without its rank (ranks are recomputed after a merge)."""
    return json.dumps({k: _plain(v) for k, v in record.items() if k != "rank"}, sort_keys=True, default=str)


def _timestamps(df: pd.DataFrame) -> pd.Series:
    parsed = pd.to_datetime(df["timestamp"], utc=True, errors="coerce", format="ISO8601")
    if parsed.isna().any():
        row = parsed[parsed.isna()].index[0]
        raise ResultsError(f"row {row} has timestamp {df.loc[row, 'timestamp']!r}; it must be ISO-8601 "
                           "(e.g. 2026-01-31T12:00:00+00:00)")
    return parsed


def load_records(results: pd.DataFrame | str | Path) -> tuple[pd.DataFrame, dict]:
    """Read and validate a results table or a ``.csv``/``.json``/``.parquet`` file; returns ``(table, run metadata)``."""
    if isinstance(results, pd.DataFrame):
        df, run = validate_results(results), {}
    else:
        df, run = read_results(results)
    _timestamps(df)
    return df, run


def _by_key(df: pd.DataFrame, source: str) -> dict[tuple[str, ...], dict[str, Any]]:
    """Records of ``df`` by key; of two records with one key the newer wins, identical ones collapse."""
    records: dict[tuple[str, ...], dict[str, Any]] = {}
    stamps: dict[tuple[str, ...], pd.Timestamp] = {}
    for stamp, record in zip(_timestamps(df), df.to_dict(orient="records")):
        key = record_key(record)
        if key in records and _content(records[key]) != _content(record):
            if stamp == stamps[key]:
                raise ResultsError(f"{source} holds two different records for {_describe(key)} with the same "
                                   "timestamp; remove one of them")
            if stamp < stamps[key]:
                continue
        records[key], stamps[key] = record, stamp
    return records


def _describe(key: tuple[str, ...]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in zip(KEY_FIELDS, key) if value)


def _table(records: list[dict[str, Any]]) -> pd.DataFrame:
    if not records:
        return validate_results(pd.DataFrame(columns=list(RESULT_FIELDS)))
    df = add_ranks(validate_results(pd.DataFrame(records, columns=list(RESULT_FIELDS))))
    order = ["dataset", "config", "split", "metric", "rank", "model", "model_revision"]
    keys = df[order].astype(object).where(df[order].notna(), "").astype(str)
    keys["rank"] = df["rank"].fillna(10**9).astype(int)
    return df.loc[keys.sort_values(order).index].reset_index(drop=True)


def merge_results(published: pd.DataFrame | None, incoming: pd.DataFrame) -> MergeOutcome:
    """Merge ``incoming`` records into the ``published`` table (both validated results tables).

    A new key is added; for a key present in both, an identical record is left alone, a different one
    that is not older (by ``timestamp``) replaces the published one, and an older one is not applied but
    listed in ``kept_newer``. Ranks are recomputed on the merged table and rows are sorted deterministically, so
    merging the same records twice gives the same table.
    """
    merged = _by_key(published, "the published table") if published is not None and len(published) else {}
    outcome = MergeOutcome(table=incoming.iloc[:0])
    for key, record in _by_key(incoming, "the new results").items():
        old = merged.get(key)
        if old is None:
            outcome.added += 1
        elif _content(old) == _content(record):
            outcome.unchanged += 1
            continue
        elif _timestamps(pd.DataFrame([record]))[0] >= _timestamps(pd.DataFrame([old]))[0]:
            outcome.replaced += 1
        else:
            outcome.kept_newer.append(_describe(key))
            continue
        merged[key] = record
    outcome.table = _table(list(merged.values()))
    return outcome


def same_records(left: pd.DataFrame, right: pd.DataFrame) -> bool:
    """Whether two results tables hold the same records (ranks included, row order ignored)."""
    def canonical(df: pd.DataFrame) -> list[str]:
        return sorted(json.dumps({k: _plain(v) for k, v in r.items()}, sort_keys=True, default=str)
                      for r in df.to_dict(orient="records"))
    return canonical(left) == canonical(right)


def split_valid_records(df: pd.DataFrame, source: str) -> tuple[pd.DataFrame, list[str]]:
    """Validate ``df`` row by row: returns the valid rows and one note per skipped row (for display)."""
    try:
        return validate_results(df), []
    except ResultsError:
        pass
    valid, notes = [], []
    for position in range(len(df)):
        row = df.iloc[[position]]
        try:
            checked = validate_results(row)
            _timestamps(checked)
        except ResultsError as err:
            notes.append(f"{source}, record {position}: skipped ({err})")
            continue
        valid.append(checked)
    if not valid:
        return validate_results(pd.DataFrame(columns=list(RESULT_FIELDS))), notes
    return validate_results(pd.concat(valid, ignore_index=True)), notes

"""The results schema: long-format records, one per (dataset, config, split, model, revision, metric).

Every ranking run, published leaderboard and ground-truth comparison reads and writes this one
schema, so a results file from ``hf-tsel rank --output`` can be pushed or compared as is.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame([empty_record(dataset="d", split="train", model="m", metric="logme", score=1.0)])
    >>> validate_results(df)["rank"].tolist()
    [1]
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import ResultsError

__all__ = ["RESULTS_SCHEMA_VERSION", "RESULT_FIELDS", "ResultsError", "empty_record", "add_ranks", "best_first",
           "rank_interval_text", "validate_results", "write_results", "read_results", "RESULT_SCHEMA", "ResultField",
           "schema_markdown", "written_files"]

RESULTS_SCHEMA_VERSION = "1.3"
# 1.1 added p_top1, rank_low, rank_high (the consensus's confidence); 1.0 files load with them empty.
# 1.2 added race_round, race_epochs (rows of the fine-tuning race, metric "race"); older files load with them empty.
# 1.3 added goal (what the consensus rows answer: finetune or linear-probe); older files load with it empty.
_READABLE_VERSIONS = {"1.0", "1.1", "1.2", RESULTS_SCHEMA_VERSION}


@dataclass(frozen=True)
class ResultField:
    """One column of the results schema: its name, value kind, whether it may be null, and what it means."""

    name: str
    kind: str  # "str", "int" or "float"; checked by validate_results
    nullable: bool
    doc: str

    @property
    def type_text(self) -> str:
        return f"{self.kind} or null" if self.nullable else self.kind


# The one definition of the schema; docs/publish.md and the dataset cards show schema_markdown().
RESULT_SCHEMA: tuple[ResultField, ...] = (
    ResultField("schema_version", "str", False, f'version of this record format (currently "{RESULTS_SCHEMA_VERSION}")'),
    ResultField("dataset", "str", False, "target dataset: Hub id or local path"),
    ResultField("config", "str", True, "dataset configuration (subset), if any"),
    ResultField("split", "str", False, "dataset split the features were extracted from"),
    ResultField("dataset_revision", "str", True, "resolved dataset commit sha or content fingerprint"),
    ResultField("model", "str", False, "short model name (zoo entry)"),
    ResultField("model_id", "str", False, "Hub id (or local path) of the model"),
    ResultField("model_revision", "str", True, "resolved model commit sha (or local content hash)"),
    ResultField("family", "str", False, "model family, e.g. supervised-cnn, dino, mae, clip"),
    ResultField("pretraining", "str", False, "pre-training method, e.g. supervised, self-supervised"),
    ResultField("metric", "str", False, "transferability metric (registry name, see `hf-tsel metrics`)"),
    ResultField("score", "float", True, "metric value, higher is better; null when the metric failed or does not apply"),
    ResultField("rank", "int", True, "1 = best score within dataset/config/split/metric (recomputed after every merge)"),
    ResultField("p_top1", "float", True, "consensus rows: calibrated probability that the model is truly the best "
                "of the run's models after training (hf_tsel.recommendation)"),
    ResultField("rank_low", "int", True, "consensus rows: lower end of the 90 % bootstrap interval of the rank"),
    ResultField("rank_high", "int", True, "consensus rows: upper end of the 90 % bootstrap interval of the rank"),
    ResultField("goal", "str", True, 'consensus rows: what the answer was chosen for, "finetune" or "linear-probe" '
                "(--goal; the answer's metric and P(best) calibration depend on it)"),
    ResultField("race_round", "int", True, 'race rows (metric "race", score = validation accuracy): the last round '
                "the model ran in (1 = first; the winner ran in the last)"),
    ResultField("race_epochs", "int", True, "race rows: epochs the model was fine-tuned for in the race"),
    ResultField("num_samples", "int", False, "number of target images the score was computed on"),
    ResultField("num_classes", "int", False, "number of target classes"),
    ResultField("seed", "int", False, "random seed (sub-sampling and stochastic metrics)"),
    ResultField("tool_version", "str", False, "hf-tsel version that produced the record"),
    ResultField("timestamp", "str", False, "ISO-8601 UTC time of the run; the newer record wins when a key is pushed again"),
    ResultField("hardware", "str", False, "device the features and scores were computed on"),
    ResultField("seconds", "float", True, "time spent computing the metric"),
    ResultField("extraction_seconds", "float", True, "time spent extracting the model's features"),
    ResultField("run_id", "str", False, "identifier of the run that produced the record"),
    ResultField("ground_truth_accuracy", "float", True, "fine-tuned accuracy of the model on the dataset, when measured"),
    ResultField("ground_truth_protocol", "str", True, "how the ground-truth accuracy was measured"),
    ResultField("note", "str", True, 'why a score is missing ("not applicable: ...", "failed: ...")'),
)
RESULT_FIELDS: tuple[str, ...] = tuple(f.name for f in RESULT_SCHEMA)
_SCHEMA: dict[str, tuple[str, bool]] = {f.name: (f.kind, f.nullable) for f in RESULT_SCHEMA}
_GROUP = ["dataset", "config", "split", "metric"]


def schema_markdown() -> str:
    """The schema as a Markdown table (field, type, meaning), as shown in docs/publish.md and dataset cards."""
    rows = [f"| `{f.name}` | {f.type_text} | {f.doc} |" for f in RESULT_SCHEMA]
    return "\n".join(["| field | type | meaning |", "|---|---|---|", *rows])


def empty_record(**values: Any) -> dict[str, Any]:
    """A record with every field present (``None`` where not given); unknown fields raise."""
    unknown = sorted(set(values) - set(RESULT_FIELDS))
    if unknown:
        raise ResultsError(f"unknown result field(s) {unknown}; the schema fields are {list(RESULT_FIELDS)}")
    record = dict.fromkeys(RESULT_FIELDS)
    record.update(schema_version=RESULTS_SCHEMA_VERSION, family="unknown", pretraining="unknown", model_id="",
                  num_samples=0, num_classes=0, seed=0, tool_version="", timestamp="", hardware="", run_id="")
    record.update(values)
    if not record["model_id"]:
        record["model_id"] = record["model"]
    return record


def add_ranks(df: pd.DataFrame) -> pd.DataFrame:
    """Set ``rank`` (1 = highest score) within each dataset/config/split/metric; NaN scores get no rank.

    Race rows rank by the round they reached first, then by score: a later round beats any earlier one.
    """
    df = df.copy()
    keys = df[_GROUP].astype(object).where(df[_GROUP].notna(), "")
    order = df["score"].astype(float)
    if "race_round" in df.columns:  # validation accuracies lie in [0, 1], so the round dominates
        order = order + 2 * pd.to_numeric(df["race_round"], errors="coerce").fillna(0)
    ranks = order.groupby([keys[c] for c in _GROUP], sort=False).rank(method="min", ascending=False)
    df["rank"] = ranks.astype("Int64")
    return df


def best_first(rows: pd.DataFrame) -> pd.DataFrame:
    """One metric's rows best first: by ``rank``, then higher ``p_top1`` (the consensus's tie-break), then model name;
    rows without a rank last. The CLI, the Space and :func:`hf_tsel.recommend` all order models this way."""
    columns = [c for c in ("rank", "p_top1", "model") if c in rows.columns]
    return rows.sort_values(columns, ascending=[c != "p_top1" for c in columns], na_position="last")


def rank_interval_text(low: Any, high: Any, missing: str = "") -> str:
    """A rank interval as people see it: ``#2`` when both ends agree, else ``#1-3``; ``missing`` when there is none.

    Example:
        >>> rank_interval_text(1, 3), rank_interval_text(2, 2), rank_interval_text(None, None, "n/a")
        ('#1-3', '#2', 'n/a')
    """
    if pd.isna(low) or pd.isna(high):
        return missing
    return f"#{int(low)}" if low == high else f"#{int(low)}-{int(high)}"


def _check_kind(df: pd.DataFrame, name: str, kind: str, nullable: bool) -> None:
    column = df[name]
    present = column[column.notna()]
    if not nullable and len(present) < len(column):
        raise ResultsError(f"column {name!r} has {len(column) - len(present)} missing value(s); it is required")
    if kind == "str":
        ok = present.map(lambda v: isinstance(v, str))
    elif kind == "int":
        ok = present.map(lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)
                         or isinstance(v, numbers.Real) and float(v).is_integer())
    else:
        ok = present.map(lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool))
    bad = present[~ok.astype(bool)]
    if len(bad):
        raise ResultsError(f"column {name!r} must hold {kind} values; row {bad.index[0]} has {bad.iloc[0]!r}")


def validate_results(df: pd.DataFrame) -> pd.DataFrame:
    """Check a results table against the schema and return it with canonical column order and dtypes.

    Missing optional columns are added (``None``); a missing ``rank`` is computed from ``score``.
    """
    if not isinstance(df, pd.DataFrame):
        raise ResultsError(f"expected a pandas DataFrame, got {type(df).__name__}")
    df = df.copy()
    missing = [name for name, (_, nullable) in _SCHEMA.items() if not nullable and name not in df.columns]
    if missing:
        raise ResultsError(f"results lack the required column(s) {missing}")
    for name in RESULT_FIELDS:
        if name not in df.columns:
            df[name] = None
    extra = sorted(set(df.columns) - set(RESULT_FIELDS))
    if extra:
        raise ResultsError(f"unknown column(s) {extra}; the schema fields are {list(RESULT_FIELDS)}")
    df = df[list(RESULT_FIELDS)]
    for name, (kind, nullable) in _SCHEMA.items():
        _check_kind(df, name, kind, nullable)
    versions = set(df["schema_version"])
    if versions - _READABLE_VERSIONS:
        raise ResultsError(f"schema_version {sorted(versions)} is not supported; this tool reads {sorted(_READABLE_VERSIONS)}")
    df["schema_version"] = RESULTS_SCHEMA_VERSION  # older files are upgraded: their new columns are empty
    df["score"] = df["score"].astype(float)
    if df["rank"].isna().all() and df["score"].notna().any():
        df = add_ranks(df)
    for name in ("rank", "rank_low", "rank_high", "race_round", "race_epochs", "num_samples", "num_classes", "seed"):
        df[name] = df[name].astype("Int64")
    for name in ("seconds", "extraction_seconds", "ground_truth_accuracy", "p_top1"):
        df[name] = df[name].astype(float)
    for name, (kind, _) in _SCHEMA.items():
        if kind == "str":  # one representation whatever the reader produced: Python str or None
            df[name] = pd.Series([None if pd.isna(v) else v for v in df[name]], index=df.index, dtype=object)
    return df.reset_index(drop=True)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is None:
        return None
    return value.item() if hasattr(value, "item") else value


def _run_file(path: Path) -> Path:
    """The ``<name>.run.json`` beside a ``.csv`` results file: its run metadata."""
    return path.with_name(f"{path.stem}.run.json")


def written_files(path: str | Path) -> list[Path]:
    """Every file :func:`write_results` writes for ``path`` (a ``.csv`` has its run metadata beside it).

    Example:
        >>> [p.name for p in written_files("out/results.csv")]
        ['results.csv', 'results.run.json']
    """
    path = Path(path)
    return [path, _run_file(path)] if path.suffix.lower() == ".csv" else [path]


def write_results(df: pd.DataFrame, path: str | Path, run_metadata: dict | None = None) -> Path:
    """Write validated results to ``.csv``, ``.json`` or ``.parquet`` (chosen by the suffix).

    ``.json`` holds ``{"schema_version", "run": run_metadata, "records": [...]}``; ``.parquet`` keeps
    the run metadata in the file's key-value metadata (key ``hf_tsel.run``); ``.csv`` writes a
    ``<name>.run.json`` next to it. Files are written to a temporary name first, then renamed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json", ".parquet"):
        raise ResultsError(f"unsupported results file {path.name!r}; use a .csv, .json or .parquet suffix")
    df = validate_results(df)
    run = dict(run_metadata or {})  # a RunInfo (hf_tsel.run_info) or a plain mapping
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if suffix == ".csv":
        df.to_csv(tmp, index=False)
        _run_file(path).write_text(json.dumps(run, indent=2, default=str), encoding="utf-8")
    elif suffix == ".json":
        records = [{k: _json_safe(v) for k, v in row.items()} for row in df.to_dict(orient="records")]
        document = {"schema_version": RESULTS_SCHEMA_VERSION, "run": run, "records": records}
        tmp.write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        plain = df.copy(deep=False)
        plain.attrs = {**df.attrs, **({"run": dict(df.attrs["run"])} if "run" in df.attrs else {})}  # JSON-ready
        table = pa.Table.from_pandas(plain, preserve_index=False)
        metadata = {**(table.schema.metadata or {}), b"hf_tsel.run": json.dumps(run, default=str).encode()}
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
    tmp.replace(path)
    return path


_RESULTS_FIX = "pass a results file written by `hf-tsel rank --output` (.csv, .json or .parquet)."


def read_csv_table(path: Path, *, fix: str = _RESULTS_FIX, **options: Any) -> pd.DataFrame:
    """``pd.read_csv``, with a :class:`ResultsError` naming the file when it is not a readable csv."""
    try:
        return pd.read_csv(path, **options)
    except (OSError, ValueError) as exc:  # UnicodeDecodeError, ParserError, EmptyDataError are ValueErrors
        raise ResultsError(f"{path} cannot be read as a csv table ({_first_line(exc)})", fix=fix) from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def read_results(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Read a results file written by :func:`write_results`; returns ``(validated table, run metadata)``."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results file {path} does not exist")
    try:
        df, run = _read_results_file(path)
    except ResultsError:
        raise
    except (OSError, ValueError) as exc:  # broken JSON / parquet / csv, or not text at all
        raise ResultsError(f"{path} cannot be read as a results file ({_first_line(exc)})", fix=_RESULTS_FIX) from None
    for name in ("score", "seconds", "extraction_seconds", "ground_truth_accuracy", "p_top1"):
        if name in df.columns:
            df[name] = pd.to_numeric(df[name], errors="coerce")
    try:
        return validate_results(df), run
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc.problem}", fix=exc.fix or _RESULTS_FIX) from None


def _read_results_file(path: Path) -> tuple[pd.DataFrame, dict]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        df = pd.read_csv(path, dtype={name: str for name, (kind, _) in _SCHEMA.items() if kind == "str"})
        df = df.astype(object).where(df.notna(), None)
        run_file = _run_file(path)
        run = json.loads(run_file.read_text(encoding="utf-8")) if run_file.is_file() else {}
    elif suffix == ".json":
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or "records" not in document:
            raise ResultsError(f"{path} is not an hf-tsel results file (no 'records' list)")
        df, run = pd.DataFrame(document["records"]), document.get("run", {})
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(b"hf_tsel.run")
        df, run = table.to_pandas(), json.loads(raw) if raw else {}
    else:
        raise ResultsError(f"unsupported results file {path.name!r}; use a .csv, .json or .parquet suffix")
    return df, run

"""Options and output shared by ``hf-tsel rank`` and ``hf-tsel demo``: the leaderboard table and result files."""

from __future__ import annotations

import argparse
import math
import warnings
from typing import TYPE_CHECKING, Any

from ..defaults import ANSWER_METRIC
from ..run_info import RunInfo
from ._args import check_output_file, non_negative_int
from ._race import print_race

if TYPE_CHECKING:
    import pandas as pd


def add_run_options(parser: argparse.ArgumentParser, *, default_metrics_help: str) -> None:
    """Metric, extraction, cache and output options common to ``rank`` and ``demo``."""
    from ..defaults import DEFAULT_GOAL, DEFAULT_N_BOOT, GOALS
    from ._options import add_extraction_options

    parser.add_argument("--metrics", help=f"comma-separated metric names (see `hf-tsel metrics`); the answer's own "
                                          f"metric (by --goal) is always scored too; {default_metrics_help}")
    parser.add_argument("--show-metrics", action="store_true",
                        help="show every metric's score and rank next to the consensus (implied by --metrics)")
    parser.add_argument("--n-boot", type=non_negative_int, default=DEFAULT_N_BOOT, metavar="B",
                        help=f"bootstrap resamples behind P(best) and the rank interval (default {DEFAULT_N_BOOT}; "
                             "0: none, and P(best) then cannot see sampling noise)")
    parser.add_argument("--goal", choices=GOALS, default=DEFAULT_GOAL,
                        help=f"what you will train on the chosen backbone; it picks the answer's metric and its "
                             f"P(best) calibration (default {DEFAULT_GOAL})")
    add_extraction_options(parser, seed_help="seed of the sampling and of stochastic metrics (default 0)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write cached features")
    parser.add_argument("--output", "-o", action="append", default=[],
                        help="write all scores and run metadata to .csv, .json or .parquet (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output files that already exist")


def check_outputs(paths: list[str], *, overwrite: bool = False) -> None:
    """Fail before any work if an output file, or the run metadata a ``.csv`` writes beside it, cannot (or, without
    ``overwrite``, must not) be written."""
    from ..errors import UserError
    from ..results import written_files

    for path in paths:
        if not path.lower().endswith((".csv", ".json", ".parquet")):
            raise UserError(f"unsupported output file {path!r}; use a .csv, .json or .parquet suffix")
        for written in written_files(path):
            option = "--output" if str(written) == path else f"the run metadata file of --output {path!r}:"
            check_output_file(str(written), option, overwrite=overwrite)


def _cell(value: float, rank: Any) -> str:
    import pandas as pd

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3g}\n#{int(rank)}" if rank is not None and not pd.isna(rank) else f"{value:.3g}"


def _leaderboard_order(df: pd.DataFrame, models: list[dict], metrics: list[str]) -> list[dict]:
    """Models best first (:func:`hf_tsel.results.best_first`) by the consensus, else by the first metric; models
    without a row of it last."""
    from ..results import best_first

    key_metric = ANSWER_METRIC if (df["metric"] == ANSWER_METRIC).any() else (metrics[0] if metrics else None)
    order = dict.fromkeys(best_first(df[df["metric"] == key_metric])["model"]) if key_metric else {}
    position = {name: i for i, name in enumerate(order)}
    return sorted(models, key=lambda model: position.get(model["name"], len(position)))


def _confidence_cells(df: pd.DataFrame) -> dict[str, tuple[str, str]]:
    import pandas as pd

    from ..results import rank_interval_text

    cells = {}
    for r in df[df["metric"] == ANSWER_METRIC].itertuples():
        p = "n/a" if pd.isna(r.p_top1) else f"{r.p_top1:.2f}"
        cells[r.model] = (p, rank_interval_text(r.rank_low, r.rank_high, missing="n/a"))
    return cells


def _samples_used(df: pd.DataFrame, run: RunInfo) -> str:
    """``"10 samples"``, or ``"10 of 11 samples used"`` when undecodable images (or thin classes) were left out."""
    sampled = run.num_samples
    scored = df.loc[df["score"].notna(), "num_samples"]
    used = int(scored.max()) if len(scored) else sampled
    if sampled is None or used is None or used == sampled:
        return f"{sampled if sampled is not None else '?'} samples"
    return f"{used} of {sampled} samples used"


def print_leaderboard(df: pd.DataFrame, *, show_metrics: bool = False) -> None:
    """One row per model sorted by consensus, with P(best) and the 90 % rank interval; then the recommendation.

    ``show_metrics`` adds one column per metric (score and rank).
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    run = RunInfo.of(df.attrs.get("run")) or RunInfo()
    metrics = [m for m in run.metrics or list(dict.fromkeys(df["metric"])) if m != ANSWER_METRIC]
    models = run.models or [{"name": m} for m in dict.fromkeys(df["model"])]
    has_consensus = bool((df["metric"] == ANSWER_METRIC).any())
    shown = [ANSWER_METRIC] * has_consensus + (metrics if show_metrics or not has_consensus else [])
    shown += ["race"] * bool((df["metric"] == "race").any())  # the --confirm race's validation accuracy, #rank
    classes = run.num_classes if run.num_classes is not None else "?"
    title = (f"{run.dataset} [{run.split}]: {_samples_used(df, run)}, "
             f"{classes} classes (score and #rank, higher is better; sorted by consensus)")
    console = Console()
    console.print(escape(title), highlight=False)
    table = Table()
    table.add_column("model", style="bold", overflow="fold")
    cells = {(r.model, r.metric): _cell(r.score, r.rank) for r in df.itertuples()}
    confidence = _confidence_cells(df)
    for metric in shown:
        # never wrap or cut a number: a metric column is as wide as its widest value
        width = max([len(line) for m in models for line in cells.get((m["name"], metric), "n/a").split("\n")] + [4])
        table.add_column(metric, justify="right", no_wrap=True, min_width=width)
        if metric == ANSWER_METRIC:
            table.add_column("P(best)", justify="right", no_wrap=True)
            table.add_column("rank 90%", justify="right", no_wrap=True)
    table.add_column("features", overflow="fold")
    for model in _leaderboard_order(df, models, metrics):
        name = model["name"]
        status = model.get("status", "")
        if status == "failed":
            status = "failed (see below)"
        row = []
        for metric in shown:
            row.append(cells.get((name, metric), "n/a"))
            if metric == ANSWER_METRIC:
                row += list(confidence.get(name, ("n/a", "n/a")))
        table.add_row(escape(name), *row, status)
    console.print(table)
    for model in models:
        if model.get("error"):
            print(f"  {model['name']}: {model['error']}")
    for who, metric, note in _note_lines(df, {m["name"] for m in models if m.get("status") == "failed"}):
        print(f"  {who} / {metric}: {note}")
    if run.stage_seconds:
        print("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in run.stage_seconds.items()))
    print_recommendation(run.recommendation or {})
    print_race(run)


def _note_lines(df: pd.DataFrame, failed: set[str]) -> list[tuple[str, str, str]]:
    """``(models, metrics, note)`` per distinct note of an unscored cell, naming every model and metric it
    concerns: a model-set metric that failed for the whole set must not be pinned on whichever model came first.
    Failed models are left out (their own error line says why)."""
    unscored = df[df["note"].notna() & df["score"].isna() & ~df["model"].isin(failed)]
    lines = []
    for note, group in unscored.groupby("note", sort=False):
        models, metrics = list(dict.fromkeys(group["model"])), ", ".join(dict.fromkeys(group["metric"]))
        who = models[0] if len(models) == 1 else (f"{len(models)} models ({', '.join(models[:5])}"
                                                  + (", ...)" if len(models) > 5 else ")"))
        lines.append((who, metrics, note))
    return lines


def print_recommendation(recommendation: dict) -> None:
    """The recommendation line, the consensus members (and those dropped, with why) and the sample-size warning."""
    if not recommendation:
        return
    members = ", ".join(recommendation["members"])
    dropped = "; ".join(f"{m} dropped: {why}" for m, why in recommendation.get("dropped", {}).items())
    print(f"  answer for goal {recommendation['goal']}: consensus of {members} "
          f"(by {recommendation['rule']}, {recommendation['n_boot']} bootstrap resamples)"
          + (f"; {dropped}" if dropped else ""))
    print(recommendation["line"])
    if recommendation.get("advice"):
        print(f"warning: {recommendation['advice']}")


def write_outputs(df: pd.DataFrame, paths: list[str]) -> None:
    from ..results import write_results

    from ..errors import UserError

    for path in paths:
        try:
            write_results(df, path, df.attrs.get("run", {}))
        except OSError as exc:
            raise UserError(f"cannot write {path!r} ({exc.strerror or exc}); the features are cached, so the same "
                            "command with another --output re-ranks without extracting again") from None
        print(f"wrote {path}")


def exit_code(df: pd.DataFrame) -> int:
    """0 if every model was scored; 3 if some failed; 2 (with a message) if no model got a finite score."""
    import sys

    import numpy as np

    from ..errors import EXIT_PARTIAL_FAILURE, EXIT_USER_ERROR

    models = (RunInfo.of(df.attrs.get("run")) or RunInfo()).models
    failed = [m["name"] for m in models if m["status"] == "failed"]
    scores = df["score"].astype(float)
    if not np.isfinite(scores).any():
        if len(failed) == len(models):
            why = f"all {len(models)} model(s) failed"
        elif failed:
            why = f"{len(failed)} of {len(models)} model(s) failed and the others got only NaN scores"
        else:
            why = f"every score of the {len(models)} model(s) is NaN or not applicable"
        print(f"error: no model got a score ({why}). Fix the problems listed above (model errors, metric notes) "
              "and run again.", file=sys.stderr)
        return EXIT_USER_ERROR
    if failed:
        print(f"warning: {len(failed)} of {len(models)} models failed ({', '.join(failed[:10])}); the others are "
              "ranked. See the reasons above.", file=sys.stderr)
        return EXIT_PARTIAL_FAILURE
    return 0


def plain_warnings() -> None:
    """Print warnings as one ``warning: ...`` line each, without the source line."""
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001 (warnings API)
        import sys

        print(f"warning: {message}", file=sys.stderr)

    warnings.showwarning = show

"""Rank a zoo of backbones on a dataset: :func:`hf_tsel.extract` the features, score them, build the results table.

Example:
    >>> import hf_tsel
    >>> df = hf_tsel.rank("uoft-cs/cifar10", split="test", samples_per_class=20)  # doctest: +SKIP
    >>> df[df.metric == "logme"].sort_values("rank")[["model", "score"]]  # doctest: +SKIP
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from ._version import __version__
from .budget import Budget
from .data import ImageDataset
from .defaults import ANSWER_METRIC, DEFAULT_GOAL, DEFAULT_METRICS, DEFAULT_N_BOOT, DEFAULT_ZOO, GOALS
from .errors import UserError
from .extraction import ExtractionEvent, ModelOutcome, attach_source_references, extract, resolve_models
from .funnel_extract import budgeted_extract
from .hardware import describe_hardware
from .hub_zoo import zoo_query
from .metrics import InputKind, MetricSpec, get_metric
from .metrics.consensus import answer_config
from .recommendation import consensus_records
from .results import RESULT_FIELDS, add_ranks, empty_record, validate_results
from .run_info import RunInfo
from .sampling import check_n_boot
from .scoring import (check_metadata_priors, checked_metric_params, drop_non_finite_models, drop_thin_classes,
                      resolve_metrics, score_models)

__all__ = ["DEFAULT_METRICS", "DEFAULT_ZOO", "rank"]


def rank(dataset: Any, *, zoo: str | Path | None = None, models: Sequence[str] | None = None,
         metrics: Iterable[str] | str | None = None, split: str = "train", config: str | None = None,
         revision: str | None = None, image_column: str | None = None, label_column: str | None = None,
         samples_per_class: int | None = None, max_samples: int | None = None, seed: int = 0, batch_size: int = 64,
         num_workers: int = 0, device: str | None = None, precision: str = "auto",
         cache_dir: str | Path | None = None, use_cache: bool = True, from_cache: bool = False,
         allow_pickle: bool = False, trust_remote_code: bool = False, loader: str | None = None,
         chunk_size: int = 512, parallel: str = "auto", metric_params: dict[str, dict] | None = None,
         on_event: Callable[[ExtractionEvent], None] | None = None, missing_fix: str | None = None,
         n_boot: int = DEFAULT_N_BOOT, goal: str = DEFAULT_GOAL, budget: Budget | str | None = None,
         race: bool = False) -> pd.DataFrame:
    """Rank backbones by transferability to ``dataset``; returns long-format results (``hf_tsel.results``).

    Metric names and parameters, the zoo and the cache folder are checked before any data is
    read. Features come from :func:`hf_tsel.extract` (cached per model; a re-run, even with other
    metrics, loads no model). A model that fails (resolving, loading or extracting) is reported
    with a one-line reason (``df.attrs["run"]["models"]``) and skipped; metrics that need a source
    classifier head get NaN with a ``note`` for models without one. ``persistence_ratio`` (a model
    prior) scores each model's embeddings of the source reference images its zoo entry names
    (``source_reference``, :mod:`hf_tsel.source_reference`), extracted once per model and cached.
    Run metadata is in ``df.attrs["run"]`` (a frozen :class:`hf_tsel.run_info.RunInfo`). Under a multi-process
    launch only the main process scores; the others return an empty table without ``attrs["run"]``.

    Args:
        metrics: registry names (default :data:`DEFAULT_METRICS`), e.g. ``["logme", "ped+logme", "etran"]``; the
            members of the goal's answer are scored too (the answer line names them).
        metric_params: ``{metric_name: {param: value}}``.
        n_boot: bootstrap resamples behind the consensus's ``p_top1``/rank interval (0: none). Every run
            adds ``consensus`` rows (:func:`hf_tsel.recommendation.consensus_records`) and
            ``df.attrs["run"]["recommendation"]`` (the recommendation line and warnings).
        goal: what you will train on the chosen backbone, ``"finetune"`` (default) or ``"linear-probe"``;
            it picks the answer's consensus and calibration (:data:`hf_tsel.metrics.consensus.ANSWERS`).
        from_cache: score only cached features (load no model); raises
            :class:`hf_tsel.extraction.MissingFeaturesError` naming the models without any.
        budget: a time budget (``"30m"`` or a :class:`hf_tsel.budget.Budget`) for the whole run: the candidates
            are extracted and scored cheapest first (cached ones first) while their estimated cost fits
            (:mod:`hf_tsel.funnel`); ``df.attrs["run"]["funnel"]`` names the models left out and what finishing
            them would cost. ``race``: a race follows (``--confirm``), so the funnel spends at most half of it.
            An epoch budget, or ``from_cache``, leaves the ranking unbounded.
        All other arguments are those of :func:`hf_tsel.extract`.
    """
    started = time.perf_counter()
    check_n_boot(n_boot)
    if goal not in GOALS:
        raise UserError(f"unknown goal {goal!r}", fix=f"use one of {', '.join(GOALS)}: what you will train on the chosen backbone.")
    specs = _with_answer_members(resolve_metrics(metrics), goal)
    metric_params = checked_metric_params(specs, metric_params)
    entries = resolve_models(zoo, models, loader=loader)  # the zoo is read (or searched) once, here
    check_metadata_priors(specs, entries)
    budget = _parsed_budget(budget)
    options = dict(split=split, config=config, revision=revision, image_column=image_column, label_column=label_column,
                   samples_per_class=samples_per_class, max_samples=max_samples, seed=seed, batch_size=batch_size,
                   num_workers=num_workers, device=device, precision=precision, cache_dir=cache_dir,
                   use_cache=use_cache, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code, loader=loader,
                   chunk_size=chunk_size, parallel=parallel, on_event=on_event, missing_fix=missing_fix)
    funnel = None
    if budget is not None and budget.is_time and not from_cache:
        extraction, funnel = budgeted_extract(dataset, budget=budget, race=race, metrics=[s.name for s in specs],
                                              n_boot=n_boot, started=started, models=entries, **options)
    else:
        extraction = extract(dataset, models=entries, from_cache=from_cache, **options)
    outcomes = [o for o in extraction.values() if o.status != "left_out"]
    if funnel is not None and not outcomes and extraction.is_main_process:
        report = funnel.report(budget, race=race)
        raise UserError(f"the budget {budget} covers none of the {len(report['left_out'])} candidates (the cheapest "
                        f"needs about {min(m['estimated_seconds'] for m in report['left_out']):.0f} s here)",
                        fix=f"pass --budget {report['budget_to_finish']} (covers all of them) or a smaller zoo.")
    if any(s.consumes is InputKind.REFERENCE_FEATURES for s in specs):  # every process: the extraction is collective
        outcomes = attach_source_references(
            outcomes, from_cache=from_cache, batch_size=batch_size, num_workers=num_workers, device=device,
            precision=precision, cache_dir=cache_dir, use_cache=use_cache, allow_pickle=allow_pickle,
            trust_remote_code=trust_remote_code, chunk_size=chunk_size, parallel=parallel, on_event=on_event)
    if not extraction.is_main_process:
        return pd.DataFrame(columns=list(RESULT_FIELDS))  # only the main process scores and reports
    # before the model-set metrics and the consensus, which compare all models
    outcomes = drop_thin_classes(drop_non_finite_models(outcomes), extraction.data)
    timings = dict(extraction.seconds)
    tick = time.perf_counter()
    scored = score_models([s for s in specs if s.name != ANSWER_METRIC], outcomes, extraction.data.labels, seed=seed,
                          device=extraction.device, metric_params=metric_params)
    consensus, recommendation = consensus_records(outcomes, extraction.data.labels, scored, goal=goal, seed=seed,
                                                  device=extraction.device, n_boot=n_boot)
    scored += consensus
    timings["metrics"] = time.perf_counter() - tick
    timings["total"] = time.perf_counter() - started
    df, run = _results_table(extraction.data, outcomes, scored, specs, seed=seed, timings=timings, zoo=zoo,
                             hardware=describe_hardware(extraction.device, extraction.num_processes))
    df.attrs["run"] = RunInfo(**run, cache_dir=None if extraction.cache_dir is None else str(extraction.cache_dir),
                              cache_error=extraction.cache_error, parallel=extraction.parallel,
                              num_processes=extraction.num_processes, recommendation=recommendation,
                              zoo_query=zoo_query(zoo) if zoo else None,
                              funnel=None if funnel is None else funnel.report(budget, race=race))
    return df


def _with_answer_members(specs: list[MetricSpec], goal: str) -> list[MetricSpec]:
    """The metrics asked for, then the answer's members that are not among them: the answer line names its metric,
    so its scores are in the table too (reused by the answer, not computed twice)."""
    names = {s.name for s in specs}
    return [*specs, *(get_metric(m) for m in answer_config(goal).members if m not in names)]


def _parsed_budget(budget: Budget | str | None) -> Budget | None:
    if budget is None or isinstance(budget, Budget):
        return budget
    try:
        return Budget.parse(budget)
    except ValueError as exc:
        raise UserError(str(exc), fix="pass a duration such as '30m' or an epoch count such as '6ep'.") from None


def _results_table(data: ImageDataset, outcomes: Sequence[ModelOutcome], scored: list[dict], specs: Sequence[Any], *,
                   seed: int, timings: dict[str, float], zoo: Any, hardware: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The results records, and the run's metadata that they share (the fields of :class:`RunInfo` known here)."""
    run_id = uuid.uuid4().hex[:12]
    timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    by_name = {o.entry.name: o for o in outcomes}
    used = [data.labels[o.features.positions] for o in outcomes if o.features is not None]
    num_classes = len(np.unique(np.concatenate(used))) if used else data.num_classes  # after undecodable images
    common = dict(dataset=data.name, config=data.config, split=data.split, dataset_revision=data.revision or data.fingerprint,
                  num_classes=num_classes, seed=seed, tool_version=__version__, timestamp=timestamp,
                  hardware=hardware, run_id=run_id)
    rows = []
    for item in scored:
        o = by_name[item["model"]]
        rows.append(empty_record(**common, **item, model_id=o.entry.hub_id, model_revision=o.revision,
                                 family=o.entry.family, pretraining=o.entry.pretraining,
                                 num_samples=len(o.features.positions), extraction_seconds=o.extraction_seconds))
    for o in outcomes:
        if o.features is None:
            rows += [empty_record(**common, model=o.entry.name, model_id=o.entry.hub_id, family=o.entry.family,
                                  pretraining=o.entry.pretraining, metric=s.name, score=float("nan"),
                                  num_samples=data.num_samples, note=f"failed: {o.error}") for s in specs]
    df = validate_results(add_ranks(pd.DataFrame(rows, columns=list(RESULT_FIELDS))))
    run = {
        "run_id": run_id, "tool_version": __version__, "timestamp": timestamp, "dataset": data.name,
        "config": data.config, "split": data.split, "dataset_revision": data.revision,
        "dataset_fingerprint": data.fingerprint, "image_column": data.image_column, "label_column": data.label_column,
        "num_samples": data.num_samples, "num_classes": num_classes, "class_names": data.class_names,
        "seed": seed, "zoo": str(zoo) if zoo else None, "metrics": [s.name for s in specs], "hardware": hardware,
        "stage_seconds": {k: round(v, 3) for k, v in timings.items()},
        "models": [o.as_dict() for o in outcomes],
    }
    return df, run

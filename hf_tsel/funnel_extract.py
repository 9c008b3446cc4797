""":func:`budgeted_extract`: :func:`hf_tsel.extract` under a time budget, through the funnel (:mod:`hf_tsel.funnel`).

The dataset is sampled once; the candidates are costed on this device (:mod:`hf_tsel.funnel_costs`),
ordered (cached first, then cheapest first) and handed to ``extract``, which asks the funnel before
each model whether it still fits. Under a multi-process launch the main process's plan is used by all.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .budget import Budget
from .data import load_image_dataset
from .errors import UserError
from .extraction import Extraction, choose_parallel, extract, resolve_models
from .features import FeatureCache, effective_precision, entry_key, make_accelerator
from .features.scheduling import shard_entries, weight_bytes
from .funnel import LEFT_OUT, Funnel, estimate_candidates, funnel_seconds, order_candidates
from .funnel_costs import calibrate_forward, calibrate_scoring

__all__ = ["budgeted_extract"]


def _cached_names(entries: Sequence[Any], sample_key: str, cache_dir: str | Path | None, precision: str) -> set[str]:
    cache, digests = FeatureCache(cache_dir), {}
    return {e.name for e in entries if cache.has(entry_key(e, sample_key, precision=precision, digests=digests))}


def _agreed(value: Any, num_processes: int) -> Any:
    """``value`` as the main process computed it (timings differ between processes; the plan must not)."""
    if num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    box = [value]
    broadcast_object_list(box)
    return box[0]


def budgeted_extract(dataset: Any, *, budget: Budget, race: bool = False, metrics: Sequence[str] = (),
                     n_boot: int = 0, started: float | None = None, zoo: str | Path | None = None,
                     models: Sequence[Any] | None = None, loader: str | None = None,
                     shard: tuple[int, int] | None = None, split: str = "train", config: str | None = None,
                     revision: str | None = None, image_column: str | None = None, label_column: str | None = None,
                     samples_per_class: int | None = None, max_samples: int | None = None, seed: int = 0,
                     device: str | None = None, precision: str = "auto", cache_dir: str | Path | None = None,
                     use_cache: bool = True, parallel: str = "auto",
                     on_event: Callable[[Any], None] | None = None, **extract_options: Any) -> tuple[Extraction, Funnel]:
    """Extract what fits in ``budget`` (a duration); returns the extraction (models the budget did not reach have
    status ``"left_out"``) and the :class:`~hf_tsel.funnel.Funnel` (its ``report``).

    ``metrics`` and ``n_boot``: the scoring that follows (its estimated time is kept free); ``race``: a race
    follows, so the funnel takes half of the budget; ``started``: the run's start (``time.perf_counter()``,
    default now). Other arguments are those of :func:`hf_tsel.extract`.

    Example:
        >>> from hf_tsel.budget import Budget
        >>> result, funnel = budgeted_extract("uoft-cs/cifar10", zoo="hub:library=timm&max-params=30M",
        ...                                   budget=Budget.parse("10m"), split="test")  # doctest: +SKIP
        >>> funnel.report(Budget.parse("10m"))["left_out"]  # doctest: +SKIP
    """
    seconds = funnel_seconds(budget, race=race)
    if seconds is None:
        raise UserError(f"the funnel needs a time budget (such as 30m), got {budget}")
    started = time.perf_counter() if started is None else started
    entries = resolve_models(zoo, models, loader=loader)
    if shard is not None:
        entries = shard_entries(entries, *shard)
    accelerator = make_accelerator(device, precision)
    tick = time.perf_counter()
    with accelerator.main_process_first():
        data = load_image_dataset(dataset, split=split, config=config, revision=revision, image_column=image_column,
                                  label_column=label_column, samples_per_class=samples_per_class,
                                  max_samples=max_samples, seed=seed)
    data_seconds, tick = time.perf_counter() - tick, time.perf_counter()
    mode = choose_parallel(parallel, len(entries), accelerator.num_processes, use_cache)
    cached = _cached_names(entries, data.sample_key, cache_dir, effective_precision(accelerator)) if use_cache else set()
    rate = _agreed(calibrate_forward(str(accelerator.device)), accelerator.num_processes)
    score_seconds = _agreed(calibrate_scoring(metrics, data.labels, n_boot=n_boot, seed=seed),
                            accelerator.num_processes)
    calibration_seconds = time.perf_counter() - tick
    candidates = order_candidates(estimate_candidates(entries, rate=rate, num_samples=data.num_samples, cached=cached,
                                                      weight_bytes=weight_bytes))
    processes = accelerator.num_processes if mode == "zoo" else 1
    funnel = Funnel(candidates, seconds=seconds, started=started, score_seconds=score_seconds, processes=processes)
    planned, _ = funnel.plan()
    # zoo-parallel processes reorder their share by size, so they get only what the plan fits; a single process
    # walks every candidate in order and may still reach more than planned when estimates were pessimistic
    chosen = planned if mode == "zoo" and planned else candidates
    extraction = extract(data, models=[c.entry for c in chosen], device=device, precision=precision,
                         cache_dir=cache_dir, use_cache=use_cache, parallel=parallel, seed=seed,
                         admit=funnel.admit, on_event=funnel.watch(on_event), **extract_options)
    extraction.seconds.update(data=data_seconds, funnel_calibration=calibration_seconds)  # the sample was drawn here
    # in a zoo-parallel run each process admitted its own share: the main process reports from every outcome
    left = {name for name, outcome in extraction.items() if outcome.status == LEFT_OUT}
    funnel.admitted = [c.name for c in candidates if c.name in extraction and c.name not in left]
    funnel.left_out = [c.name for c in candidates if c.name not in funnel.admitted]
    return extraction, funnel

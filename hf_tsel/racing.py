"""Settle the answer by training: a successive-halving race among the top candidates of a ranking.

The top ``k`` models of a ranking are fine-tuned (every layer + a new linear head) on the ranked
split, with a stratified validation part carved from that same split (the test split is never
read). Round 1 trains every candidate for ``first_epochs``; each later round trains the survivors
for twice as many epochs as the round before, continuing the same run (one cosine schedule over the
longest path), and keeps the better half by validation accuracy until one model is left
(Jamieson & Talwalkar 2016; Li et al. 2018). Ties go to the model the ranking put higher.

Training is :func:`hf_tsel.groundtruth.finetune.train_grid_point` (seeded data order, per-epoch
checkpoints, accelerate); each finished (model, round) is recorded in ``race.json``, so a killed
race resumes where it stopped and ends exactly as an uninterrupted one.

Example:
    >>> halving_schedule(4)
    [Round(models=4, epochs=1), Round(models=2, epochs=3)]
    >>> race_cost(halving_schedule(4))
    8
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from .data import ImageDataset, load_image_dataset
from .defaults import ANSWER_METRIC, DEFAULT_RACE_K
from .errors import UserError
from .extraction import resolve_models
from .features import make_accelerator
from .groundtruth.finetune import FinetuneConfig, Grid, check_run_dir, point_name, train_grid_point
from .groundtruth.trainable import PreprocessedImages, trainable_backbone
from .paths import tsel_home
from .results import RESULT_FIELDS, add_ranks, empty_record

__all__ = ["Round", "RaceOutcome", "halving_schedule", "race_cost", "first_epochs_for", "race", "race_candidates",
           "race_line", "check_training_split", "by_validation"]

RACE_METRIC = "race"
STATE_FILE = "race.json"


@dataclass(frozen=True)
class Round:
    """``models`` race in this round, each trained until it has ``epochs`` epochs in total."""

    models: int
    epochs: int


def halving_schedule(k: int, first_epochs: int = 1) -> list[Round]:
    """The rounds of a race among ``k`` models: halve the field, double the round's epochs, until one is left."""
    if k < 2:
        raise UserError(f"a race needs at least 2 models, got {k}")
    rounds, models, added, total = [], k, first_epochs, 0
    while True:
        total += added
        rounds.append(Round(models, total))
        if models <= 2:
            return rounds
        models, added = math.ceil(models / 2), added * 2


def race_cost(rounds: Sequence[Round]) -> int:
    """Training epochs of a whole race (summed over models)."""
    return sum(r.models * (r.epochs - (rounds[i - 1].epochs if i else 0)) for i, r in enumerate(rounds))


def first_epochs_for(k: int, epochs: float) -> int:
    """The largest first-round length (whole epochs) whose race among ``k`` models fits ``epochs`` in total."""
    unit = race_cost(halving_schedule(k))
    if epochs < unit:
        raise UserError(f"a race among {k} models needs at least {unit} epochs (1 per model in the first round, "
                        f"then twice as many per round for the better half), but the budget is {epochs:g} epochs",
                        fix=f"raise --budget to {unit}ep, lower --confirm, or give a duration (e.g. 30m).")
    return int(epochs // unit)


@dataclass
class RaceOutcome:
    """What a race did: candidates, per-round validation accuracies, winner, and why it ended."""

    candidates: list[str]
    rounds: list[Round]
    validation: list[dict[str, float]] = field(default_factory=list)  # per round: model -> accuracy
    seconds: dict[str, float] = field(default_factory=dict)  # training seconds per model
    skipped: dict[str, str] = field(default_factory=dict)  # model -> why it could not race
    winner: str | None = None
    stopped: str | None = None  # why the race ended before its last round
    message: str | None = None  # why nothing was raced
    validation_images: int = 0
    classes: int = 0

    @property
    def epochs_run(self) -> int:
        return sum(len(accuracies) * (self.rounds[i].epochs - (self.rounds[i - 1].epochs if i else 0))
                   for i, accuracies in enumerate(self.validation))

    def last_round_of(self, model: str) -> int | None:
        """0-based index of the last round ``model`` ran in."""
        return max((i for i, accuracies in enumerate(self.validation) if model in accuracies), default=None)


def race_candidates(ranked: pd.DataFrame) -> list[str]:
    """Models of a ranking in answer order: by consensus score (else the run's first metric), unscored left out."""
    metrics = list(dict.fromkeys(ranked["metric"]))
    key = ANSWER_METRIC if ANSWER_METRIC in metrics else next((m for m in metrics if m != RACE_METRIC), None)
    rows = ranked[(ranked["metric"] == key) & ranked["score"].notna()]
    return rows.sort_values("score", ascending=False, kind="stable")["model"].tolist()


def check_training_split(split: str) -> None:
    """Refuse to race on a test split: the race trains on the split it is given."""
    if split.lower().startswith("test"):
        raise UserError(f"the race trains on the ranked split, and that is {split!r}",
                        fix="rank a training split (--split train) to race: the test split stays for testing.")


def _split_rows(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(training rows, validation rows)``: a stratified, seeded ``fraction`` of the sample for validation."""
    from sklearn.model_selection import train_test_split

    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        raise UserError(f"class {classes[counts.argmin()]!r} has {counts.min()} image(s) in the sample; the race holds "
                        "out part of every class for validation, so it needs at least 2 per class",
                        fix="raise --samples-per-class (or --max-samples).")
    size = min(max(math.ceil(fraction * len(labels)), len(classes)), len(labels) - len(classes))
    return train_test_split(np.arange(len(labels)), test_size=size, stratify=labels, random_state=seed)


def _signature(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _State:
    """``race.json``: every finished (round, model) with its validation accuracy and seconds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[str, dict[str, list[float]]] = json.loads(path.read_text()) if path.is_file() else {}

    def get(self, index: int, model: str) -> list[float] | None:
        return self.done.get(str(index), {}).get(model)

    def put(self, index: int, model: str, accuracy: float, seconds: float) -> None:
        self.done.setdefault(str(index), {})[model] = [accuracy, seconds]
        staging = self.path.with_suffix(".json.tmp")
        staging.write_text(json.dumps(self.done, indent=1))
        staging.replace(self.path)


def race(dataset: Any, ranked: pd.DataFrame, *, k: int = DEFAULT_RACE_K, epochs: float | None = None,
         seconds: float | None = None, zoo: str | Path | None = None, models: Sequence[str] | None = None,
         validation_fraction: float = 0.2, learning_rate: float = 0.01, batch_size: int = 16, seed: int = 0,
         device: str | None = None, precision: str = "auto", num_workers: int = 0, allow_pickle: bool = False,
         trust_remote_code: bool = False, work_dir: str | Path | None = None,
         on_progress: Callable[[dict], None] | None = None, **data_options: Any) -> pd.DataFrame:
    """Race the top ``k`` models of ``ranked`` by successive halving; returns their ``race`` results records.

    Args:
        dataset: the ranked dataset: an :class:`hf_tsel.data.ImageDataset` sample, or any source of
            :func:`hf_tsel.data.load_image_dataset` sampled with ``data_options`` (split, samples_per_class, ...)
            exactly as it was ranked. A split named ``test`` is refused.
        ranked: results of :func:`hf_tsel.rank` (the consensus rows order the candidates).
        epochs: training epochs of the whole race (sets the first round's length); default 1 per model in
            round 1. seconds: wall-clock cap; a round that would not fit (estimated from the rounds before)
            is not started and the best survivor so far wins.
        zoo, models: where the ranked models' entries come from (as for :func:`hf_tsel.rank`).
        work_dir: checkpoints and ``race.json`` (default ``$HF_TSEL_HOME/race``); a re-run resumes there.

    The records (metric ``race``) carry each raced model's last validation accuracy as ``score``,
    ``race_round`` and ``race_epochs``; ``df.attrs["race"]`` holds the :class:`RaceOutcome` as a dict
    and the answer line (``line``).

    Example:
        >>> df = hf_tsel.rank("uoft-cs/cifar10", samples_per_class=20)  # doctest: +SKIP
        >>> hf_tsel.race("uoft-cs/cifar10", df, k=3, samples_per_class=20).attrs["race"]["line"]  # doctest: +SKIP
    """
    if seconds is not None and seconds <= 0:
        return _records(ranked, RaceOutcome(race_candidates(ranked)[:k], [], message="no time is left for the race "
                                            "within the budget"), None)
    candidates = race_candidates(ranked)[:k]
    if k < 2 or len(candidates) < 2:
        why = f"--confirm {k} races one model" if k < 2 else f"only {len(candidates)} model(s) got a score"
        return _records(ranked, RaceOutcome(candidates, [], message=f"nothing to race ({why}); the answer stands"),
                        None)
    data = dataset if isinstance(dataset, ImageDataset) else load_image_dataset(dataset, seed=seed, **data_options)
    check_training_split(data.split)
    entries = {e.name: e for e in resolve_models(zoo, models or candidates)}
    fit_rows, val_rows = _split_rows(np.asarray(data.labels), validation_fraction, seed)
    trainables, skipped = _trainables(candidates, entries, allow_pickle=allow_pickle,
                                      trust_remote_code=trust_remote_code)
    racers = [m for m in candidates if m in trainables]
    if len(racers) < 2:
        outcome = RaceOutcome(candidates, [], skipped=skipped,
                              message=f"nothing to race: {len(racers)} of the top {k} can be fine-tuned here")
        return _records(ranked, outcome, data)
    rounds = halving_schedule(len(racers), 1 if epochs is None else first_epochs_for(len(racers), epochs))
    settings = _settings(rounds[-1].epochs, learning_rate, batch_size)
    root = Path(work_dir or tsel_home() / "race") / _signature(
        data.sample_key, validation_fraction, seed, settings.to_dict(), [entries[m].hub_id for m in racers])
    outcome = RaceOutcome(candidates, rounds, skipped=skipped, validation_images=len(val_rows),
                          classes=len(np.unique(data.labels)))
    run = _Runner(data, fit_rows, val_rows, trainables, settings, root, device=device, precision=precision,
                  num_workers=num_workers, seed=seed, on_progress=on_progress or (lambda event: None))
    _run_rounds(outcome, racers, run, seconds)
    return _records(ranked, outcome, data)


def _settings(horizon: int, learning_rate: float, batch_size: int):
    return FinetuneConfig(grid=Grid("sgd", (learning_rate,), (0.0,)), epochs=horizon, batch_size=batch_size,
                          augment=False, selection="best-epoch")


def _trainables(candidates: Sequence[str], entries: dict[str, Any], **options: Any) -> tuple[dict, dict[str, str]]:
    trainables, skipped = {}, {}
    for model in candidates:
        try:
            trainables[model] = trainable_backbone(entries[model], **options)
        except UserError as exc:
            skipped[model] = str(exc)
    return trainables, skipped


class _Runner:
    """Trains one model of the race up to a number of epochs (resuming its checkpoint); returns validation accuracy."""

    def __init__(self, data: Any, fit_rows: np.ndarray, val_rows: np.ndarray, trainables: dict, settings: Any,
                 root: Path, *, device: str | None, precision: str, num_workers: int, seed: int,
                 on_progress: Callable[[dict], None]) -> None:
        self.data, self.fit_rows, self.val_rows = data, fit_rows.tolist(), val_rows.tolist()
        self.trainables, self.settings, self.root, self.seed = trainables, settings, root, seed
        self.num_workers, self.on_progress = num_workers, on_progress
        self.accelerator = make_accelerator(device, precision)
        self.state = _State(root / STATE_FILE)

    def point_dir(self, model: str) -> Path:
        return self.root / hashlib.sha256(model.encode()).hexdigest()[:12] / point_name(
            self.settings.grid.learning_rates[0], 0.0, self.seed)

    def train(self, model: str, until: int) -> tuple[float, float]:
        trainable = self.trainables[model]
        images = PreprocessedImages(self.data, trainable.preprocessor)
        check_run_dir(self.point_dir(model).parent, self.settings)
        point = train_grid_point(
            trainable.build, trainable.feature_dim, len(self.data.class_names),
            torch.utils.data.Subset(images, self.fit_rows), torch.utils.data.Subset(images, self.val_rows),
            self.settings, self.settings.grid.learning_rates[0], 0.0, self.seed, self.point_dir(model),
            accelerator=self.accelerator, num_workers=self.num_workers, stop_after=until,
            on_epoch_end=lambda event: self.on_progress({"kind": "epoch", "model": model, **event}))
        return float(point["history"][until - 1]), float(point["seconds"])

    def forget(self, model: str) -> None:
        """Remove the checkpoint folder of an eliminated model (this race wrote it; its results are in race.json)."""
        shutil.rmtree(self.point_dir(model).parent, ignore_errors=True)


def by_validation(accuracies: dict[str, float], ranking: Sequence[str]) -> list[str]:
    """The models of a round, best validation accuracy first; ties go to the model ``ranking`` puts higher."""
    return sorted(accuracies, key=lambda m: (-accuracies[m], list(ranking).index(m)))


def _run_rounds(outcome: RaceOutcome, racers: list[str], run: _Runner, seconds: float | None) -> None:
    started, alive, per_epoch = time.perf_counter(), list(racers), {}
    for index, round_ in enumerate(outcome.rounds):
        added = round_.epochs - (outcome.rounds[index - 1].epochs if index else 0)
        if index and seconds is not None:
            needed = sum(per_epoch.get(m, 0.0) * added for m in alive)
            left = seconds - (time.perf_counter() - started)
            if needed > left:
                outcome.stopped = (f"stopped before round {index + 1} of {len(outcome.rounds)}: it needs about "
                                   f"{needed:.0f} s and the budget has {left:.0f} s left")
                break
        run.on_progress({"kind": "round", "round": index + 1, "rounds": len(outcome.rounds), "models": list(alive),
                         "epochs": added * len(alive), "epochs_each": added})
        accuracies = {}
        for model in alive:
            recorded = run.state.get(index, model)
            if recorded is not None:  # finished before an interruption
                run.on_progress({"kind": "resumed", "model": model, "epochs": added})
            else:
                try:
                    recorded = run.train(model, round_.epochs)
                except Exception as exc:  # noqa: BLE001 (one model that fails to train never stops the race)
                    outcome.skipped[model] = f"failed in round {index + 1}: {type(exc).__name__}: {exc}"
                    run.on_progress({"kind": "failed", "model": model, "why": outcome.skipped[model]})
                    continue
                run.state.put(index, model, *recorded)
            accuracies[model] = recorded[0]
            outcome.seconds[model] = outcome.seconds.get(model, 0.0) + recorded[1]
            per_epoch[model] = recorded[1] / added if recorded[1] else per_epoch.get(model, 0.0)
        outcome.validation.append(accuracies)
        ordered = by_validation(accuracies, racers)
        keep = 1 if index == len(outcome.rounds) - 1 else math.ceil(round_.models / 2)
        for model in ordered[keep:]:
            run.forget(model)
        alive = ordered[:keep]
        if len(alive) <= 1:
            break
    outcome.winner = next(iter(by_validation(outcome.validation[-1], racers)), None) if outcome.validation else None
    run.on_progress({"kind": "done", "winner": outcome.winner})


def race_line(outcome: RaceOutcome, metric_pick: str | None) -> str:
    """The race's answer: its winner with validation accuracy, and whether that differs from the metrics' pick."""
    if outcome.message:
        return f"race: {outcome.message}."
    if outcome.winner is None:
        return "race: no model finished a round (see the notes above)."
    index = outcome.last_round_of(outcome.winner)
    accuracy = outcome.validation[index][outcome.winner]
    epochs = outcome.rounds[index].epochs
    text = (f"race: {outcome.winner} wins with validation accuracy {accuracy:.3f} after {epochs} epoch"
            f"{'s' * (epochs != 1)} ({len(outcome.validation[0])} models, {len(outcome.validation)} round"
            f"{'s' * (len(outcome.validation) != 1)}, {outcome.epochs_run} epochs in total)")
    if metric_pick == outcome.winner:
        text += f"; the same as the metrics' pick."
    elif metric_pick is not None:
        out = outcome.last_round_of(metric_pick)
        fate = (f"was eliminated in round {out + 1} ({outcome.validation[out][metric_pick]:.3f})" if out is not None
                else f"did not race ({outcome.skipped.get(metric_pick, 'not trainable')})")
        text += f"; it differs from the metrics' pick, {metric_pick}, which {fate}."
    return text + _too_close(outcome, index) + (f" The race {outcome.stopped}." if outcome.stopped else "")


def _too_close(outcome: RaceOutcome, index: int) -> str:
    """A warning when the winner is within one binomial standard error of chance, or of the runner-up."""
    last = sorted(outcome.validation[index].values(), reverse=True)
    if len(last) < 2 or not outcome.validation_images:
        return ""
    error = math.sqrt(max(last[0] * (1 - last[0]), 1e-12) / outcome.validation_images)
    where = f"({error:.3f} on {outcome.validation_images} validation images)"
    if outcome.classes and last[0] - 1 / outcome.classes <= error:
        return (f" The winner is within one standard error {where} of chance (1/{outcome.classes}): the race is not "
                "informative yet; more epochs (--budget) or more images would make it so.")
    if last[0] - last[1] > error:
        return ""
    return (f" The last round's top two are within one standard error {where}: too close to call; more epochs "
            "(--budget) or more images would separate them.")


def _records(ranked: pd.DataFrame, outcome: RaceOutcome, data: Any) -> pd.DataFrame:
    """One ``race`` record per candidate, from its ranking record; ``attrs["race"]`` holds the outcome and line."""
    template = ranked[ranked["metric"] == ranked["metric"].iloc[0]].drop_duplicates("model").set_index("model") \
        if len(ranked) else pd.DataFrame()
    rows = []
    for model in outcome.candidates:
        if model not in template.index:
            continue
        base = {k: (None if _missing(v) else v) for k, v in template.loc[model].items()
                if k in RESULT_FIELDS and k not in ("metric", "score", "rank", "p_top1", "rank_low", "rank_high",
                                                    "seconds", "extraction_seconds", "note")}
        index = outcome.last_round_of(model)
        fields = dict(metric=RACE_METRIC, score=float("nan"), seconds=outcome.seconds.get(model))
        if index is not None:
            fields.update(score=outcome.validation[index][model], race_round=index + 1,
                          race_epochs=outcome.rounds[index].epochs)
        else:
            fields["note"] = (f"not applicable: {outcome.skipped[model]}" if model in outcome.skipped
                              else f"not raced: {outcome.message or outcome.stopped}")
        if data is not None:
            fields["num_samples"] = data.num_samples
        rows.append(empty_record(model=model, **{**base, **fields}))
    df = add_ranks(pd.DataFrame(rows, columns=list(RESULT_FIELDS)))
    summary = {**asdict(outcome), "rounds": [asdict(r) for r in outcome.rounds]}
    df.attrs["race"] = {**summary, "line": race_line(outcome, race_candidates(ranked)[0] if len(ranked) else None)}
    return df


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and pd.isna(value))

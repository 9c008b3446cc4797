"""The answer: which backbone to fine-tune, with the probability that it is the best one.

:func:`recommend` ranks the models by the consensus score (:mod:`hf_tsel.metrics.consensus`) and
measures how sure that ranking is with a stratified bootstrap over the target samples:

* every resample draws each class's samples with replacement (class sizes kept);
* cheap parts are recomputed exactly per resample: prior members (constant) and source-head
  members (LEEP, NCE: cheap in N x C_source);
* feature members (LogME, ETran, ...) are approximated: they are recomputed per resample on a fixed
  seeded random projection of each model's features to ``projection_dim`` dimensions (exact when
  D <= ``projection_dim``), and the change of that projected score is added to the full-data score
  (a delta bootstrap), so the spread is the sampling spread and the centre stays the full score;
* ``p_top1``: the probability that the model is *truly* the best after training. The bootstrap
  share of the #1 spot sees sampling noise only, not how often the consensus itself is wrong, so it
  is mapped through :class:`PBestCalibration` (a softmax over the models of the standardised
  consensus and the log bootstrap share), fitted on both project benchmarks and checked
  leave-one-benchmark-out (``benchmarks/consensus_calibration.py``; Brier scores and reliability
  tables in docs/metrics.md); ``calibration=None`` returns the raw bootstrap share;
* ``rank_low``/``rank_high``: 5th and 95th percentile of the model's consensus rank (a 90 % interval).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(3), 60)
    >>> zoo = {"good": rng.normal(size=(180, 16)) + 3 * np.eye(16)[y], "bad": rng.normal(size=(180, 16))}
    >>> table = recommend(zoo, y, n_boot=50)
    >>> table.loc[0, "model"], bool(table.loc[0, "p_top1"] > 0.5)
    ('good', True)
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .defaults import ANSWER_METRIC, DEFAULT_N_BOOT
from .errors import MetricInputError
from .metrics import InputKind, MetricInputs, MetricSpec, get_metric, metric_inputs
from .metrics._common import one_cpu_thread
from .metrics._validation import as_tensor, prepare_model_inputs, resolve_device
from .metrics.consensus import DEFAULT_GOAL, answer_config, check_members, combine, consensus_scores, standardise
from .results import best_first
from .sampling import check_n_boot

__all__ = ["DEFAULT_N_BOOT", "P_BEST_CALIBRATIONS", "PBestCalibration", "recommend", "answer_from_scores",
           "bootstrap_indices", "consensus_records", "recommendation_line", "sample_size_advice"]


@dataclass(frozen=True)
class PBestCalibration:
    """Maps the consensus and its bootstrap to P(model is truly the best after training).

    ``p_m = softmax_m(a (1 + c (agreement - 1/2)) z_m + b log(share_m + 1 / (2 n_boot)))`` with ``z`` the
    consensus standardised over the models (z-score), ``share`` the bootstrap share of the #1 spot and
    ``agreement`` the fraction of member metrics whose own #1 is the consensus #1; ``a, b, c`` are
    ``score_weight``, ``share_weight`` and ``agreement_weight``. With ``resampled``, ``p`` is that map
    averaged over the bootstrap resamples of the consensus (``z`` of each resample), so that a lead the
    resamples do not keep is not trusted: standardised over two models, ``z`` is always -1 and +1 however
    small the gap, and only the resamples see how small it is.

    Example:
        >>> import numpy as np
        >>> p = PBestCalibration(score_weight=1.0)(np.array([2.0, 1.0, 0.0]), None, agreement=1.0, n_boot=0)
        >>> [round(float(v), 3) for v in p]
        [0.725, 0.213, 0.063]
    """

    score_weight: float
    share_weight: float = 0.0
    agreement_weight: float = 0.0
    resampled: bool = False

    def __call__(self, scores: np.ndarray, shares: np.ndarray | None, *, agreement: float, n_boot: int,
                 resamples: np.ndarray | None = None) -> np.ndarray:
        """P(best) per model; ``resamples``: the consensus of each bootstrap resample, ``[n_boot, models]`` (used
        when ``resampled``; without resamples the point consensus stands in, blind to sampling noise)."""
        if self.share_weight and (shares is None or n_boot < 1):
            return np.full(len(scores), math.nan)
        rows = resamples if self.resampled and resamples is not None and len(resamples) else np.asarray(scores)[None]
        slope = self.score_weight * (1 + self.agreement_weight * (agreement - 0.5))
        logits = slope * np.stack([standardise(row, "zscore") for row in rows])
        if self.share_weight:
            logits = logits + self.share_weight * np.log(np.asarray(shares) + 1.0 / (2 * n_boot))
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (weights / weights.sum(axis=1, keepdims=True)).mean(axis=0)


# Fitted per goal by benchmarks/consensus_calibration.py on that goal's tasks of both benchmarks, whole zoos and 2-3
# model zoos drawn from them: of the forecasts tried there (raw bootstrap share, share shrunk to uniform, softmax of
# the standardised consensus with and without the log share and member agreement, and averaged over the resamples),
# the one with the lowest worst Brier score over benchmarks and zoo kinds, fitted on one benchmark and scored on the
# other (benchmarks/results/consensus_calibration.md, docs/metrics.md).
P_BEST_CALIBRATIONS: dict[str, PBestCalibration] = {
    "finetune": PBestCalibration(score_weight=0.8359, resampled=True),
    "linear-probe": PBestCalibration(score_weight=1.9208, resampled=True),
}
FITTED = "fitted"  # calibration= default: the calibration fitted for the goal
PROJECTION_DIM = 64
_INTERVAL = (5, 95)


def bootstrap_indices(labels: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, N]`` resample indices; each class is drawn with replacement at its own size."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    return np.stack([np.sort(np.concatenate([rng.choice(g, size=len(g)) for g in groups])) for _ in range(n_boot)])


def _projection(features: torch.Tensor, dim: int, generator: torch.Generator) -> torch.Tensor:
    if features.shape[1] <= dim:
        return features
    basis = torch.randn(features.shape[1], dim, generator=generator, dtype=features.dtype).to(features.device)
    return features @ (basis / math.sqrt(dim))  # Johnson-Lindenstrauss: distances kept up to a small distortion


def _member_on(spec: MetricSpec, features: dict[str, torch.Tensor], labels: torch.Tensor, num_classes: int,
               source_probs: Mapping[str, torch.Tensor], seed: int) -> dict[str, float]:
    """A member's higher-is-better scores on already validated inputs, without re-validation."""
    kwargs = {"seed": seed} if "seed" in inspect.signature(spec.fn).parameters else {}
    sign = -1.0 if spec.negated else 1.0
    if spec.consumes is InputKind.MODEL_SET:
        (features, labels), params = metric_inputs(spec, features, labels)
        inputs = {m: MetricInputs(f, labels, num_classes) for m, f in features.items()}
        return {m: sign * float(v) for m, v in spec.fn(inputs, **kwargs, **params).items()}
    calls = {m: metric_inputs(spec, f, labels, source_probs=source_probs.get(m)) for m, f in features.items()}
    return {m: sign * float(spec.fn(MetricInputs(*args, num_classes, **params), **kwargs))
            for m, (args, params) in calls.items()}


def _per_sample_on(member: str, inputs: MetricInputs, seed: int) -> np.ndarray:
    """A per-sample member's values (e.g. leave-one-out hits) on validated inputs, as a float64 array."""
    spec = get_metric(member)
    kwargs = {"seed": seed} if "seed" in inspect.signature(spec.per_sample).parameters else {}
    return spec.per_sample(inputs, **kwargs).double().cpu().numpy()


@dataclass
class _Resampler:
    """Member scores of one resample: exact for priors, source heads and per-sample members (cross-validated
    accuracies: the mean of their resampled per-sample hits), delta-approximated for other feature members."""

    full: dict[str, dict[str, float]]  # member -> model -> full-data score
    per_sample: dict[str, dict[str, np.ndarray]]  # member -> model -> [N] per-sample values
    projected: dict[str, torch.Tensor]
    source_probs: dict[str, torch.Tensor]
    labels: torch.Tensor
    num_classes: int
    seed: int

    def centre(self, members: Sequence[str]) -> dict[str, dict[str, float]]:
        every = torch.arange(len(self.labels), device=self.labels.device)
        return {m: self._projected_member(m, every) for m in members if m not in self.per_sample}

    def _projected_member(self, member: str, rows: torch.Tensor) -> dict[str, float]:
        spec = get_metric(member)
        if spec.is_prior:
            return self.full[member]
        kind = spec.consumes  # gather only what the member reads (a source head can have 1000s of classes)
        features = {m: f[rows] if kind.needs_features else None for m, f in self.projected.items()}
        probs = {m: p[rows] for m, p in self.source_probs.items()} if kind.needs_source_probs else {}
        return _member_on(spec, features, self.labels[rows], self.num_classes, probs, self.seed)

    def resample(self, rows: np.ndarray, centre: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        index = torch.from_numpy(rows).to(self.labels.device)
        scores = {}
        for member, full in self.full.items():
            spec = get_metric(member)
            if spec.is_prior:
                scores[member] = full
                continue
            if member in self.per_sample:
                scores[member] = {m: float(np.nanmean(values[rows])) for m, values in self.per_sample[member].items()}
                continue
            moved = self._projected_member(member, index)
            exact = not spec.consumes.needs_features  # no projection involved
            scores[member] = {m: moved[m] if exact else full[m] + moved[m] - centre[member][m] for m in full}
        return scores


def _top1_shares(values: np.ndarray) -> np.ndarray:
    """``[B, M]`` consensus scores -> ``[B, M]`` share of the #1 spot (ties split)."""
    best = values == values.max(axis=1, keepdims=True)
    return best / best.sum(axis=1, keepdims=True)


def recommend(features_by_model: Mapping[str, Any], labels: Any, *, source_probs: Mapping[str, Any] | None = None,
              priors: Mapping[str, Mapping[str, Any]] | None = None, goal: str = DEFAULT_GOAL,
              members: Sequence[str] | None = None, rule: str | None = None,
              weights: Mapping[str, float] | None = None, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
              calibration: PBestCalibration | str | None = FITTED, projection_dim: int = PROJECTION_DIM,
              device: str | torch.device | None = None,
              known: Mapping[str, Mapping[str, float]] | None = None) -> pd.DataFrame:
    """Rank models by consensus with ``p_top1`` (probability of being the best) and a 90 % rank interval.

    Args:
        features_by_model: model name -> ``[N, D]`` features (numpy or torch, any device), same samples.
        labels: ``[N]`` class ids.
        source_probs: model name -> ``[N, C_s]`` source-head probabilities, for the models that have one.
        priors: model name -> zoo metadata (``params``, ``imagenet_top1``...), for prior members.
        goal: what the user will train on the chosen backbone, ``"finetune"`` or ``"linear-probe"``: it
            picks the consensus (:data:`hf_tsel.metrics.consensus.ANSWERS`) and its calibration.
        members, rule, weights: override the goal's consensus members, rule and member weights.
        n_boot: bootstrap resamples (0: no rank interval; ``p_top1`` then comes from the consensus alone
            when the calibration does not use the bootstrap, else NaN).
        seed: seed of the bootstrap, the projection and stochastic members.
        calibration: maps consensus and bootstrap to ``p_top1`` (default ``"fitted"``: the goal's
            :data:`P_BEST_CALIBRATIONS` entry; ``None``: the raw bootstrap share of the #1 spot, which sees
            sampling noise only).
        projection_dim: width of the projection the feature members are resampled on.
        known: member scores already computed on these inputs, ``{member: {model: score}}`` (reused).

    Returns:
        One row per model, best first: ``model, score, rank, p_top1, rank_low, rank_high``.
        ``attrs`` holds ``members``, ``dropped`` (member -> why), ``member_scores``, ``n_boot``,
        ``score_gap`` (``{"mean": #1 - #2 score gap, "sd": its bootstrap sd}``), ``bootstrap_share`` (model ->
        raw share of the #1 spot), ``bootstrap_scores`` (the consensus of each resample, one column per model),
        ``agreement`` (fraction of members whose #1 is the consensus #1) and
        ``num_samples``/``num_classes``, ``goal``.
    """
    n_boot = check_n_boot(n_boot)
    check_members(members)
    config = answer_config(goal)
    if calibration == FITTED:
        calibration = P_BEST_CALIBRATIONS[goal]
    if calibration is not None and not isinstance(calibration, PBestCalibration):
        raise MetricInputError("recommend", f"calibration must be a PBestCalibration or None, got {calibration!r}.",
                               "leave the default (the goal's fitted calibration), or pass None for the raw "
                               "bootstrap share.")
    models = list(features_by_model)
    target = resolve_device(device, *features_by_model.values())
    checked = {m: prepare_model_inputs("recommend", m, f, labels, needs_features=True, needs_source_probs=False,
                                       device=target) for m, f in features_by_model.items()}  # errors name the model
    per_sample = {member: {m: _per_sample_on(member, i, seed) for m, i in checked.items()}
                  for member in dict.fromkeys(get_metric(m).name for m in (members or config.members))
                  if get_metric(member).per_sample is not None and n_boot}
    known = {**{member: {m: float(np.nanmean(v)) for m, v in values.items()} for member, values in per_sample.items()},
             **(known or {})}
    result = consensus_scores(features_by_model, labels, source_probs=source_probs, priors=priors, goal=goal,
                              members=members, rule=rule, weights=weights, seed=seed, device=device, known=known)
    rule = result.rule
    first = next(iter(checked.values()))
    generator = torch.Generator().manual_seed(seed)
    resampler = _Resampler(
        full=result.member_scores, per_sample={m: v for m, v in per_sample.items() if m in result.member_scores},
        projected={m: _projection(i.features, projection_dim, generator) for m, i in checked.items()},
        source_probs={m: as_tensor(p, target, torch.float64) for m, p in (source_probs or {}).items() if p is not None},
        labels=first.labels, num_classes=first.num_classes, seed=seed)
    point = np.array([result.scores[m] for m in models])
    table = pd.DataFrame({"model": models, "score": point})
    table["rank"] = table["score"].rank(method="min", ascending=False).astype(int)
    table["p_top1"] = math.nan
    boot = np.empty((n_boot, len(models)))
    if n_boot:
        with one_cpu_thread():
            centre = resampler.centre(result.members)
            for b, rows in enumerate(bootstrap_indices(first.labels.cpu().numpy(), n_boot, seed)):
                combined = combine(resampler.resample(rows, centre), models, rule, result.weights)
                boot[b] = [combined[m] for m in models]
        ranks = pd.DataFrame(boot).rank(axis=1, method="min", ascending=False).to_numpy()
        shares = _top1_shares(boot).mean(axis=0)
        table["rank_low"] = np.percentile(ranks, _INTERVAL[0], axis=0, method="lower").astype(int)
        table["rank_high"] = np.percentile(ranks, _INTERVAL[1], axis=0, method="higher").astype(int)
    else:
        shares = None
        table["rank_low"] = table["rank_high"] = math.nan
    agreement = member_agreement(result.member_scores, models[int(np.argmax(point))])
    if calibration is None:
        table["p_top1"] = shares if shares is not None else math.nan
    else:
        table["p_top1"] = calibration(point, shares, agreement=agreement, n_boot=n_boot, resamples=boot)
    table = best_first(table).reset_index(drop=True)
    table.attrs.update(goal=goal, members=list(result.members), dropped=dict(result.dropped), rule=rule, n_boot=n_boot,
                       member_scores=result.member_scores, num_samples=len(first.labels),
                       num_classes=first.num_classes, calibration=calibration, agreement=agreement,
                       bootstrap_share=dict(zip(models, shares)) if shares is not None else {},
                       bootstrap_scores=pd.DataFrame(boot, columns=models),
                       score_gap=_gap(table, models, point, boot))
    return table


def answer_from_scores(rows: pd.DataFrame, goal: str = DEFAULT_GOAL) -> dict[str, float]:
    """The goal's consensus of stored scores (long-format ``model, metric, score`` rows of one target), over the
    models that have a score from every member; ``{}`` when fewer than two do. No P(best): that needs the features.

    Example:
        >>> import pandas as pd
        >>> rows = pd.DataFrame({"model": ["a", "b"], "metric": ["etran_lda"] * 2, "score": [2.0, 1.0]})
        >>> answer_from_scores(rows)
        {'a': 1.0, 'b': -1.0}
    """
    config = answer_config(goal)
    table = rows[rows["metric"].isin(config.members)].pivot_table(index="model", columns="metric", values="score",
                                                                   aggfunc="first")
    if not set(config.members) <= set(table.columns):
        return {}
    complete = table[list(config.members)].dropna()
    if len(complete) < 2:
        return {}
    return combine({m: complete[m].to_dict() for m in config.members}, list(complete.index), config.rule,
                   config.weights)


def _leaders(scores: Mapping[str, float]) -> list[str]:
    """The models that share a metric's best score."""
    top = max(scores.values())
    return [m for m, v in scores.items() if v == top]


def member_agreement(member_scores: Mapping[str, Mapping[str, float]], leader: str) -> float:
    """Fraction of the members whose own best-scored model is ``leader`` (ties count as a share)."""
    votes = [(leader in winners) / len(winners) for winners in map(_leaders, member_scores.values())]
    return float(np.mean(votes)) if votes else math.nan


def _gap(table: pd.DataFrame, models: list[str], point: np.ndarray, boot: np.ndarray) -> dict[str, float]:
    """Point gap between the top two models and its bootstrap sd (drives the sample-size advice)."""
    if len(table) < 2:
        return {"mean": math.nan, "sd": math.nan}
    first, second = (models.index(m) for m in table["model"][:2])
    sd = float(np.std(boot[:, first] - boot[:, second], ddof=1)) if len(boot) > 1 else math.nan
    return {"mean": float(point[first] - point[second]), "sd": sd}


def sample_size_advice(table: pd.DataFrame, z: float = 1.645) -> str | None:
    """A warning when the top two are indistinguishable, with how many more images per class would separate them.

    The gap's bootstrap sd shrinks as 1/sqrt(N); the gap is resolved at one-sided 95 % when
    ``gap >= z * sd``, i.e. at ``N' = N (z sd / gap)^2`` samples.
    """
    if len(table) < 2 or table.attrs.get("n_boot", 0) < 2:
        return None
    gap, n, classes = table.attrs["score_gap"], table.attrs["num_samples"], table.attrs["num_classes"]
    low_overlap = table.loc[0, "rank_high"] < table.loc[1, "rank_low"]
    if gap["sd"] > 0 and gap["mean"] >= z * gap["sd"] or low_overlap:
        return None
    first, second = table["model"][:2]
    if not _more_images_help(gap):
        settle = _ACTIONS[table.attrs.get("goal") or DEFAULT_GOAL][1]
        return (f"{first} and {second} are indistinguishable on this sample (same score); "
                f"more images will not separate them: consider both, or {settle} both briefly.")
    needed = n * (z * gap["sd"] / gap["mean"]) ** 2
    more = math.ceil(max(0.0, needed - n) / classes)
    return (f"{first} and {second} are statistically indistinguishable on {n} samples (P(best) "
            f"{table.loc[0, 'p_top1']:.2f} vs {table.loc[1, 'p_top1']:.2f}); about {more} more images per class "
            "would likely separate them.")


# goal -> (the pick, how to settle a close call by training)
_ACTIONS = {"finetune": ("Fine-tune {}", "fine-tune"), "linear-probe": ("Train a linear probe on {}", "train linear probes on")}
_GOAL_NAMES = {"finetune": "fine-tuning", "linear-probe": "linear-probe"}


def recommendation_line(table: pd.DataFrame, agreeing: Sequence[str] = (), disagreeing: Sequence[str] = (), *,
                        unsettled_below: float = 0.5) -> str:
    """The answer in one line: the pick, its calibrated P(best), the runner-up, which metrics agree, what would settle it.

    ``agreeing``/``disagreeing``: the run's other metrics that do / do not put the pick first. Below
    ``unsettled_below`` P(best), the line says how to settle the choice: more images per class when the
    bootstrap cannot separate the top two (:func:`sample_size_advice`), else a short training of both.
    The wording follows ``table.attrs["goal"]`` (default fine-tune).

    Example:
        >>> import pandas as pd
        >>> table = pd.DataFrame({"model": ["x", "y"], "score": [1.0, -1.0], "p_top1": [0.74, 0.26]})
        >>> table.attrs["members"] = ["logme", "knn"]
        >>> recommendation_line(table, ["gbc"], ["etran"])
        'Fine-tune x: #1 of 2 by the consensus (mean of logme and knn, each standardised over the models), P(best) 0.74; runner-up y 0.26. gbc puts x first too; etran does not.'
        >>> table.attrs.update(members=["linear_probe_cv"], goal="linear-probe")
        >>> recommendation_line(table)
        'Train a linear probe on x: #1 of 2 by linear_probe_cv, P(best) 0.74; runner-up y 0.26.'
    """
    best = table.iloc[0]
    members = table.attrs.get("members") or []
    goal = table.attrs.get("goal")
    act, settle = _ACTIONS[goal or DEFAULT_GOAL]
    line = act.format(best["model"]) + f": #1 of {len(table)} by "
    if len(members) == 1:
        line += members[0]
    elif members:
        line += f"the consensus (mean of {_names(members)}, each standardised over the models)"
    else:  # results read back from a file: the goal (schema 1.3) but not the members
        line += f"the {_GOAL_NAMES[goal]} answer" if goal else "the consensus"
    if not math.isnan(best["p_top1"]):
        line += f", P(best) {best['p_top1']:.2f}"
    if len(table) > 1:
        runner = table.iloc[1]
        line += f"; runner-up {runner['model']}" + ("" if math.isnan(runner["p_top1"]) else f" {runner['p_top1']:.2f}")
    line += "."
    if agreeing:
        line += f" {_names(agreeing)} put{'s' if len(agreeing) == 1 else ''} {best['model']} first too"
        line += f"; {_names(disagreeing)} do{'es' if len(disagreeing) == 1 else ''} not." if disagreeing else "."
    elif disagreeing:
        line += f" {_names(disagreeing)} put{'s' if len(disagreeing) == 1 else ''} another model first."
    if len(table) > 1 and best["p_top1"] < unsettled_below:
        second = table.iloc[1]["model"]
        more_data = "rank_high" in table and sample_size_advice(table) is not None and _more_images_help(
            table.attrs.get("score_gap", {}))
        line += (" Not settled: " + ("more images per class would help (see the warning), or " if more_data else "")
                 + f"{settle} {best['model']} and {second} briefly on your data and keep the better one.")
    return line


def _more_images_help(gap: Mapping[str, float]) -> bool:
    """Whether the top two differ at all on this sample (a gap that more images can resolve)."""
    return gap.get("mean", math.nan) > 0 and gap.get("sd", math.nan) > 0


def _names(metrics: Sequence[str]) -> str:
    return ", ".join(metrics[:-1]) + f" and {metrics[-1]}" if len(metrics) > 1 else metrics[0]


def consensus_records(outcomes: Sequence[Any], labels: np.ndarray, scored: Sequence[Mapping[str, Any]], *,
                      goal: str = DEFAULT_GOAL, seed: int = 0, device: Any = None,
                      n_boot: int = DEFAULT_N_BOOT) -> tuple[list[dict], dict]:
    """``consensus`` result records (with ``p_top1``, ``rank_low``, ``rank_high``) of a ranking run, and a summary.

    ``outcomes``: the run's :class:`hf_tsel.extraction.ModelOutcome` list; ``scored``: its per-metric
    records, whose member scores are reused. The summary (``run["recommendation"]``) holds the
    recommendation line, members, dropped members and the sample-size advice.
    """
    ready = [o for o in outcomes if o.features is not None]
    if len(ready) < 2:  # nothing to recommend between
        return [], {}
    common = ready[0].features.positions
    for o in ready[1:]:
        common = np.intersect1d(common, o.features.positions)
    rows = {o.entry.name: np.searchsorted(o.features.positions, common) for o in ready}
    features = {o.entry.name: o.features.features[rows[o.entry.name]] for o in ready}
    probs = {o.entry.name: torch.softmax(o.features.source_logits[rows[o.entry.name]].double(), dim=1)
             for o in ready if o.features.source_logits is not None}
    known: dict[str, dict[str, float]] = {}
    same_samples = all(len(r) == len(o.features.positions) for r, o in zip(rows.values(), ready))
    for record in scored if same_samples else ():
        if not math.isnan(record["score"]):
            known.setdefault(record["metric"], {})[record["model"]] = record["score"]
    start = time.perf_counter()
    try:
        table = recommend(features, labels[common], source_probs=probs, priors={o.entry.name: o.entry.metadata for o in ready},
                          goal=goal, n_boot=n_boot, seed=seed, device=device, known=known)
    except Exception as exc:  # noqa: BLE001 (the per-metric scores must survive a consensus failure)
        note = f"failed: {exc}"
        return [{"model": m, "metric": ANSWER_METRIC, "score": math.nan, "note": note, "seconds": 0.0}
                for m in features], {}
    seconds = (time.perf_counter() - start) / len(table)
    records = [{"model": r.model, "metric": ANSWER_METRIC, "score": r.score, "note": None, "seconds": seconds,
                "p_top1": None if math.isnan(r.p_top1) else r.p_top1,
                "rank_low": None if math.isnan(r.rank_low) else int(r.rank_low),
                "rank_high": None if math.isnan(r.rank_high) else int(r.rank_high), "goal": goal}
               for r in table.itertuples()]
    agreeing, disagreeing = _agreement(table, scored)
    summary = {"line": recommendation_line(table, agreeing, disagreeing), "members": table.attrs["members"],
               "dropped": table.attrs["dropped"], "advice": sample_size_advice(table), "n_boot": n_boot,
               "rule": table.attrs["rule"], "goal": goal}
    return records, summary


def _agreement(table: pd.DataFrame, scored: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """The run's other metrics (not members; a score for every model) that put the consensus #1 first (alone or tied,
    as :func:`member_agreement` counts it), and the rest."""
    by_metric: dict[str, dict[str, float]] = {}
    for record in scored:
        by_metric.setdefault(record["metric"], {})[record["model"]] = record["score"]
    models, best, members = set(table["model"]), table["model"].iloc[0], set(table.attrs.get("members") or ())
    voting = {metric: best in _leaders(v) for metric, v in by_metric.items()
              if not get_metric(metric).is_prior and metric not in members
              and set(v) >= models and not any(math.isnan(v[m]) for m in models)}
    return [m for m, agrees in voting.items() if agrees], [m for m, agrees in voting.items() if not agrees]

"""Consensus: one transferability score per model from a few member metrics, standardised over the zoo.

Each member's scores are standardised over the models (z-score or normalised rank), so members
whose raw scale depends on the feature dimension or the number of classes (LogME, GBC, PARC...)
are compared only after standardisation; the consensus is the mean over the members that apply.

The answer depends on what the user will train: the project's ground truths disagree between a full
fine-tune and a linear probe on frozen features, so members and rule are chosen per goal
(:data:`ANSWERS`), each over both project benchmarks by the worst benchmark's held-out weighted tau,
within a cost target (``benchmarks/consensus_selection.py``; procedure and held-out result in
docs/metrics.md). A chosen configuration may have a single member: a combination is kept only when
it beats the best single metric by more than the selection's standard error.

Regime awareness: a member is dropped, and the result says why, when it is known to break in the
regime at hand (see :func:`member_problem`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from ..defaults import ANSWER_METRIC, DEFAULT_GOAL, GOALS
from ._inputs import metric_inputs
from ._registry import InputKind, get_metric, register, score, score_zoo
from ._validation import MetricInputError, MetricInputs

__all__ = ["ANSWERS", "DEFAULT_GOAL", "GOALS", "RULES", "ConsensusConfig", "ConsensusResult", "answer_config",
           "check_members", "combine", "consensus_scores", "member_problem", "standardise"]


@dataclass(frozen=True)
class ConsensusConfig:
    """Members, combination rule and optional member weights (``None``: plain mean) of a consensus."""

    members: tuple[str, ...]
    rule: str = "zscore"
    weights: Mapping[str, float] | None = None


# Chosen per goal by benchmarks/consensus_selection.py over both project benchmarks (the worst benchmark's held-out
# mean weighted tau on that goal's ground truth, within the cost target, one-standard-error rule towards fewer
# members); tables in benchmarks/results/consensus_selection.md, docs/metrics.md.
ANSWERS: dict[str, ConsensusConfig] = {
    "finetune": ConsensusConfig(("etran_lda",)),
    "linear-probe": ConsensusConfig(("linear_probe_cv",)),
}
RULES: tuple[str, ...] = ("zscore", "rank")
# H-score and SFDA estimate a D x D covariance; with fewer samples than dimensions it is singular
# and every model gets nearly the same score (observed on the offline benchmark at N < D).
_NEEDS_N_ABOVE_D = frozenset({"hscore", "sfda", "ped+sfda"})


def check_members(members: Sequence[str] | None) -> None:
    """A member list is a list of names: one name given as a string would be read letter by letter."""
    if isinstance(members, str):
        raise MetricInputError(ANSWER_METRIC, f"members must be a list of metric names, got the string {members!r}.",
                               f"pass members=[{members!r}].")


def answer_config(goal: str = DEFAULT_GOAL) -> ConsensusConfig:
    """The answer's consensus for ``goal`` (``"finetune"`` or ``"linear-probe"``).

    Example:
        >>> answer_config("linear-probe").members
        ('linear_probe_cv',)
    """
    if goal not in ANSWERS:
        raise MetricInputError(ANSWER_METRIC, f"unknown goal {goal!r}.",
                               f"use one of {list(GOALS)}: what you will train on the chosen backbone.")
    return ANSWERS[goal]


def standardise(values: np.ndarray, rule: str) -> np.ndarray:
    """Scores of one member over the models, made scale-free: z-scores, or ranks mapped to [0, 1]."""
    values = np.asarray(values, dtype=float)
    if rule == "rank":
        if len(values) < 2:
            return np.zeros_like(values)
        return (stats.rankdata(values, method="average") - 1) / (len(values) - 1)
    if rule == "zscore":
        spread = values.std()
        return np.zeros_like(values) if spread == 0 else (values - values.mean()) / spread
    raise MetricInputError(ANSWER_METRIC, f"unknown combination rule {rule!r}.", f"use one of {list(RULES)}.")


def combine(member_scores: Mapping[str, Mapping[str, float]], models: Sequence[str], rule: str,
            weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Mean over members of the standardised scores, ``{model: consensus}``.

    ``weights`` (member -> non-negative weight) makes it a weighted mean; members without a weight
    count 0, and the weights of the members present are renormalised to sum to 1.
    """
    if not member_scores:
        raise MetricInputError(ANSWER_METRIC, "no member metric applies to these models.",
                               "pass more samples, or score the models with individual metrics.")
    members = list(member_scores)
    share = np.array([1.0 if weights is None else float(weights.get(m, 0.0)) for m in members])
    if not share.sum() > 0:
        raise MetricInputError(ANSWER_METRIC, f"no member with a positive weight among {members}.",
                               "score the models with the weighted members, or pass weights=None.")
    table = np.array([[member_scores[member][m] for m in models] for member in members], dtype=float)
    standardised = np.stack([standardise(row, rule) for row in table])
    return dict(zip(models, (share @ standardised / share.sum()).tolist()))


def member_problem(member: str, *, num_samples: int, feature_dims: Mapping[str, int], has_head: Mapping[str, bool],
                   priors: Mapping[str, Mapping[str, Any]] | None) -> str | None:
    """Why ``member`` must be dropped for these models (``None`` if it applies)."""
    spec = get_metric(member)
    widest = max(feature_dims.values())
    if spec.name in _NEEDS_N_ABOVE_D and num_samples <= widest:
        return f"saturates when samples ({num_samples}) <= feature dim ({widest})"
    if spec.consumes is InputKind.REFERENCE_FEATURES:
        return "scores the models' source reference images, not the target data the consensus compares"
    if spec.consumes.needs_source_probs:
        missing = sorted(m for m, head in has_head.items() if not head)
        if missing:
            return f"needs a source classifier head; none for {', '.join(missing)}"
    fact = spec.metadata_fact
    if fact is not None:
        missing = sorted(m for m in feature_dims if ((priors or {}).get(m) or {}).get(fact) is None)
        if missing:
            return f"no published {fact} for {', '.join(missing)}"
    return None


@dataclass
class ConsensusResult:
    """The consensus of a zoo, with the members that made it and those dropped (and why)."""

    scores: dict[str, float]
    rule: str
    members: tuple[str, ...]
    member_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    weights: dict[str, float] | None = None


def _member_scores(member: str, features: Mapping[str, Any], labels: Any, *, source_probs: Mapping[str, Any],
                   priors: Mapping[str, Mapping[str, Any]] | None, seed: int, device: Any) -> dict[str, float]:
    spec = get_metric(member)
    if spec.consumes is InputKind.MODEL_SET:
        args, params = metric_inputs(spec, features, labels, priors=priors)
        return score_zoo(spec.name, *args, seed=seed, device=device, **params)
    calls = {m: metric_inputs(spec, f, labels, source_probs=source_probs.get(m)) for m, f in features.items()}
    return {m: score(spec.name, *args, seed=seed, device=device, **params) for m, (args, params) in calls.items()}


def consensus_scores(features_by_model: Mapping[str, Any], labels: Any, *,
                     source_probs: Mapping[str, Any] | None = None, priors: Mapping[str, Mapping[str, Any]] | None = None,
                     goal: str = DEFAULT_GOAL, members: Sequence[str] | None = None, rule: str | None = None,
                     weights: Mapping[str, float] | None = None, seed: int = 0,
                     device: Any = None, known: Mapping[str, Mapping[str, float]] | None = None) -> ConsensusResult:
    """The consensus of ``features_by_model`` (validated like every metric), members and drops included.

    ``goal`` picks the answer's members, rule and weights (:func:`answer_config`); ``members``,
    ``rule`` and ``weights`` override them (``weights``: member -> weight of a weighted mean, see
    :func:`combine`; only used when it names every member).

    ``known``: member scores already computed on the same inputs and seed (e.g. by a ranking run
    that also asked for LogME), ``{member: {model: score}}``; they are reused, not recomputed.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat(np.arange(3), 40)
        >>> zoo = {"good": rng.normal(size=(120, 8)) + 3 * np.eye(8)[y], "bad": rng.normal(size=(120, 8))}
        >>> result = consensus_scores(zoo, y, members=["logme", "knn"], rule="rank")
        >>> result.scores["good"] > result.scores["bad"], result.members
        (True, ('logme', 'knn'))
    """
    config = answer_config(goal)
    rule = rule or config.rule
    check_members(members)
    if members is None:
        members, weights = config.members, config.weights if weights is None else weights
    if len(features_by_model) < 2:
        raise MetricInputError(ANSWER_METRIC, "the consensus standardises over models and needs at least 2.",
                               "score at least two models together.")
    source_probs = {m: p for m, p in (source_probs or {}).items() if p is not None}
    members = tuple(get_metric(m).name for m in members)
    dims = {m: int(np.shape(f)[1]) if np.ndim(f) == 2 else 0 for m, f in features_by_model.items()}
    num_samples = len(labels)
    has_head = {m: m in source_probs for m in features_by_model}
    dropped = {}
    for member in members:
        problem = member_problem(member, num_samples=num_samples, feature_dims=dims, has_head=has_head, priors=priors)
        if problem:
            dropped[member] = problem
    kept = tuple(m for m in members if m not in dropped)
    known = {m: dict(v) for m, v in (known or {}).items() if set(v) >= set(features_by_model)}
    member_scores = {}
    for member in kept:
        if member in known:
            member_scores[member] = {model: known[member][model] for model in features_by_model}
            continue
        try:
            member_scores[member] = _member_scores(member, features_by_model, labels, source_probs=source_probs,
                                                   priors=priors, seed=seed, device=device)
        except MetricInputError as exc:
            if exc.metric == ANSWER_METRIC or not exc.problem.startswith("the score"):
                raise  # bad input: the user must fix it
            dropped[member] = f"failed: {exc.problem}"  # e.g. a non-finite score on one model's features
    models = list(features_by_model)
    kept = tuple(m for m in kept if m in member_scores)
    if weights is not None:
        weights = {get_metric(m).name: float(w) for m, w in weights.items()}
        if not set(members) <= set(weights):
            weights = None  # weights of other members do not apply: plain mean
    return ConsensusResult(combine(member_scores, models, rule, weights), rule, kept, member_scores, dropped, weights)


@register(ANSWER_METRIC, consumes=InputKind.MODEL_SET,
          paper="hf-tsel: the answer's score for a goal (fine-tune or linear probe): mean of standardised member "
                "scores, members chosen over both project benchmarks, held out (docs/metrics.md)")
def consensus(inputs: dict[str, MetricInputs], *, goal: str = DEFAULT_GOAL, members: Sequence[str] | None = None,
              rule: str | None = None, source_probs: Mapping[str, Any] | None = None,
              priors: Mapping[str, Mapping[str, Any]] | None = None, seed: int = 0) -> dict[str, float]:
    """The answer's consensus for ``goal`` (:data:`ANSWERS`) over the zoo; members that break are dropped."""
    first = next(iter(inputs.values()))
    features = {m: i.features for m, i in inputs.items()}
    return consensus_scores(features, first.labels, source_probs=source_probs, priors=priors, goal=goal,
                            members=members, rule=rule, seed=seed, device=first.features.device).scores

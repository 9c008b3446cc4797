"""The consensus metric and the prior:* baselines (hf_tsel.metrics.consensus, hf_tsel.metrics.priors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_tsel.errors import MetricInputError
from hf_tsel.metrics import score_zoo
from hf_tsel.metrics.consensus import combine, consensus_scores


def test_consensus_ranks_by_separation_on_numpy_and_torch(three_model_zoo):
    features, labels = three_model_zoo
    numpy_scores = score_zoo("consensus", features, labels)
    torch_scores = score_zoo("consensus", {m: torch.from_numpy(f) for m, f in features.items()}, torch.from_numpy(labels))
    assert numpy_scores["strong"] > numpy_scores["weak"] > numpy_scores["none"]
    assert numpy_scores == pytest.approx(torch_scores)


def test_consensus_is_validated_like_every_metric(three_model_zoo):
    features, labels = three_model_zoo
    with pytest.raises(MetricInputError, match="at least 2"):
        score_zoo("consensus", {"strong": features["strong"]}, labels)
    with pytest.raises(MetricInputError, match="NaN"):
        score_zoo("consensus", {**features, "bad": np.full_like(features["none"], np.nan)}, labels)
    with pytest.raises(MetricInputError, match="unknown combination rule"):
        score_zoo("consensus", features, labels, rule="median")


def test_consensus_invariant_to_model_order_and_feature_scale(three_model_zoo):
    features, labels = three_model_zoo
    reference = score_zoo("consensus", features, labels, seed=3)
    reversed_zoo = dict(reversed(list(features.items())))
    assert score_zoo("consensus", reversed_zoo, labels, seed=3) == pytest.approx(reference)
    # LogME and ETran's LDA part change with a global feature scale, but not the ranking of
    # models that are all rescaled by the same factor when the factor is moderate.
    scaled = {m: 1.5 * f for m, f in features.items()}
    order = sorted(reference, key=reference.get)
    assert sorted(score_zoo("consensus", scaled, labels), key=score_zoo("consensus", scaled, labels).get) == order


def test_regime_awareness_drops_members_and_says_why(three_model_zoo):
    features, labels = three_model_zoo
    wide = {m: np.hstack([f, np.zeros((len(f), 200))]) for m, f in features.items()}
    result = consensus_scores(wide, labels, members=["logme", "hscore", "leep", "prior:imagenet_top1"],
                              source_probs={"strong": np.full((len(labels), 4), 0.25)}, priors={"strong": {"imagenet_top1": 80.0}})
    assert result.members == ("logme",)
    assert "saturates" in result.dropped["hscore"] and "none for none, weak" in result.dropped["leep"]
    assert "no published imagenet_top1" in result.dropped["prior:imagenet_top1"]


def test_priors_are_baseline_metrics(three_model_zoo):
    features, labels = three_model_zoo
    priors = {"strong": {"params": 10}, "weak": {"params": 30}, "none": {"params": 20}}
    assert score_zoo("prior:params", features, labels, priors=priors) == {"strong": 10.0, "weak": 30.0, "none": 20.0}
    assert set(score_zoo("prior:feature_dim", features, labels).values()) == {float(features['strong'].shape[1])}
    with pytest.raises(MetricInputError, match="no published imagenet_top1"):
        score_zoo("prior:imagenet_top1", features, labels, priors=priors)


def test_weighted_combination_renormalises_over_the_members_present():
    members = {"a": {"x": 1.0, "y": 0.0, "z": 0.5}, "b": {"x": 0.0, "y": 1.0, "z": 0.5}}
    models = ["x", "y", "z"]
    assert combine(members, models, "rank", {"a": 3.0, "b": 1.0}) == pytest.approx({"x": 0.75, "y": 0.25, "z": 0.5})
    assert combine(members, models, "rank", {"a": 1.0, "c": 5.0}) == pytest.approx({"x": 1.0, "y": 0.0, "z": 0.5})
    assert combine(members, models, "rank") == pytest.approx({"x": 0.5, "y": 0.5, "z": 0.5})
    with pytest.raises(MetricInputError, match="no member with a positive weight"):
        combine(members, models, "rank", {"c": 1.0})

"""The input kind of each metric and the one function that builds its call inputs (hf_tsel/metrics/_inputs.py)."""

import json

import numpy as np
import pytest

from hf_tsel.metrics import InputKind, MetricInputError, NotApplicable, get_metric, list_metrics, metric_inputs, register, score
from hf_tsel.metrics.priors import PRIOR_METRICS


def test_consumes_is_an_input_kind_that_keeps_its_text():
    spec = get_metric("persistence_ratio_head")
    assert spec.consumes is InputKind.FEATURES_AND_SOURCE_PROBS and spec.consumes == "features+source_probs"
    assert json.loads(json.dumps(spec.as_dict()))["consumes"] == "features+source_probs"
    assert "features+source_probs" in str(list_metrics(include_transforms=False))


def test_register_refuses_an_unknown_kind_by_name():
    with pytest.raises(ValueError, match="consumes='embeddings' is not an input kind; use one of 'features'"):
        register("never_registered", consumes="embeddings", paper="-")
    with pytest.raises(MetricInputError, match="unknown metric"):  # refused before it reached the registry
        get_metric("never_registered")


def test_priors_are_flagged_not_named():
    priors = [s for s in list_metrics(include_transforms=False) if s.is_prior]
    assert sorted(s.name for s in priors) == sorted(PRIOR_METRICS)
    assert {s.name: s.metadata_fact for s in priors} == {
        "prior:params": "params", "prior:imagenet_top1": "imagenet_top1", "prior:feature_dim": None}
    assert not get_metric("logme").is_prior and get_metric("logme").metadata_fact is None


@pytest.mark.parametrize("metric", ["leep", "persistence_ratio_head"])
def test_a_head_metric_without_head_is_not_applicable(metric):
    with pytest.raises(NotApplicable) as info:
        metric_inputs(get_metric(metric), np.zeros((4, 2)), np.arange(4))
    assert info.value.note == "not applicable: the model has no source classifier head"


def test_a_reference_metric_reads_the_reference_not_the_target():
    spec = get_metric("persistence_ratio")
    with pytest.raises(NotApplicable, match="names no source_reference"):
        metric_inputs(spec, "target", "y")
    assert metric_inputs(spec, "target", "y", reference=("ref", "ref_y")) == (("ref", "ref_y"), {})


def test_only_metrics_that_take_priors_get_them():
    priors = {"a": {"params": 1}}
    assert metric_inputs(get_metric("prior:params"), {"a": 1}, "y", priors=priors) == (({"a": 1}, "y"), {"priors": priors})
    assert metric_inputs(get_metric("etran"), {"a": 1}, "y", priors=priors) == (({"a": 1}, "y"), {})


def test_built_inputs_score_like_a_direct_call():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    x, probs = rng.normal(size=(60, 5)) + np.eye(5)[y], rng.dirichlet(np.ones(7), size=60)
    for name in ("logme", "leep", "persistence_ratio_head"):
        args, params = metric_inputs(get_metric(name), x, y, source_probs=probs)
        direct = score(name, None if name == "leep" else x, y, source_probs=None if name == "logme" else probs)
        assert score(name, *args, **params) == direct

"""The public metric API: listing, lookup, parameter checks and input validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_tsel.metrics import MetricInputError, get_metric, list_metrics, score, score_zoo

OWN_METRICS = {"logme": "features", "leep": "source_probs", "nce": "source_probs", "nleep": "features",
               "hscore": "features", "reg_hscore": "features", "transrate": "features",
               "transrate_official": "features"}


def _data(n_per_class: int = 20, n_classes: int = 3, dim: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    features = rng.normal(size=(len(labels), dim)) + 2.0 * np.eye(dim)[labels % dim]
    logits = features @ rng.normal(size=(dim, 10))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    return features, labels, probs / probs.sum(1, keepdims=True)


def test_list_metrics_has_metadata_of_own_metrics():
    specs = {spec.name: spec for spec in list_metrics(include_transforms=False)}
    for name, consumes in OWN_METRICS.items():
        spec = specs[name]
        assert spec.consumes == consumes and spec.paper and spec.reference and spec.summary
        assert spec.higher_is_better and not spec.negated
        info = spec.as_dict()
        assert info["name"] == name and info["paper"] == spec.paper
    assert specs["nleep"].stochastic and not specs["logme"].stochastic
    assert set(specs["nleep"].parameters) == {"component_ratio", "variance_kept", "log", "em"}
    assert get_metric("h_score") is get_metric("hscore")  # alias of the tllib name


def test_list_metrics_prints_a_table():
    text = str(list_metrics(include_transforms=False))
    header = text.splitlines()[0]
    assert header.split()[:4] == ["name", "consumes", "stochastic", "negated"]
    for name in OWN_METRICS:
        assert any(line.startswith(name + " ") for line in text.splitlines())


def test_unknown_metric_lists_the_known_ones():
    features, labels, _ = _data()
    with pytest.raises(MetricInputError, match="unknown metric 'logmee'") as info:
        score("logmee", features, labels)
    assert "logme" in info.value.fix


def test_unknown_parameter_is_named_with_the_accepted_ones():
    features, labels, _ = _data()
    with pytest.raises(MetricInputError, match="unknown parameter") as info:
        score("logme", features, labels, max_iters=5)
    assert info.value.metric == "logme" and "max_iter" in info.value.fix


@pytest.mark.parametrize("name, params, problem", [
    ("logme", {"max_iter": 0}, "max_iter"), ("logme", {"gram_precision": "half"}, "gram_precision"),
    ("transrate", {"eps": 0.0}, "eps"), ("nleep", {"component_ratio": 0}, "component_ratio"),
    ("nleep", {"em": "full"}, "em must be"),
])
def test_bad_parameter_values_raise(name, params, problem):
    features, labels, _ = _data()
    with pytest.raises(MetricInputError, match=problem) as info:
        score(name, features, labels, **params)
    assert info.value.metric == name and info.value.fix


def _bad_inputs():
    """(case id, metric, features, labels, source_probs, problem text)."""
    features, labels, probs = _data()
    nan_features = features.copy()
    nan_features[3, 2] = np.nan
    inf_features = features.copy()
    inf_features[0, 0] = np.inf
    one_in_class = labels.copy()
    one_in_class[0] = 7
    bad_sum = probs.copy()
    bad_sum[0] *= 2
    return [
        ("features 1-D", "logme", features[:, 0], labels, None, "must be 2-D"),
        ("features 3-D", "logme", features[:, :, None], labels, None, "must be 2-D"),
        ("NaN features", "logme", nan_features, labels, None, "NaN or infinite"),
        ("inf features", "hscore", inf_features, labels, None, "NaN or infinite"),
        ("float labels", "logme", features, labels.astype(float), None, "integer class ids"),
        ("one class", "transrate", features, np.zeros_like(labels), None, "at least 2"),
        ("one sample in a class", "nleep", features, one_in_class, None, "at least 2 samples"),
        ("length mismatch", "logme", features[:-1], labels, None, "rows but labels have"),
        ("probs are logits", "leep", None, labels, np.log(probs), "negative"),
        ("probs do not sum to 1", "nce", None, labels, bad_sum, "do not sum to 1"),
        ("probs length", "leep", None, labels, probs[:-2], "source_probs have"),
        ("probs NaN", "nce", None, labels, np.full_like(probs, np.nan), "NaN or infinite"),
        ("no samples", "logme", features[:0], labels[:0], None, "zero rows"),
    ]


@pytest.mark.parametrize("case", _bad_inputs(), ids=lambda case: case[0])
def test_validation_errors_name_metric_problem_and_fix(case):
    _, name, features, labels, probs, problem = case
    with pytest.raises(MetricInputError, match=problem) as info:
        score(name, features, labels, source_probs=probs)
    message = str(info.value)
    assert message.startswith(f"[{name}]") and "Fix:" in message and info.value.fix


def test_a_device_or_name_of_the_wrong_kind_is_a_clear_error():
    features, labels, _ = _data()
    with pytest.raises(MetricInputError, match="not a torch device"):
        score("logme", features, labels, device="tpu")
    with pytest.raises(MetricInputError, match="a metric name is a string"):
        get_metric(None)
    if not torch.cuda.is_available():
        with pytest.raises(MetricInputError, match="no usable CUDA GPU"):
            score("logme", features, labels, device="cuda")


def test_source_prob_metrics_require_probs():
    features, labels, _ = _data()
    with pytest.raises(MetricInputError, match="needs source_probs"):
        score("nce", features, labels)


@pytest.mark.parametrize("name", OWN_METRICS)
def test_non_contiguous_labels_give_the_same_score(name):
    features, labels, probs = _data()
    relabelled = np.array([3, 7, 11])[labels]
    assert score(name, features, relabelled, source_probs=probs) == pytest.approx(
        score(name, features, labels, source_probs=probs), rel=1e-10)


@pytest.mark.parametrize("name", OWN_METRICS)
def test_numpy_and_torch_inputs_agree(name):
    features, labels, probs = _data()
    from_numpy = score(name, features, labels, source_probs=probs)
    from_torch = score(name, torch.from_numpy(features), torch.from_numpy(labels), source_probs=torch.from_numpy(probs))
    assert from_torch == pytest.approx(from_numpy, rel=1e-12)


def test_float32_input_is_scored_in_float64():
    features, labels, _ = _data()
    assert score("logme", features.astype(np.float32), labels) == pytest.approx(
        score("logme", features.astype(np.float32).astype(np.float64), labels), rel=1e-12)


def test_model_set_metric_via_score_is_a_clear_error():
    model_set = [spec.name for spec in list_metrics(include_transforms=False) if spec.consumes == "model_set"]
    assert {"etran", "ncti"} <= set(model_set)
    features, labels, _ = _data()
    with pytest.raises(MetricInputError, match="relative to a set of models") as info:
        score(model_set[0], features, labels)
    assert "score_zoo" in info.value.fix


def test_score_zoo_scores_each_model():
    features, labels, _ = _data()
    noise = np.random.default_rng(1).normal(size=features.shape)
    zoo = score_zoo("logme", {"good": features, "noise": noise}, labels)
    assert set(zoo) == {"good", "noise"} and zoo["good"] > zoo["noise"]
    assert zoo["good"] == score("logme", features, labels)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["logme", "hscore", "reg_hscore", "transrate", "transrate_official", "leep", "nce"])
def test_cuda_matches_cpu(name):
    features, labels, probs = _data()
    cpu = score(name, features, labels, source_probs=probs)
    assert score(name, features, labels, source_probs=probs, device="cuda") == pytest.approx(cpu, rel=1e-8)


def test_a_model_list_or_a_prior_given_as_text_is_a_clear_error():
    features, labels, _ = _data()
    with pytest.raises(MetricInputError, match="must map model names to features"):
        score_zoo("logme", [features, features], labels)
    with pytest.raises(MetricInputError, match="its params is '25M', not a number"):
        score_zoo("prior:params", {"a": features, "b": features}, labels,
                  priors={"a": {"params": "25M"}, "b": {"params": np.int64(3)}})

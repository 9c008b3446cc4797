"""Metric parameters: a bad name or value is a MetricInputError up front, never a silent NaN score."""

from __future__ import annotations

import numpy as np
import pytest

import hf_tsel
from hf_tsel.errors import MetricInputError
from hf_tsel.metrics import score
from tests.helpers.data import image_dataset


@pytest.mark.parametrize("params, message", [
    ({"gbc": {"n_components": 0.9}}, "unknown parameter(s) n_components"),  # the example docs/usage.md used to give
    ({"gbc": {"pca_dims": "many"}}, "pca_dims='many' is not allowed. Fix: use a whole number"),
    ({"gbc": {"gaussian_type": "full"}}, "use 'spherical' or 'diagonal'"),
    ({"logme": {"tol": float("nan")}}, "tol=nan is not allowed. Fix: use a finite number"),
    ({"hscore": {}}, "this run does not compute"),
])
def test_bad_metric_params_fail_before_any_work(fake_models, tmp_path, params, message):
    zoo, loads = fake_models
    with pytest.raises(MetricInputError) as error:
        hf_tsel.rank(image_dataset(per_class=3), zoo=str(zoo), metrics=["logme", "gbc"], metric_params=params,
                     cache_dir=tmp_path / "c")
    assert message in str(error.value) and not loads


def test_good_metric_params_are_used(fake_models, tmp_path):
    """Each parameter given to rank reaches the metric: the score is the metric's own on the same features with that
    parameter, and differs from the default score (6-dimensional features: fewer PCA dimensions, or one variance per
    dimension instead of their mean, change every model's GBC)."""
    zoo, _ = fake_models
    data = image_dataset(per_class=3)
    features = hf_tsel.extract(data, zoo=str(zoo), cache_dir=tmp_path / "c")

    def gbc_scores(**params):
        ranked = hf_tsel.rank(data, zoo=str(zoo), metrics=["gbc"], metric_params={"gbc": params},
                              cache_dir=tmp_path / "c")
        return ranked[ranked.metric == "gbc"].set_index("model")["score"]

    default = gbc_scores()
    for params in ({"pca_dims": 2}, {"gaussian_type": "diagonal"}, {"pca_dims": 3, "gaussian_type": "diagonal"}):
        scores = gbc_scores(**params)
        for model, outcome in features.items():
            assert outcome.features.features.shape[1] == 6
            expected = score("gbc", outcome.features.features, outcome.labels, **params)
            assert scores[model] == pytest.approx(expected, rel=1e-6), (params, model)
            assert abs(scores[model] - default[model]) > 1e-3 * abs(default[model]), (params, model)


def test_messages_show_labels_as_plain_values():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 5 + [1] * 5 + [7])
    with pytest.raises(MetricInputError) as error:
        score("logme", rng.normal(size=(11, 4)), labels)
    assert "class(es) 7 (1)" in str(error.value) and "np." not in str(error.value)

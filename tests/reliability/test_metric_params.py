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
    zoo, _ = fake_models
    df = hf_tsel.rank(image_dataset(per_class=3), zoo=str(zoo), metrics=["gbc"],
                      metric_params={"gbc": {"pca_dims": 4, "gaussian_type": "diagonal"}}, use_cache=False)
    assert df["score"].notna().all()


def test_messages_show_labels_as_plain_values():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 5 + [1] * 5 + [7])
    with pytest.raises(MetricInputError) as error:
        score("logme", rng.normal(size=(11, 4)), labels)
    assert "class(es) 7 (1)" in str(error.value) and "np." not in str(error.value)

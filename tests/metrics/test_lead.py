"""LEAD (Hu et al., CVPR'24): the fast NTK, the closed form, the SVM and the score's limits."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from sklearn.svm import LinearSVC

from hf_tsel.metrics import MetricInputError, score
from hf_tsel.metrics.lead import (class_mean_eigenvalues, evolve_logits, head_ntk, head_ntk_diagonal,
                                  init_mlp_head, initial_probabilities, lda_probabilities, ledoit_wolf_shrinkage,
                                  ovr_svm_decision_values, ovr_svm_probabilities, platt_probabilities)

from .synthetic import one_hot_blobs

SMALL = dict(hidden=(32, 48))


def _explicit_ntk(layers, inputs):
    """``J J^T`` with ``J`` the explicit Jacobian of the summed logits w.r.t. every head parameter."""
    params = tuple(p for layer in layers for p in layer)

    def summed_logits(*flat):
        hidden = inputs
        for i in range(0, len(flat) - 2, 2):
            hidden = torch.relu(hidden @ flat[i].T + flat[i + 1])
        return (hidden @ flat[-2].T + flat[-1]).sum(dim=1)

    jacobians = torch.func.jacrev(summed_logits, argnums=tuple(range(len(params))))(*params)
    jacobian = torch.cat([j.reshape(len(inputs), -1) for j in jacobians], dim=1)
    return jacobian @ jacobian.T


@pytest.mark.parametrize("hidden", [(16, 24), (9,), (8, 8, 8)])
def test_fast_ntk_equals_explicit_jacobian_product(hidden):
    generator = torch.Generator().manual_seed(0)
    layers = init_mlp_head(6, 4, hidden, generator=generator, dtype=torch.float64)
    layers = [(w, torch.randn(b.shape, generator=generator, dtype=torch.float64)) for w, b in layers]  # non-zero biases
    inputs = torch.randn(7, 6, generator=generator, dtype=torch.float64)
    explicit = _explicit_ntk(layers, inputs)
    torch.testing.assert_close(head_ntk(layers, inputs), explicit, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(head_ntk_diagonal(layers, inputs), explicit.diagonal(), rtol=1e-10, atol=1e-10)


def test_closed_form_equals_numerical_integration():
    """``F_t`` of Eq. 7 solves ``dF/dt = -eta*Phi*(F - Y)``; per class Phi is ``lambda_k * I`` (Eq. 7's approximation)."""
    rng = np.random.default_rng(0)
    initial = rng.dirichlet(np.ones(3), size=5)
    targets = np.eye(3)[[0, 1, 2, 0, 1]]
    rates = np.array([0.7, 2.0, 0.1, 0.7, 2.0])  # eta * lambda of each sample's class
    phi = np.kron(np.diag(rates), np.eye(3))  # block-diagonal kernel over (sample, logit) pairs

    def rhs(_, flat):
        return -phi @ (flat - targets.ravel())

    solution = solve_ivp(rhs, (0, 1.5), initial.ravel(), rtol=1e-10, atol=1e-12).y[:, -1].reshape(5, 3)
    closed = evolve_logits(torch.from_numpy(initial), torch.from_numpy(targets), torch.from_numpy(rates), 1.5)
    np.testing.assert_allclose(closed.numpy(), solution, rtol=1e-7, atol=1e-9)


_data = functools.partial(one_hot_blobs, n_per_class=30, classes=4, dim=12)


@pytest.mark.parametrize("initial", ["svm-platt", "lda", "svm-normalised"])
def test_t_zero_scores_the_initial_probabilities(initial):
    features, labels = _data(1.0)
    torch_features = torch.from_numpy(features).float()
    standardised = (torch_features - torch_features.mean(0)) / torch_features.std(0, correction=0)
    probabilities = initial_probabilities(standardised, torch.from_numpy(labels), 4, initial,
                                          generator=torch.Generator().manual_seed(0))
    expected = float(torch.log(probabilities[torch.arange(len(labels)), torch.from_numpy(labels)]).double().mean())
    assert score("lead", features, labels, t=0.0, initial=initial, **SMALL) == pytest.approx(expected, rel=1e-6)


def test_infinite_time_reaches_the_labels():
    features, labels = _data(1.0)
    assert score("lead", features, labels, t=1e12, **SMALL) == pytest.approx(0.0, abs=1e-9)
    assert score("lead", features, labels, t=1.0, **SMALL) < score("lead", features, labels, t=5.0, **SMALL) < 0


def test_more_separable_features_score_higher():
    values = [score("lead", *_data(separation, seed=1), **SMALL) for separation in (0.0, 1.0, 2.0, 4.0)]
    assert values == sorted(values)


def test_svm_matches_scikit_learn_linear_svc():
    features, labels = _data(1.5, classes=3, dim=5)
    reference = LinearSVC(C=1.0, tol=1e-8, max_iter=100_000).fit(features, labels)
    decision = reference.decision_function(features)
    expected = 1 / (1 + np.exp(-decision))
    expected /= expected.sum(axis=1, keepdims=True)
    ours = ovr_svm_probabilities(torch.from_numpy(features), torch.from_numpy(labels), 3, max_iter=200, folds=1,
                                 calibration="normalised-sigmoid")
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-4)


def test_cross_fitted_probabilities_are_out_of_sample():
    """Out-of-fold probabilities of the true class are lower than in-sample ones (the SVM never saw the sample)."""
    features, labels = _data(2.0, classes=3, dim=5)
    inputs = torch.from_numpy(features), torch.from_numpy(labels)
    in_sample = ovr_svm_probabilities(*inputs, 3, folds=1, max_iter=50, calibration="normalised-sigmoid")
    cross_fitted = ovr_svm_probabilities(*inputs, 3, folds=5, max_iter=50, generator=torch.Generator().manual_seed(0),
                                         calibration="normalised-sigmoid")
    true_class = torch.arange(len(labels)), inputs[1]
    assert float(cross_fitted[true_class].mean()) < float(in_sample[true_class].mean())


def test_seeded_and_deterministic():
    features, labels = _data(1.0)
    first = score("lead", features, labels, seed=3, **SMALL)
    assert score("lead", features, labels, seed=3, **SMALL) == first
    assert score("lead", features, labels, seed=4, **SMALL) != first


def test_ntk_uses_at_most_samples_per_class():
    features, labels = _data(1.0, n_per_class=5)
    every_sample = score("lead", features, labels, samples_per_class=5, **SMALL)
    assert math.isfinite(every_sample)
    # classes of 5: S = 64 takes the whole class, the same kernel as S = 5; S = 2 takes fewer samples
    assert score("lead", features, labels, samples_per_class=64, **SMALL) == every_sample
    assert score("lead", features, labels, samples_per_class=2, **SMALL) != every_sample


def test_bad_parameters_are_explained():
    features, labels = _data(1.0)
    with pytest.raises(MetricInputError, match="t must be finite"):
        score("lead", features, labels, t=-1.0)
    with pytest.raises(MetricInputError, match="time_unit"):
        score("lead", features, labels, time_unit=0.0)
    with pytest.raises(MetricInputError, match="unknown initial classifier"):
        score("lead", features, labels, initial="svm")
    with pytest.raises(MetricInputError, match="samples_per_class"):
        score("lead", features, labels, samples_per_class=0)


def test_platt_scaling_matches_scikit_learn():
    """Per class, the sigmoid is scikit-learn's Platt fit (``_sigmoid_calibration``) on the same decision values."""
    calibration = pytest.importorskip("sklearn.calibration")
    features, labels = _data(1.5, classes=3, dim=5)
    decision = ovr_svm_decision_values(torch.from_numpy(features), torch.from_numpy(labels), 3, max_iter=50,
                                       generator=torch.Generator().manual_seed(0)).numpy()
    expected = np.empty_like(decision)
    for k in range(3):
        a, b = calibration._sigmoid_calibration(decision[:, k], labels == k)
        expected[:, k] = 1 / (1 + np.exp(a * decision[:, k] + b))
    expected /= expected.sum(axis=1, keepdims=True)
    ours = platt_probabilities(torch.from_numpy(decision), torch.from_numpy(labels), 3)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5)


def _confidence_and_accuracy(probabilities: torch.Tensor, labels: np.ndarray) -> tuple[float, float]:
    top = probabilities.max(dim=1)
    return float(top.values.mean()), float((top.indices.numpy() == labels).mean())


@pytest.mark.parametrize("initial", ["svm-platt", "lda"])
def test_initial_probabilities_are_calibrated(initial):
    """Eq. 7 blends F_0 with one-hot labels and scores the blend by cross-entropy, so F_0 must be a
    calibrated probability: on a well-separated sample the mean top probability is about the accuracy.
    The old normalised sigmoid of hinge decision values is far less confident than it is accurate.
    (Normalising ten one-vs-rest Platt sigmoids still dilutes the top class a little: 0.88 at 0.97.)"""
    features, labels = one_hot_blobs(4.5, n_per_class=60, classes=10, dim=64, seed=3)
    inputs = torch.from_numpy(features), torch.from_numpy(labels)
    generator = torch.Generator().manual_seed(0)
    confidence, accuracy = _confidence_and_accuracy(initial_probabilities(*inputs, 10, initial, generator=generator),
                                                    labels)
    assert accuracy > 0.9 and abs(confidence - accuracy) < 0.12
    old_confidence, old_accuracy = _confidence_and_accuracy(
        initial_probabilities(*inputs, 10, "svm-normalised", generator=torch.Generator().manual_seed(0)), labels)
    assert old_accuracy - old_confidence > 0.4


def test_ledoit_wolf_shrinkage_matches_scikit_learn():
    covariance_module = pytest.importorskip("sklearn.covariance")
    rng = np.random.default_rng(0)
    centred = rng.normal(size=(50, 80)) @ rng.normal(size=(80, 80))
    centred -= centred.mean(0)
    rows = torch.from_numpy(centred)
    ours = ledoit_wolf_shrinkage((rows * rows).sum(1), rows.T @ rows / 50, 50)
    assert ours == pytest.approx(covariance_module.ledoit_wolf_shrinkage(centred, assume_centered=True), rel=1e-10)


def test_lda_probabilities_are_out_of_sample():
    features, labels = _data(2.0, classes=3, dim=5)
    inputs = torch.from_numpy(features), torch.from_numpy(labels)
    in_sample = lda_probabilities(*inputs, 3, folds=1)
    cross_fitted = lda_probabilities(*inputs, 3, folds=5, generator=torch.Generator().manual_seed(0))
    true_class = torch.arange(len(labels)), inputs[1]
    assert float(cross_fitted[true_class].mean()) < float(in_sample[true_class].mean())


def test_pooled_time_unit_is_order_one_and_independent_of_the_dimension():
    """The mean NTK eigenvalue grows with the feature dimension D (the first layer's gradient carries
    ``|x|^2 ~ D``); in units of the pooled eigenvalue the class rates are about 1 at every D."""
    pooled, relative = [], []
    for dim in (16, 1024):
        features, labels = one_hot_blobs(1.0, n_per_class=30, classes=3, dim=dim, seed=0)
        standardised = torch.from_numpy((features - features.mean(0)) / features.std(0)).float()
        generator = torch.Generator().manual_seed(0)
        layers = init_mlp_head(dim, 3, (64, 64), generator=generator)
        per_class, value = class_mean_eigenvalues(layers, standardised, torch.from_numpy(labels), 3, 64, generator)
        pooled.append(value)
        relative.append(per_class / value)
    assert pooled[1] > 2 * pooled[0]
    for rates in relative:
        assert torch.allclose(rates, torch.ones(3, dtype=rates.dtype), atol=0.3)

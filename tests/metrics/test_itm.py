"""ITM (Zheng et al., NeurIPS'25): determinism, recursion and adaptive rate, split, ordering."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from hf_tsel.metrics import MetricInputError, score
from hf_tsel.metrics._validation import prepare_inputs
from hf_tsel.metrics.itm import (adaptive_rate, dca_target, itm_trace, mean_centre_distance, stratified_split,
                                 training_budget, training_span)

from .synthetic import one_hot_blobs

FAST = dict(epochs=None, iterations=100, batch_size=256, checks=2)


_data = functools.partial(one_hot_blobs, n_per_class=40, classes=4, dim=16)


def test_same_seed_same_score_other_seed_other_score():
    features, labels = _data(1.0)
    first = score("itm", features, labels, seed=5, **FAST)
    assert score("itm", features, labels, seed=5, **FAST) == first
    assert score("itm", features, labels, seed=6, **FAST) != first


def test_more_separable_features_score_higher():
    values = [score("itm", *_data(separation, seed=2), **FAST) for separation in (0.0, 1.0, 2.0, 4.0)]
    assert values == sorted(values)


def test_invariant_to_per_dimension_scale_and_offset():
    """Pre-standardisation (Sec. 3.4) removes per-dimension affine changes of the features."""
    features, labels = _data(1.5)
    scale = np.random.default_rng(1).uniform(0.1, 10, size=features.shape[1])
    assert score("itm", features * scale + 3, labels, **FAST) == pytest.approx(score("itm", features, labels, **FAST),
                                                                               rel=1e-6)


def test_recursion_matches_its_closed_form():
    """``E <- (1 - eta) E + eta E_hat`` n times equals ``(1 - eta)^n E + (1 - (1 - eta)^n) E_hat`` (Eq. 7, C = eta I)."""
    generator = torch.Generator().manual_seed(0)
    mapped = torch.randn(8, 5, generator=generator, dtype=torch.float64)
    centres = torch.eye(5, dtype=torch.float64)[torch.arange(8) % 5]
    for steps in (1, 3):
        decay = (1 - 0.3) ** steps
        torch.testing.assert_close(dca_target(mapped, centres, 0.3, steps), decay * mapped + (1 - decay) * centres)
    torch.testing.assert_close(dca_target(mapped, centres, 1.0), centres)
    torch.testing.assert_close(dca_target(mapped, centres, 0.0), mapped)


def test_adaptive_rate_equalises_the_remaining_distance():
    """Appendix Eq. 11-12: ``(1 - eta_i) dis_i = (1 - eta_b) dis_b`` for every model, with eta_b at dis_b."""
    assert adaptive_rate(1.0, anchor_rate=0.5, anchor_distance=1.0) == pytest.approx(0.5)
    for distance in (0.6, 0.9, 1.3, 4.0):
        rate = adaptive_rate(distance, anchor_rate=0.5, anchor_distance=1.0)
        assert (1 - rate) * distance == pytest.approx(0.5 * 1.0)
    assert adaptive_rate(0.2) == 0.0  # clipped: already closer than the anchor's remaining distance
    assert adaptive_rate(0.0) == 0.0
    assert adaptive_rate(0.7) < adaptive_rate(0.9)  # worse-clustered features get the larger step


def test_mean_centre_distance_is_about_one_without_class_structure_and_zero_when_collapsed():
    features, labels = _data(0.0, n_per_class=500)
    standardised = torch.from_numpy((features - features.mean(0)) / features.std(0))
    assert mean_centre_distance(standardised, torch.from_numpy(labels), 4) == pytest.approx(1.0, abs=0.05)
    collapsed = torch.eye(4, dtype=torch.float64)[torch.from_numpy(labels)]
    assert mean_centre_distance(collapsed, torch.from_numpy(labels), 4) == 0.0


def test_stratified_four_to_one_split():
    labels = torch.from_numpy(np.repeat(np.arange(3), [50, 10, 2]))
    train, validation = stratified_split(labels, 3, generator=torch.Generator().manual_seed(0))
    assert sorted(torch.cat([train, validation]).tolist()) == list(range(62))
    assert torch.bincount(labels[validation], minlength=3).tolist() == [10, 2, 1]
    assert torch.bincount(labels[train], minlength=3).tolist() == [40, 8, 1]
    again = stratified_split(labels, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[1], validation)


def test_bad_parameters_are_explained():
    features, labels = _data(1.0)
    with pytest.raises(MetricInputError, match="exactly two of epochs"):
        score("itm", features, labels, epochs=0)
    with pytest.raises(MetricInputError, match="exactly two of epochs"):
        score("itm", features, labels, batch_size=256)  # all three given
    with pytest.raises(MetricInputError, match="checks >= 1"):
        score("itm", features, labels, checks=0)


def _inputs(features, labels):
    return prepare_inputs("itm", features, labels, needs_features=True, needs_source_probs=False)


def test_validation_does_not_decay_in_the_papers_regime():
    """N_train = 640 >= D = 64: with at most 20 passes the validation accuracy and log-likelihood
    keep improving to the end (no over-fitting decay)."""
    trace = itm_trace(_inputs(*one_hot_blobs(2.0, n_per_class=200, classes=4, dim=64, seed=1)), checks=10)
    assert trace.accuracy[-1] >= max(trace.accuracy) - 0.08 and trace.accuracy[-1] > trace.accuracy[0] + 0.1
    assert trace.log_likelihood[-1] >= max(trace.log_likelihood) - 0.05


def test_pass_budget_and_span_curb_the_decay_when_n_train_is_below_d():
    """N_train = 160 < D = 400. The literal 500 x 256 are 500 passes over the training part: the map
    over-fits and the validation log-likelihood falls by > 2 nats. With at most 20 passes and the map
    restricted to the training span it ends much higher; 20 passes at batch 256 (iterations from N)
    do not decay at all (but train little, see docs/methods.md)."""
    inputs = _inputs(*one_hot_blobs(4.0, n_per_class=50, classes=4, dim=400, seed=1))
    old = itm_trace(inputs, epochs=None, batch_size=256, span=False, checks=10)
    new = itm_trace(inputs, checks=10)
    assert old.log_likelihood[-1] < max(old.log_likelihood) - 2.0
    assert new.log_likelihood[-1] > old.log_likelihood[-1] + 1.0 and new.accuracy[-1] > old.accuracy[-1]
    passes = itm_trace(inputs, iterations=None, batch_size=256, checks=10)
    assert passes.accuracy[-1] >= passes.accuracy[0] and passes.log_likelihood[-1] >= max(passes.log_likelihood) - 0.02


@pytest.mark.parametrize("n_train, budget, expected", [
    (160, dict(epochs=20.0, iterations=500, batch_size=None), (500, 7)),  # ceil(20 * 160 / 500) = 7
    (40_000, dict(epochs=20.0, iterations=500, batch_size=None), (500, 256)),  # CIFAR-size: the paper's 3.2 passes
    (640, dict(epochs=20.0, iterations=None, batch_size=256), (50, 256)),
    (160, dict(epochs=20.0, iterations=None, batch_size=256), (20, 160)),  # batch capped at N_train
    (160, dict(epochs=None, iterations=500, batch_size=256), (500, 160)),
])
def test_training_budget_from_any_two_of_passes_iterations_and_batch(n_train, budget, expected):
    assert training_budget(n_train, **budget) == expected


def test_trace_checks_are_evenly_spaced():
    inputs = _inputs(*one_hot_blobs(2.0, n_per_class=50, classes=4, dim=8))
    assert itm_trace(inputs, iterations=30, checks=3).iterations == [10, 20, 30]


def test_training_span_is_an_orthonormal_basis_of_the_training_rows():
    rng = np.random.default_rng(0)
    features = torch.from_numpy(rng.normal(size=(30, 50)))
    rows = torch.arange(20)
    basis = training_span(features, rows)
    assert basis.shape == (50, 20)
    torch.testing.assert_close(basis.T @ basis, torch.eye(20, dtype=basis.dtype), rtol=0, atol=1e-10)
    torch.testing.assert_close(features[rows] @ basis @ basis.T, features[rows], rtol=0, atol=1e-10)
    assert training_span(features[:, :10], rows) is None  # N_train >= D: nothing to drop


def test_training_span_with_more_rows_than_dimensions_still_drops_dead_units():
    # N_train >= D takes the Gram-matrix shortcut; it must not call a rank-deficient span full.
    rng = np.random.default_rng(1)
    features = torch.from_numpy(rng.normal(size=(200, 10)))
    features[:, [3, 7]] = 0.0
    features[:, 5] = features[:, 0] - 2 * features[:, 1]
    basis = training_span(features, torch.arange(150))
    assert basis.shape == (10, 7)
    torch.testing.assert_close(features @ basis @ basis.T, features, rtol=0, atol=1e-10)
    dependent_only = torch.from_numpy(rng.normal(size=(200, 10)))
    dependent_only[:, 5] = dependent_only[:, 0] - 2 * dependent_only[:, 1] + dependent_only[:, 9] / 3
    # its Gram matrix's smallest eigenvalue is rounding noise, not 0: the shortcut must leave it to the SVD
    assert training_span(dependent_only, torch.arange(150)).shape == (10, 9)
    nearly_dependent = features.clone()
    nearly_dependent[:, [3, 7]] = 1e-3 * torch.from_numpy(rng.normal(size=(200, 2)))
    nearly_dependent[:, 5] += 1e-3 * torch.from_numpy(rng.normal(size=200))
    assert training_span(nearly_dependent, torch.arange(150)) is None  # full rank, though poorly conditioned


def test_training_runs_on_one_cpu_thread_and_restores_the_thread_count(monkeypatch):
    seen = []
    original_step = torch.optim.AdamW.step
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, *a, **k: (seen.append(torch.get_num_threads()),
                                                                          original_step(self, *a, **k))[1])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        itm_trace(_inputs(*one_hot_blobs(2.0, n_per_class=20, classes=3, dim=8)), iterations=5, checks=1)
        assert set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)

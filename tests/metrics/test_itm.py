"""ITM (Zheng et al., NeurIPS'25): determinism, recursion and adaptive rate, split, ordering."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from hf_tsel.metrics import MetricInputError, score
from hf_tsel.metrics.itm import adaptive_rate, dca_target, mean_centre_distance, stratified_split

from .synthetic import one_hot_blobs

FAST = dict(iterations=100, eval_every=50)


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
    with pytest.raises(MetricInputError, match="eval_every"):
        score("itm", features, labels, iterations=10, eval_every=100)

"""PED (Li et al., ICCV'23): golden parity with the authors' code, the O(C*D) force sum, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_tsel.metrics import MetricInputError, get_metric, list_metrics, score
from hf_tsel.metrics.ped import refine

from tests.helpers.golden import CASES, assert_close

PED_BASES = ["logme", "sfda", "gbc", "nleep", "hscore", "transrate"]


def _golden_inputs(golden_case, case):
    data = golden_case(case)
    return data["features"].astype(np.float64), data["labels"], dict(norm_mean=data["norm_mean"],
                                                                     norm_std=data["norm_std"])


@pytest.mark.parametrize("case", CASES)
def test_steps_and_change_ratios_match_reference(golden_case, golden_expected, case):
    features, labels, stats = _golden_inputs(golden_case, case)
    _, info = refine(features, labels, **stats)
    details = golden_expected[case]["ped_sfda"]["details"]
    assert info.accepted_steps == details["accepted_steps"]
    expected = [r for r in details["change_ratios"] if r is not None]  # null = the reference's 0/0
    np.testing.assert_allclose(info.change_ratios, expected, rtol=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_ped_logme_matches_icml_reference(golden_case, golden_expected, case):
    features, labels, stats = _golden_inputs(golden_case, case)
    assert_close(score("ped+logme", features, labels, **stats), golden_expected[case]["ped_logme_icml"])


@pytest.mark.parametrize("case", [c for c in CASES if c != "rank_deficient"])
def test_full_rank_cases_also_match_fixed_point_reference(golden_case, golden_expected, case):
    """With rank = D the reference's fixed-point LogME only differs by its stopping tolerance.

    That difference is ~1e-5 in absolute evidence per sample, so values near 0 (zoo_m1: 0.0014)
    need an absolute tolerance next to the relative one.
    """
    features, labels, stats = _golden_inputs(golden_case, case)
    entry = dict(golden_expected[case]["ped_logme"], rtol=1e-3, atol=1e-4)
    assert_close(score("ped+logme", features, labels, **stats), entry)


def test_rank_deficient_does_not_reproduce_inflated_reference(golden_case, golden_expected):
    features, labels, stats = _golden_inputs(golden_case, "rank_deficient")
    ours = score("ped+logme", features, labels, **stats)
    inflated = golden_expected["rank_deficient"]["ped_logme"]["value"]  # 3.197, missing log-det term
    assert abs(ours - inflated) > 1.0
    assert ours < 0.5


@pytest.mark.parametrize("case", CASES)
def test_ped_sfda_matches_reference(golden_case, golden_expected, case):
    features, labels, stats = _golden_inputs(golden_case, case)
    assert_close(score("ped+sfda", features, labels, **stats), golden_expected[case]["ped_sfda"])


def test_zoo_ranking_of_ped_logme(golden_case, golden_expected):
    values = []
    for model in golden_expected["zoo"]["_info"]["models"]:
        features, labels, stats = _golden_inputs(golden_case, model)
        values.append(score("ped+logme", features, labels, **stats))
    assert list(np.argsort(values)[::-1]) == golden_expected["zoo"]["ped_logme_icml"]["ranking"]


def _pairwise_displacement(centres: np.ndarray, radii: np.ndarray, lam=0.6, dt=0.1, k=1.0) -> np.ndarray:
    """The textbook C x C x D form of one step (Alg. 1 line 7-8, with the reference's cap)."""
    diff = centres[:, None, :] - centres[None, :, :]
    dist = np.linalg.norm(diff, axis=2)
    overlap = np.maximum(lam * (radii[:, None] + radii[None, :]) - dist, 0)
    np.fill_diagonal(overlap, 0)
    move = np.minimum(0.5 * k * dt**2 * overlap, overlap)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(dist[..., None] > 0, diff / dist[..., None], 0)
    return (move[..., None] * unit).sum(axis=1)


def test_one_step_equals_pairwise_force_sum():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(7), 30)
    features = rng.normal(size=(210, 12)) + 0.8 * rng.normal(size=(7, 12))[labels]
    moved, info = refine(features, labels, max_steps=1)
    mean, std = features.mean(0), features.std(0)
    z = (features - mean) / std
    centres = np.stack([z[labels == c].mean(0) for c in range(7)])
    radii = np.sqrt(np.stack([z[labels == c].var(0) for c in range(7)]).sum(1))
    expected = features + (_pairwise_displacement(centres, radii) * std)[labels]
    assert info.accepted_steps == 1
    np.testing.assert_allclose(moved, expected, rtol=1e-10, atol=1e-12)


def test_classes_move_apart_rigidly():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 40)
    features = rng.normal(size=(120, 6)) + 0.3 * np.eye(6)[labels]
    moved, info = refine(features, labels)
    shift = moved - features
    for c in range(3):  # one translation per class
        np.testing.assert_allclose(shift[labels == c], np.broadcast_to(shift[labels == c][0], (40, 6)), atol=1e-12)
    before = np.linalg.norm(features[labels == 0].mean(0) - features[labels == 1].mean(0))
    after = np.linalg.norm(moved[labels == 0].mean(0) - moved[labels == 1].mean(0))
    assert after > before and info.accepted_steps >= 1


def test_no_overlap_takes_no_step_and_keeps_features():
    labels = np.repeat([0, 1], 10)
    features = np.random.default_rng(1).normal(scale=0.01, size=(20, 3)) + 100 * labels[:, None]
    moved, info = refine(features, labels)
    assert info.accepted_steps == 0 and info.change_ratios == ()
    np.testing.assert_array_equal(moved, features)
    assert score("ped+logme", features, labels) == score("logme", features, labels)


def test_coincident_class_means_stay_finite():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(30, 5))
    features = np.concatenate([base, -base, rng.normal(size=(30, 5)) + 0.5])  # classes 0 and 1 share mean 0 exactly
    labels = np.repeat([0, 1, 2], 30)
    moved, info = refine(features, labels)
    assert np.isfinite(moved).all() and info.accepted_steps >= 1
    assert np.isfinite(score("ped+logme", features, labels))


def test_max_steps_and_epsilon_control_the_loop():
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(5), 20)
    features = rng.normal(size=(100, 8))
    assert refine(features, labels, max_steps=0)[1].accepted_steps == 0
    assert refine(features, labels, max_steps=5)[1].accepted_steps == 5
    _, six = refine(features, labels)
    assert six.accepted_steps == 6 and len(six.change_ratios) == 6
    strict = refine(features, labels, epsilon=six.change_ratios[2])[1]
    assert strict.accepted_steps == 2 and len(strict.change_ratios) == 3  # the third step is tried, then discarded


def test_refine_keeps_array_type_and_dtype():
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1], 15)
    features = rng.normal(size=(30, 4)).astype(np.float32)
    moved_np, _ = refine(features, labels)
    moved_t, _ = refine(torch.from_numpy(features), torch.from_numpy(labels))
    assert isinstance(moved_np, np.ndarray) and moved_np.dtype == np.float32
    assert isinstance(moved_t, torch.Tensor) and moved_t.dtype == torch.float32
    np.testing.assert_allclose(moved_t.numpy(), moved_np)


def test_without_norm_stats_uses_target_statistics():
    rng = np.random.default_rng(6)
    labels = np.repeat([0, 1, 2], 20)
    features = rng.normal(size=(60, 5)) * 3 + 1
    own = dict(norm_mean=features.mean(0), norm_std=features.std(0))
    np.testing.assert_allclose(refine(features, labels)[0], refine(features, labels, **own)[0])


def test_bad_parameters_are_explained():
    features, labels = np.random.default_rng(7).normal(size=(20, 3)), np.repeat([0, 1], 10)
    with pytest.raises(MetricInputError, match="both"):
        score("ped+logme", features, labels, norm_mean=np.zeros(3))
    with pytest.raises(MetricInputError, match="3 finite numbers"):
        score("ped+logme", features, labels, norm_mean=np.zeros(4), norm_std=np.ones(4))
    with pytest.raises(MetricInputError, match="epsilon"):
        refine(features, labels, epsilon=1.5)
    with pytest.raises(MetricInputError, match="unknown parameter"):
        refine(features, labels, steps=3)


def test_ped_composes_with_every_feature_metric():
    for name in PED_BASES:
        spec = get_metric(f"ped+{name}")
        assert {"norm_mean", "norm_std", "lam", "max_steps"} <= set(spec.parameters)
    feature_metrics = [m.name for m in list_metrics(include_transforms=False) if m.consumes == "features"]
    assert {f"ped+{name}" for name in feature_metrics} <= {m.name for m in list_metrics()}

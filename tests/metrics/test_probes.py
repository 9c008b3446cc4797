"""Training-based proxies ``linear_probe_cv`` and ``knn``: exactness against scikit-learn / brute force, properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_tsel.metrics import MetricInputError, get_metric, list_metrics, score
from hf_tsel.metrics.probes import RIDGE_ALPHAS, _ridge_loo, _stratified_folds

PROXIES = ("linear_probe_cv", "knn")


def _blobs(n_per_class=(20, 30, 25, 15), dim=12, shift=1.0, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(n_per_class)), n_per_class)
    return rng.normal(size=(len(labels), dim)) + shift * np.eye(dim)[labels], labels


@pytest.mark.parametrize("shape", [(90, 12), (50, 200)], ids=["N>D", "N<D"])
def test_ridge_leave_one_out_equals_scikit_learn(shape):
    from sklearn.linear_model import RidgeClassifier
    from sklearn.model_selection import LeaveOneOut, cross_val_score
    from sklearn.preprocessing import StandardScaler

    n, d = shape
    rng = np.random.default_rng(1)
    labels = np.arange(n) % 5
    features = rng.normal(size=(n, d)) + np.eye(d)[labels]
    hits, alpha = _ridge_loo(torch.from_numpy(features), torch.from_numpy(labels), 5)
    accuracy = float(hits.mean())
    assert alpha in RIDGE_ALPHAS
    standardised = StandardScaler().fit_transform(features)
    gram = standardised.T @ standardised if d < n else standardised @ standardised.T
    eigenvalues = np.linalg.eigvalsh(gram)
    strength = alpha * eigenvalues[eigenvalues > eigenvalues.max() * 1e-10].mean()
    expected = cross_val_score(RidgeClassifier(alpha=strength), standardised, labels, cv=LeaveOneOut()).mean()
    assert accuracy == pytest.approx(expected, abs=1e-12)


def test_knn_equals_brute_force_leave_one_out():
    features, labels = _blobs(shift=0.8)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    hits = []
    for i in range(len(labels)):
        nearest = np.argsort(-similarity[i])[:5]
        votes = np.bincount(labels[nearest], weights=np.exp(similarity[i, nearest] / 0.07), minlength=4)
        hits.append(float(votes.argmax() == labels[i]))
    assert score("knn", features, labels, k=5) == pytest.approx(np.mean(hits), abs=1e-12)


def test_knn_euclidean_majority_counts_ties_as_fractions():
    # Two classes on a line; the middle point's two neighbours (k=2) are one of each class: half a hit.
    features = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    value = score("knn", features, labels, k=2, distance="euclidean")
    # points 0,1 and 4,5: both neighbours agree (hit); points 2 and 3: one neighbour of each class (1/2)
    assert value == pytest.approx((4 + 0.5 + 0.5) / 6)


@pytest.mark.parametrize("name", PROXIES)
def test_proxies_are_label_permutation_invariant(name):
    features, labels = _blobs()
    relabelled = np.array([3, 0, 2, 1])[labels]
    assert score(name, features, relabelled) == pytest.approx(score(name, features, labels), abs=1e-9)


@pytest.mark.parametrize("name", PROXIES)
def test_proxies_degrade_when_labels_are_shuffled(name):
    features, labels = _blobs(shift=2.0)
    shuffled = np.random.default_rng(3).permutation(labels)
    assert score(name, features, labels) > score(name, features, shuffled) + 0.3


@pytest.mark.parametrize("name,params", [("linear_probe_cv", {}), ("linear_probe_cv", {"method": "logistic"}),
                                         ("knn", {}), ("knn", {"max_queries": 40})])
def test_proxies_are_deterministic_per_seed_and_agree_for_numpy_and_torch(name, params):
    features, labels = _blobs()
    first = score(name, features, labels, seed=4, **params)
    assert score(name, features, labels, seed=4, **params) == first
    assert score(name, torch.from_numpy(features), torch.from_numpy(labels), seed=4, **params) == pytest.approx(
        first, abs=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", PROXIES)
def test_proxies_agree_on_cuda(name):
    features, labels = _blobs()
    assert score(name, features, labels, device="cuda") == pytest.approx(score(name, features, labels), abs=1e-6)


def test_knn_query_subset_estimates_the_full_accuracy():
    features, labels = _blobs(n_per_class=(150, 150, 150, 150), shift=1.2)
    full = score("knn", features, labels, max_queries=None)
    subset = score("knn", features, labels, max_queries=300, seed=1)
    assert subset != full and subset == pytest.approx(full, abs=0.08)


def test_stratified_folds_balance_every_class():
    labels = torch.from_numpy(np.repeat(np.arange(3), [10, 7, 5]))
    folds = _stratified_folds(labels, 5, seed=0)
    for c in range(3):
        sizes = np.bincount(folds[labels.numpy() == c], minlength=5)
        assert sizes.max() - sizes.min() <= 1


def test_bad_parameters_name_the_fix():
    features, labels = _blobs()
    with pytest.raises(MetricInputError, match="folds must be between 2"):
        score("linear_probe_cv", features, labels, method="logistic", folds=50)
    with pytest.raises(MetricInputError, match="k and max_queries"):
        score("knn", features, labels, k=0)


def test_proxies_are_listed_with_metadata():
    names = {m.name for m in list_metrics(include_transforms=False)}
    assert set(PROXIES) <= names
    assert "method" in get_metric("linear_probe_cv").parameters and "k" in get_metric("knn").parameters

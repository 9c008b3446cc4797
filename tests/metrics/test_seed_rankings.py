"""Do the seed-paper methods rank model zoos sensibly?

Three zoos, each with a ranking known by construction:

* the golden ``zoo`` (zoo_m0..m4): class separation grows from m0 to m4, linear-probe accuracy
  0.31 ... 0.99, so the ranking is [4, 3, 2, 1, 0];
* a "self-supervised-like" zoo: every model hides the same class prototypes in a low-variance
  6-dimensional subspace under 42 high-variance nuisance directions (then a random rotation and an
  offset). The class separation inside the subspace grows from m0 to m3, so a fine-tuned head
  would rank them m3 > m2 > m1 > m0, but before fine-tuning the nuisance dominates and the classes
  overlap; static evidence (plain LogME) is not reliable here. The seed methods model the
  dynamics of fine-tuning (PED moves classes apart, LEAD evolves logits, ITM adapts a mapping), so
  they should recover the order: this is the situation the PED and LEAD papers target;
* a "collapse" zoo for the persistence ratio: fixed class centres, within-class spread shrinking
  from m0 to m3 (models at later stages of neural collapse). The persistence ratio only looks at
  Euclidean cluster structure and uses the labels only for the number of classes, so this is the
  situation it is designed for; on the other two zoos the class structure is not what dominates the
  Euclidean geometry and it is not expected to work (the poster itself reports that the ratio on
  target embeddings is unreliable). That limitation is asserted too, so a change shows up.

Kendall tau thresholds instead of exact orders where a method is stochastic (LEAD, ITM) or where
two models are close by construction.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from hf_tsel.metrics import score


def _tau(values, quality) -> float:
    return float(kendalltau(values, quality)[0])


@pytest.fixture(scope="module")
def golden_zoo(golden_case, golden_expected):
    models = golden_expected["zoo"]["_info"]["models"]
    return [golden_case(model) for model in models], golden_expected["zoo"]["_info"]["ranking_by_construction"]


def _ssl_like_zoo(seed: int = 0, n_per_class: int = 60, classes: int = 6, dim: int = 48, latent: int = 6):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    prototypes = rng.normal(size=(classes, latent))
    models = []
    for separation in (0.3, 0.6, 1.0, 1.6):
        rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        signal = separation * prototypes[labels] + 0.5 * rng.normal(size=(len(labels), latent))
        nuisance = 4.0 * rng.normal(size=(len(labels), dim - latent))
        models.append(np.concatenate([0.3 * signal, nuisance], axis=1) @ rotation + 2.0)
    return models, labels


def _collapse_zoo(seed: int = 0, n_per_class: int = 50, classes: int = 5, dim: int = 32):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    centres = 3.0 * rng.normal(size=(classes, dim))
    models = [centres[labels] + spread * rng.normal(size=(len(labels), dim)) for spread in (1.5, 1.0, 0.6, 0.3)]
    return models, labels


def _golden_scores(zoo, name):
    models, _ = zoo
    extra = (lambda m: dict(norm_mean=m["norm_mean"], norm_std=m["norm_std"])) if name.startswith("ped") else (
        lambda m: {})
    return [score(name, m["features"].astype(np.float64), m["labels"], **extra(m)) for m in models]


def test_golden_zoo_ped_logme_reproduces_the_construction(golden_zoo):
    values = _golden_scores(golden_zoo, "ped+logme")
    assert list(np.argsort(values)[::-1]) == golden_zoo[1]


# ITM trains a head per model: over a whole zoo it is the slow item of this file.
@pytest.mark.parametrize("name, threshold", [pytest.param("itm", 0.8, marks=pytest.mark.slow), ("lead", 0.6)])
def test_golden_zoo_dynamics_methods_agree_with_the_construction(golden_zoo, name, threshold):
    """ITM gets the full order; LEAD swaps m2/m3 (its cross-fitted SVM is least sure on m3, D = 512 > N/C)."""
    values = _golden_scores(golden_zoo, name)
    quality = [4 - golden_zoo[1].index(i) for i in range(5)]
    assert _tau(values, quality) >= threshold


def test_golden_zoo_persistence_ratio_is_not_predictive(golden_zoo):
    """Documented limitation: the zoo's feature dimension grows with quality (64 ... 512) and the
    per-dimension noise dominates the MST, so the ratio does not follow the construction."""
    values = _golden_scores(golden_zoo, "persistence_ratio_target")
    quality = [4 - golden_zoo[1].index(i) for i in range(5)]
    assert _tau(values, quality) < 0.5


@pytest.mark.parametrize("name, threshold",
                         [("ped+logme", 1.0), ("lead", 0.66), pytest.param("itm", 0.66, marks=pytest.mark.slow)])
def test_ssl_like_zoo_dynamics_methods_recover_the_hidden_order(name, threshold):
    models, labels = _ssl_like_zoo()
    values = [score(name, features, labels) for features in models]
    assert _tau(values, range(4)) >= threshold


def test_ssl_like_zoo_ped_beats_plain_logme():
    """PED's motivation: static LogME is confused by the nuisance directions, PED+LogME is not."""
    models, labels = _ssl_like_zoo()
    plain = _tau([score("logme", f, labels) for f in models], range(4))
    moved = _tau([score("ped+logme", f, labels) for f in models], range(4))
    assert moved > plain


def test_collapse_zoo_persistence_ratio_follows_the_collapse():
    models, labels = _collapse_zoo()
    values = [score("persistence_ratio_target", features, labels) for features in models]
    assert values == sorted(values)


def test_ssl_like_zoo_persistence_ratio_does_not_see_hidden_structure():
    """Documented limitation: the nuisance directions dominate the Euclidean geometry."""
    models, labels = _ssl_like_zoo()
    values = [score("persistence_ratio_target", features, labels) for features in models]
    assert _tau(values, range(4)) < 0.66

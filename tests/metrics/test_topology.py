"""Persistence ratio: death times against ripser, the H_sep/H_tight definition, degenerate inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ripser import ripser

from hf_tsel.metrics import MetricInputError, get_metric, score
from hf_tsel.metrics._mst import mst_edges
from hf_tsel.metrics.topology import mst_edge_lengths, prim_edge_lengths


def _ripser_deaths(points: np.ndarray) -> np.ndarray:
    diagram = ripser(points, maxdim=0)["dgms"][0]
    return np.sort(diagram[np.isfinite(diagram[:, 1]), 1])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("method, memory_budget", [("boruvka", 0), ("prim", 1 << 30), ("prim", 0)])
def test_death_times_match_ripser(seed, method, memory_budget):  # Prim: cached matrix, and rows on the fly
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(int(rng.integers(20, 150)), int(rng.integers(2, 40)))) * rng.uniform(0.1, 10)
    ours = np.sort(mst_edge_lengths(torch.from_numpy(points), method=method, memory_budget=memory_budget).numpy())
    # ripser computes in float32
    np.testing.assert_allclose(ours, _ripser_deaths(points), rtol=1e-5, atol=1e-6)


def test_clustered_cloud_matches_ripser():
    rng = np.random.default_rng(9)
    centres = rng.normal(scale=20, size=(5, 16))
    points = centres[np.repeat(np.arange(5), 40)] + rng.normal(scale=0.1, size=(200, 16))
    ours = np.sort(mst_edge_lengths(torch.from_numpy(points)).numpy())
    np.testing.assert_allclose(ours, _ripser_deaths(points), rtol=1e-5, atol=1e-6)


def test_score_follows_the_definition_on_a_hand_made_example():
    # Three clusters on a line: MST edges 0.1, 0.2, 0.3 inside, 9.9 and 19.8 between them.
    points = np.array([0.0, 0.1, 10.0, 10.2, 30.0, 30.3])[:, None]
    labels = np.array([0, 0, 1, 1, 2, 2])
    expected = -np.mean([0.3, 0.2, 0.1]) / np.mean([19.8, 9.9])
    assert score("persistence_ratio_target", points, labels) == pytest.approx(expected, rel=1e-12)


def test_duplicates_give_zero_deaths_not_nan():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(20, 4))
    points = np.concatenate([base, base, base + 10])  # every point of the first cloud twice
    labels = np.repeat([0, 1, 2], 20)
    deaths = mst_edge_lengths(torch.from_numpy(points)).numpy()
    assert np.isfinite(deaths).all() and (deaths < 1e-9).sum() == 20
    value = score("persistence_ratio_target", points, labels)
    assert np.isfinite(value) and -1 < value < 0


def test_identical_embeddings_raise_a_clear_error():
    with pytest.raises(MetricInputError, match="identical"):
        score("persistence_ratio_target", np.ones((10, 3)), np.repeat([0, 1], 5))


def test_collapsed_classes_score_best():
    labels = np.repeat([0, 1, 2], 10)
    collapsed = 5.0 * np.eye(3)[labels]
    assert score("persistence_ratio_target", collapsed, labels) == 0.0
    rng = np.random.default_rng(2)
    tight = collapsed + rng.normal(scale=0.1, size=collapsed.shape)
    loose = collapsed + rng.normal(scale=2.0, size=collapsed.shape)
    assert 0.0 > score("persistence_ratio_target", tight, labels) > score("persistence_ratio_target", loose, labels)


def test_invariant_to_rotation_translation_and_scale():
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1, 2, 3], 25)
    points = rng.normal(size=(100, 6)) + 3 * np.eye(6)[labels]
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    moved = 7.5 * points @ rotation + 100
    assert score("persistence_ratio_target", moved, labels) == pytest.approx(
        score("persistence_ratio_target", points, labels), rel=1e-9)


def _source_clusters(seed: int = 0):
    """Embeddings of 4 source classes (tight clusters) and the one-hot source labels."""
    rng = np.random.default_rng(seed)
    source = np.repeat(np.arange(4), 15)
    points = 8.0 * np.eye(6)[source] + rng.normal(size=(60, 6))
    return points, np.eye(4)[source]


def test_head_mode_does_not_depend_on_the_target_labels():
    """The offline stand-in is a model prior too: k and the clusters come from the source head."""
    points, source_probs = _source_clusters()
    rng = np.random.default_rng(1)
    first = score("persistence_ratio_head", points, np.repeat([0, 1, 2], 20), source_probs=source_probs)
    for target in (rng.permutation(np.repeat([0, 1, 2], 20)), np.repeat(np.arange(6), 10)):
        assert score("persistence_ratio_head", points, target, source_probs=source_probs) == first
    # the target variant does change with the number of target classes
    assert score("persistence_ratio_target", points, np.repeat(np.arange(6), 10)) != score(
        "persistence_ratio_target", points, np.repeat([0, 1, 2], 20))


def test_source_mode_scores_the_reference_set_by_its_source_classes():
    """persistence_ratio consumes reference embeddings + source labels: the formula of PR_target, other data."""
    points, source_probs = _source_clusters()
    source_labels = source_probs.argmax(1)
    assert get_metric("persistence_ratio").consumes == "reference_features"
    assert score("persistence_ratio", points, source_labels) == pytest.approx(
        score("persistence_ratio_target", points, source_labels), rel=1e-12)
    assert score("persistence_ratio", points, source_labels) == pytest.approx(
        score("persistence_ratio_head", points, np.repeat([0, 1], 30), source_probs=source_probs), rel=1e-12)
    assert get_metric("topology").name == "persistence_ratio"
    # the source classes may come as probabilities (one-hot reference labels, a source head): labels then unused
    rng = np.random.default_rng(2)
    for target in (np.repeat([0, 1], 30), rng.permutation(np.repeat(np.arange(6), 10))):
        assert score("persistence_ratio", points, target, source_probs=source_probs) == pytest.approx(
            score("persistence_ratio", points, source_labels), rel=1e-12)


def test_head_mode_counts_only_the_predicted_source_classes():
    """Soft source-head outputs: k is the number of distinct argmax classes, not the head's width."""
    points, source_probs = _source_clusters()
    padded = np.concatenate([0.9 * source_probs, np.full((60, 96), 0.1 / 96)], axis=1)  # 100-way head, 4 used
    labels = np.repeat([0, 1], 30)
    assert score("persistence_ratio_head", points, labels, source_probs=padded) == pytest.approx(
        score("persistence_ratio_head", points, labels, source_probs=source_probs), rel=1e-12)


def test_head_mode_needs_two_source_clusters():
    points, _ = _source_clusters()
    with pytest.raises(MetricInputError, match="fewer than 2 clusters"):
        score("persistence_ratio_head", points, np.repeat([0, 1], 30), source_probs=np.eye(3)[np.zeros(60, dtype=int)])


def _is_spanning_tree(u: np.ndarray, v: np.ndarray, n: int) -> bool:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in zip(u.tolist(), v.tolist()):
        ra, rb = find(a), find(b)
        if ra == rb:
            return False
        parent[ra] = rb
    return len(u) == n - 1


def _assert_equals_prim(points: np.ndarray, **options) -> None:
    u, v, lengths = (t.numpy() for t in mst_edges(torch.from_numpy(points), **options))
    assert _is_spanning_tree(u, v, len(points))
    oracle = np.sort(prim_edge_lengths(torch.from_numpy(points)).numpy())
    np.testing.assert_allclose(np.sort(lengths), oracle, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("neighbours", [1, 3, 16])
def test_boruvka_mst_equals_the_prim_oracle_on_random_clouds(seed, neighbours):
    rng = np.random.default_rng(100 + seed)
    n, dim = int(rng.integers(30, 400)), int(rng.integers(2, 80))
    points = rng.normal(size=(n, dim)) * rng.uniform(0.01, 100) + rng.uniform(-50, 50, size=dim)
    _assert_equals_prim(points, neighbours=neighbours, block_rows=int(rng.integers(16, 128)))


def test_boruvka_mst_has_the_same_edges_as_prim_when_lengths_are_distinct():
    rng = np.random.default_rng(7)
    points = torch.from_numpy(rng.normal(size=(150, 12)))
    u, v, _ = mst_edges(points, neighbours=4)
    ours = {frozenset(edge) for edge in zip(u.tolist(), v.tolist())}
    # the MST is unique here; rebuild Prim's edge set from a dense matrix
    distances = torch.cdist(points, points).numpy()
    in_tree, best, parent, edges = np.zeros(150, bool), distances[0].copy(), np.zeros(150, int), set()
    in_tree[0] = True
    for _ in range(149):
        best[in_tree] = np.inf
        nxt = int(np.argmin(best))
        edges.add(frozenset((nxt, int(parent[nxt]))))
        in_tree[nxt] = True
        closer = distances[nxt] < best
        parent[closer], best[closer] = nxt, distances[nxt][closer]
    assert ours == edges


@pytest.mark.parametrize("name, points", [
    ("grid", np.stack(np.meshgrid(np.arange(15.0), np.arange(11.0)), -1).reshape(-1, 2)),
    ("lattice", np.random.default_rng(3).integers(0, 3, size=(300, 4)).astype(float)),
    ("duplicates", np.repeat(np.random.default_rng(4).normal(size=(40, 5)), 3, axis=0)),
    ("equilateral", np.eye(30)),
])
@pytest.mark.parametrize("neighbours", [1, 16])
def test_boruvka_mst_equals_the_prim_oracle_on_tied_inputs(name, points, neighbours):
    _assert_equals_prim(points, neighbours=neighbours, block_rows=64)


def test_separated_clusters_need_edges_outside_the_knn_graph():
    # Each cluster holds more points than a list, so the k-NN graph has no edge between clusters:
    # the gaps are certified only by the exact fallback, and the tree must still span.
    rng = np.random.default_rng(5)
    centres = rng.normal(scale=50, size=(6, 10))
    points = centres[np.repeat(np.arange(6), 40)] + rng.normal(scale=0.1, size=(240, 10))
    _assert_equals_prim(points, neighbours=4)


def test_tight_clusters_far_from_the_origin_are_exact():
    # float32 cannot resolve distances of 1e-3 at coordinates of 1e4: everything goes to the float64 fallback
    rng = np.random.default_rng(6)
    points = 1e4 + rng.normal(size=(5, 8))[np.repeat(np.arange(5), 30)] + 1e-3 * rng.normal(size=(150, 8))
    _assert_equals_prim(points, neighbours=8)


def test_approximate_mst_is_exact_when_the_screen_keeps_every_dimension():
    rng = np.random.default_rng(8)
    points = rng.normal(size=(200, 12))
    _assert_equals_prim(points, neighbours=4, screen_dims=12)
    _assert_equals_prim(points, neighbours=4, screen_dims=128)


def _clustered_cloud(n: int = 1200, dim: int = 256, seed: int = 9) -> np.ndarray:
    """Classes in a 32-d latent space with a decaying spectrum, mapped to ``dim`` dimensions plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n)
    latent = (2 * rng.normal(size=(10, 32))[labels] + rng.normal(size=(n, 32))) * np.arange(1, 33) ** -0.5
    return latent @ rng.normal(size=(32, dim)) + 0.05 * rng.normal(size=(n, dim))


@pytest.mark.parametrize("screen_dims, neighbours", [(16, 16), (4, 4)])
def test_approximate_mst_is_a_spanning_tree_no_shorter_than_the_mst(screen_dims, neighbours):
    points = _clustered_cloud()
    u, v, lengths = (t.numpy() for t in mst_edges(torch.from_numpy(points), neighbours=neighbours,
                                                  screen_dims=screen_dims))
    assert _is_spanning_tree(u, v, len(points))
    np.testing.assert_allclose(lengths, np.linalg.norm(points[u] - points[v], axis=1), rtol=1e-12)
    exact = prim_edge_lengths(torch.from_numpy(points)).numpy()
    assert lengths.sum() >= exact.sum() * (1 - 1e-12)
    if screen_dims == 4:  # a screen this coarse misses MST edges: the test can tell the two apart
        assert lengths.sum() > exact.sum() * (1 + 1e-6)


def test_approximate_persistence_ratio_stays_close_to_the_exact_one():
    # Measured on the benchmark's synthetic features: 2.6e-5 relative at N = 10000 (docs/methods.md).
    points = _clustered_cloud()
    labels = np.repeat(np.arange(10), 120)
    exact = score("persistence_ratio_target", points, labels)
    approximate = score("persistence_ratio_target", points, labels, mst="approximate")
    assert approximate == pytest.approx(exact, rel=1e-3)


def test_unknown_mst_method_names_the_choices():
    with pytest.raises(MetricInputError, match="unknown MST method") as info:
        score("persistence_ratio_target", np.random.default_rng(0).normal(size=(30, 3)), np.repeat([0, 1], 15),
              mst="kruskal")
    assert "approximate" in info.value.fix

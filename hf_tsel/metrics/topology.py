"""Persistence ratio: 0-dimensional persistent homology of the embeddings (Gutierrez & Lobel, NeurReps 2025).

For the Vietoris-Rips filtration of a point cloud, every point is born at 0 and the finite death
times of the 0-dimensional classes are exactly the edge lengths of a Euclidean minimum spanning
tree (components merge when the shortest edge between them appears). With ``k`` classes, a
neural-collapse-like embedding has ``k - 1`` long-lived components (the gaps between the class
clusters) and many short ones (the spread inside clusters), so

    H_sep   = mean of the k - 1 largest death times,
    H_tight = mean of the remaining N - k death times,
    score   = -H_tight / H_sep          (higher is better; 0 for perfectly collapsed classes).

The three registry entries differ only in which embeddings and which ``k`` they use:

* :func:`persistence_ratio` (the poster's headline ``PR``): the model's embeddings of a *source
  reference set* (images of its pre-training task), k = the source classes; a model prior,
  independent of the target;
* :func:`persistence_ratio_head` (offline stand-in, not in the poster): target embeddings, k = the
  model's own source-head predictions on them;
* :func:`persistence_ratio_target` (the poster's ``PR_target``): target embeddings, k = the
  target classes.
"""

from __future__ import annotations

import torch

from ._mst import mst_edges
from ._registry import register
from ._validation import MetricInputError, MetricInputs

__all__ = ["mst_edge_lengths", "prim_edge_lengths", "ratio_of_deaths", "persistence_ratio", "persistence_ratio_head", "persistence_ratio_target"]

PAPER = "Gutierrez & Lobel, Model Transferability Informed by Embedding's Topology, NeurReps workshop 2025"

DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes for the cached float32 distance matrix (N = 10000 needs 400 MB)
# mst="approximate": lists of the 16 nearest neighbours in the 128 leading principal components
# (error measured in docs/methods.md)
APPROXIMATE_DIMS, APPROXIMATE_NEIGHBOURS = 128, 16


def _distance_block(points: torch.Tensor, norms: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor:
    """Distances between ``points[rows]`` and ``points[cols]`` by one GEMM (``|a|^2 + |b|^2 - 2ab``)."""
    squared = norms[rows, None] + norms[None, cols] - 2.0 * points[rows] @ points[cols].T
    return squared.clamp_min_(0).sqrt_()


def mst_edge_lengths(points: torch.Tensor, *, method: str = "boruvka", memory_budget: int = DEFAULT_MEMORY_BUDGET
                     ) -> torch.Tensor:
    """Edge lengths ``[N - 1]`` of a Euclidean minimum spanning tree.

    ``"boruvka"`` (default, exact): one float32 k-NN pass and a certified Borůvka (:mod:`._mst`),
    O(N·k) memory; ``"prim"`` (exact): :func:`prim_edge_lengths`, the dense reference (kept as the
    test oracle); ``"approximate"`` (opt-in): neighbour lists from the ``APPROXIMATE_DIMS`` leading
    principal components, a spanning tree at least as long as the MST (``mst_edges(screen_dims=…)``).
    """
    if method == "boruvka":
        return mst_edges(points)[2]
    if method == "approximate":
        return mst_edges(points, neighbours=APPROXIMATE_NEIGHBOURS, screen_dims=APPROXIMATE_DIMS)[2]
    if method == "prim":
        return prim_edge_lengths(points, memory_budget=memory_budget)
    raise MetricInputError("persistence_ratio", f"unknown MST method {method!r}.",
                           "use 'boruvka' (exact, default), 'approximate' or 'prim'.")


def prim_edge_lengths(points: torch.Tensor, *, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                      block_rows: int = 2048) -> torch.Tensor:
    """Edge lengths of a Euclidean minimum spanning tree (dense Prim), ``[N - 1]`` in Prim order.

    Distances come from float64 GEMM blocks on centred points (``|a|^2 + |b|^2 - 2ab``; centring
    keeps the cancellation small, float64 keeps short within-cluster edges accurate where float32
    would not). When the ``N x N`` matrix fits ``memory_budget`` bytes as float32 it is built once
    from symmetric blocks (half the GEMM work) and stored in float32; otherwise each Prim step
    computes the one distance row it needs (O(N*D) memory, much slower). The lengths of the chosen
    tree edges are finally recomputed from the coordinates, so float32 storage only matters between
    edges that tie to float32 precision. Prim's O(N^2) updates are vectorised.
    """
    exact = points.to(torch.float64)
    exact = exact - exact.mean(dim=0)
    norms = (exact * exact).sum(dim=1)
    n, device = len(points), points.device
    cached = None
    if 4 * n * n <= memory_budget:
        cached = torch.empty(n, n, dtype=torch.float32, device=device)
        starts = range(0, n, block_rows)
        for i in starts:
            rows = slice(i, min(i + block_rows, n))
            for j in starts[i // block_rows:]:
                cols = slice(j, min(j + block_rows, n))
                block = _distance_block(exact, norms, rows, cols).to(torch.float32)
                cached[rows, cols] = block
                cached[cols, rows] = block.T

    def distance_row(i: int) -> torch.Tensor:
        if cached is not None:
            return cached[i]
        return _distance_block(exact, norms, slice(i, i + 1), slice(0, n))[0].to(torch.float32)

    in_tree = torch.zeros(n, dtype=torch.bool, device=device)
    best = torch.full((n,), float("inf"), dtype=torch.float32, device=device)
    parent = torch.zeros(n, dtype=torch.long, device=device)
    children = torch.empty(n - 1, dtype=torch.long, device=device)
    parents = torch.empty(n - 1, dtype=torch.long, device=device)
    current = 0
    for step in range(n - 1):
        in_tree[current] = True
        best[current] = float("inf")  # tree members keep inf: ``closer`` never updates them again
        row = distance_row(current)
        closer = (row < best) & ~in_tree
        best = torch.where(closer, row, best)
        parent = torch.where(closer, current, parent)
        current = int(torch.argmin(best))
        children[step], parents[step] = current, parent[current]
    return (exact[children] - exact[parents]).norm(dim=1)


def ratio_of_deaths(features: torch.Tensor, num_clusters: int, *, mst: str = "boruvka",
                    memory_budget: int = DEFAULT_MEMORY_BUDGET, metric: str = "persistence_ratio") -> float:
    """``-H_tight / H_sep`` of the 0-dim. Vietoris-Rips persistence of ``features`` with ``k = num_clusters``."""
    deaths = torch.sort(mst_edge_lengths(features, method=mst, memory_budget=memory_budget), descending=True).values
    separation = deaths[: num_clusters - 1].mean()
    if not num_clusters >= 2 or float(separation) == 0.0:
        raise MetricInputError(metric, "all embeddings are identical, or fewer than 2 clusters were given, so the "
                               "persistence ratio is 0/0.", "check the feature extraction; constant features carry "
                               "no cluster information.")
    return float(-deaths[num_clusters - 1:].mean() / separation)


@register("persistence_ratio_target", consumes="features", paper=PAPER)
def persistence_ratio_target(inputs: MetricInputs, *, mst: str = "boruvka",
                             memory_budget: int = DEFAULT_MEMORY_BUDGET) -> float:
    """Persistence ratio of the target embeddings, k = number of target classes (the poster's PR_target).

    The poster reports this variant as unreliable (mean tau 0.32, negative on DTD); the headline
    score is :func:`persistence_ratio`. ``mst``: ``"boruvka"`` (default, exact; one k-NN pass,
    O(N·k) memory), ``"prim"`` (exact, the dense reference; ``memory_budget``: bytes allowed for
    its cached float32 distance matrix, default 1 GiB, enough for N = 16384; larger inputs compute
    distance rows on the fly, much slower) or ``"approximate"`` (opt-in, several times faster for
    D > 128: neighbour lists from 128 principal components; measured error in docs/methods.md), as
    for every persistence-ratio variant (:func:`mst_edge_lengths`).

    Example:
        >>> import numpy as np
        >>> from hf_tsel.metrics import score
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1, 2], 30)
        >>> tight = 10 * np.eye(4)[y] + rng.normal(size=(90, 4))
        >>> score("persistence_ratio_target", tight, y) > score("persistence_ratio_target", rng.normal(size=(90, 4)), y)
        True
    """
    return ratio_of_deaths(inputs.features, inputs.num_classes, mst=mst, memory_budget=memory_budget,
                           metric="persistence_ratio_target")


@register("persistence_ratio", consumes="reference_features", paper=PAPER, aliases=("topology",))
def persistence_ratio(inputs: MetricInputs, *, mst: str = "boruvka",
                      memory_budget: int = DEFAULT_MEMORY_BUDGET) -> float:
    """Persistence ratio of the model's embeddings of its source reference set (the poster's headline PR).

    The poster's PR is computed on the model's embeddings of its source ("original") data with k
    the number of source classes: a property of the model, independent of the target (a model
    prior). ``features`` are the model's embeddings of reference images of its source task and
    ``labels`` their source classes; in a ranking run they come from the zoo entry's
    ``source_reference`` dataset (:mod:`hf_tsel.source_reference`), extracted once per model and
    cached. The source class of each row is ``argmax(source_probs)`` when ``source_probs`` are given
    (one-hot reference labels, or a source head's softmax), else its label; k counts the classes that
    occur. Where no source images exist, :func:`persistence_ratio_head` approximates it.

    Example (reference embeddings of 3 source classes, collapsed vs. spread out):
        >>> import numpy as np
        >>> from hf_tsel.metrics import score
        >>> rng = np.random.default_rng(0)
        >>> source_classes = np.repeat([0, 1, 2], 30)
        >>> centres = 10 * np.eye(3)[source_classes]
        >>> collapsed = score("persistence_ratio", centres + 0.1 * rng.normal(size=(90, 3)), source_classes)
        >>> spread = score("persistence_ratio", centres + 2 * rng.normal(size=(90, 3)), source_classes)
        >>> round(collapsed, 2), spread < collapsed
        (-0.01, True)
    """
    return ratio_of_deaths(inputs.features, _source_clusters(inputs), mst=mst, memory_budget=memory_budget)


def _source_clusters(inputs: MetricInputs) -> int:
    """k: the number of source classes that occur (``argmax(source_probs)`` when given, else the labels)."""
    if inputs.source_probs is None:
        return inputs.num_classes
    return int(torch.unique(inputs.source_probs.argmax(dim=1)).numel())


@register("persistence_ratio_head", consumes="features+source_probs", paper=PAPER)
def persistence_ratio_head(inputs: MetricInputs, *, mst: str = "boruvka",
                           memory_budget: int = DEFAULT_MEMORY_BUDGET) -> float:
    """Offline stand-in for :func:`persistence_ratio`: target embeddings clustered by the model's own source head.

    Not the poster's score: used where no source reference images exist. ``features`` are the
    target embeddings and ``source_probs`` the model's source-head softmax on them; the clusters
    are the predicted source classes (k = the number of distinct ``argmax(source_probs)``), so it
    measures how cleanly the embeddings collapse onto the model's source classes, seen through the
    target images. The target labels are not used. Raises MetricInputError when fewer than 2
    clusters occur or all embeddings coincide.

    Example:
        >>> import numpy as np
        >>> from hf_tsel.metrics import score
        >>> rng = np.random.default_rng(0)
        >>> one_hot = np.eye(3)[np.repeat([0, 1, 2], 30)]  # a confident source head
        >>> tight = 10 * np.eye(4)[np.repeat([0, 1, 2], 30)] + rng.normal(size=(90, 4))
        >>> target_labels = np.repeat([0, 1], 45)  # not used
        >>> score("persistence_ratio_head", tight, target_labels, source_probs=one_hot) > score(
        ...     "persistence_ratio_head", rng.normal(size=(90, 4)), target_labels, source_probs=one_hot)
        True
    """
    return ratio_of_deaths(inputs.features, _source_clusters(inputs), mst=mst, memory_budget=memory_budget,
                           metric="persistence_ratio_head")

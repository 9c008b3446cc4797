"""Exact Euclidean minimum spanning tree from one blockwise k-NN pass and a certified Borůvka.

The 0-dimensional persistence of N points is their Euclidean MST (see :mod:`.topology`). Dense
Prim needs every pairwise distance *stored* (N² floats) or recomputed N times; this module makes
one blockwise GEMM pass over the pairs instead, keeping only each point's k nearest neighbours
(in float32, the fast precision), and then runs Borůvka (1926) on those lists:

* a Borůvka round needs, for every component C, its shortest edge to the rest. For a point x of
  C, every point missing from x's list is at least ``lb(x)`` away: the k-th float32 distance minus
  a rigorous bound on its rounding error. So C's shortest listed outgoing edge is C's shortest
  outgoing edge (the cut property makes it an MST edge) unless a member has ``lb(x)`` below it;
  exactly those members get their distances to all points (float32 rows, the near-minimal
  entries of which are recomputed in float64: the fallback, which also covers inputs whose
  float32 error bound is too loose to certify anything).

Ties are broken by ``(length, smaller index, larger index)``, a total order, so the per-component
minima never close a cycle. Edge lengths are recomputed from the float64 coordinates.
"""

from __future__ import annotations

import torch

from ._common import one_cpu_thread

__all__ = ["knn_lists", "mst_edges"]

_UNIT_ROUNDOFF_F32 = 2.0 ** -24
# Rows per block of the float64 list distances: the gathered [rows, k, D] differences stay in cache (5x faster).
_EXACT_ROWS = 32


def _block_squared(points: torch.Tensor, norms: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor:
    """``|a|² + |b|² − 2 a·b`` for ``points[rows]`` × ``points[cols]`` by one GEMM."""
    return torch.addmm(norms[rows, None] + norms[None, cols], points[rows], points[cols].T, alpha=-2)


def _merge_smallest(values: torch.Tensor, indices: torch.Tensor, new_values: torch.Tensor, new_indices: torch.Tensor,
                    k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise k smallest of two candidate sets."""
    merged = torch.cat([values, new_values], dim=1)
    best = torch.topk(merged, k, dim=1, largest=False)
    return best.values, torch.cat([indices, new_indices], dim=1).gather(1, best.indices)


def knn_lists(points: torch.Tensor, k: int, *, block_rows: int = 2048, screen: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(neighbours [N, k], exact distances [N, k], lower bound [N])`` of centred float64 ``points``.

    One float32 pass over the upper-triangle blocks (each block serves its rows and its columns).
    ``lower[x]`` bounds from below the float64 distance from x to every point *not* in its list:
    the k-th float32 squared distance minus ``(2D + 16)·u·(|x|² + max|y|²)``, a bound on the
    rounding error of a float32 dot product of length D (γ_D, Higham 2002, Eq. 3.5) plus the
    roundings of the conversion and the norms. The listed distances are recomputed in float64.
    With ``screen`` (other coordinates of the same points, e.g. a projection), the lists are the
    nearest in ``screen`` and nothing is certified: ``lower`` is +inf.
    """
    n, dim = points.shape
    k = min(k, n - 1)
    certified = screen is None
    coordinates = points if certified else screen
    norms = (coordinates * coordinates).sum(1).to(torch.float32)
    screen = coordinates.to(torch.float32)
    inf = torch.tensor(float("inf"), device=points.device)
    values = torch.full((n, k), float("inf"), device=points.device)
    indices = torch.zeros((n, k), dtype=torch.long, device=points.device)
    starts = range(0, n, block_rows)
    for i in starts:
        rows = slice(i, min(i + block_rows, n))
        row_ids = torch.arange(rows.start, rows.stop, device=points.device)
        for j in starts[i // block_rows:]:
            cols = slice(j, min(j + block_rows, n))
            block = _block_squared(screen, norms, rows, cols)
            col_ids = torch.arange(cols.start, cols.stop, device=points.device)
            if i == j:
                block.fill_diagonal_(inf)
            kk = min(k, block.shape[1])
            top = torch.topk(block, kk, dim=1, largest=False)
            values[rows], indices[rows] = _merge_smallest(values[rows], indices[rows], top.values, col_ids[top.indices], k)
            if i != j:
                kk = min(k, block.shape[0])
                top = torch.topk(block.T.contiguous(), kk, dim=1, largest=False)  # strided topk is slower
                values[cols], indices[cols] = _merge_smallest(values[cols], indices[cols], top.values,
                                                              row_ids[top.indices], k)
    if certified:
        lower = (values[:, -1].to(torch.float64) - _rounding_bound((points * points).sum(1), dim)).clamp_min(0).sqrt()
    else:
        lower = torch.full((n,), float("inf"), dtype=torch.float64, device=points.device)
    exact = torch.empty(n, k, dtype=points.dtype, device=points.device)
    with one_cpu_thread(points.device):  # small blocks: a second thread only adds synchronisation
        for start in range(0, n, _EXACT_ROWS):
            part = slice(start, start + _EXACT_ROWS)
            differences = points[indices[part]].sub_(points[part, None, :])
            exact[part] = torch.linalg.vector_norm(differences, dim=2)
    # nearest first, equal lengths by index: the tie order of :func:`_component_minima`
    order = torch.argsort(indices, dim=1)
    order = order.gather(1, torch.argsort(exact.gather(1, order), dim=1, stable=True))
    return indices.gather(1, order), exact.gather(1, order), lower


def _row_chunks(n: int, width: int, budget: int = 1 << 26) -> list[slice]:
    step = max(1, budget // max(width, 1))
    return [slice(s, s + step) for s in range(0, n, step)]


def _rounding_bound(norms: torch.Tensor, dim: int) -> torch.Tensor:
    """Per point, a bound on ``|d²₃₂ − d²|`` to any other point (see :func:`knn_lists`)."""
    return (2 * dim + 16) * _UNIT_ROUNDOFF_F32 * (norms + norms.max())


def _nearest_outside(points: torch.Tensor, screen: torch.Tensor, norms: torch.Tensor, component: torch.Tensor,
                     who: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact nearest point of another component for each point in ``who``: ``(float64 distance, index)``.

    Rows of float32 squared distances; every point within twice the rounding bound of a row's
    float32 minimum could be the true nearest, so those few are recomputed in float64.
    """
    norms32, slack = norms.to(torch.float32), 2 * _rounding_bound(norms, points.shape[1])
    distances, partners = [], []
    for part in _row_chunks(len(who), len(points), budget=1 << 25):
        rows = who[part]
        squared = torch.addmm(norms32[rows, None] + norms32[None, :], screen[rows], screen.T, alpha=-2)
        squared.masked_fill_(component[None, :] == component[rows, None], float("inf"))
        threshold = squared.amin(1).to(torch.float64) + slack[rows]
        row, column = torch.nonzero(squared <= threshold.to(torch.float32)[:, None], as_tuple=True)
        length = (points[rows[row]] - points[column]).norm(dim=1)
        best = _component_minima(row, length, rows[row], column)  # one per row, ties to the smaller index
        distances.append(length[best])
        partners.append(column[best])
    return torch.cat(distances), torch.cat(partners)


def _find(parent: list[int], x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def _component_minima(component: torch.Tensor, length: torch.Tensor, source: torch.Tensor,
                      partner: torch.Tensor) -> torch.Tensor:
    """Indices (into the candidate arrays) of each component's smallest ``(length, lo, hi)`` candidate."""
    low, high = torch.minimum(source, partner), torch.maximum(source, partner)
    order = torch.argsort(high, stable=True)
    order = order[torch.argsort(low[order], stable=True)]
    order = order[torch.argsort(length[order], stable=True)]
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)
    best = torch.full((int(component.max()) + 1,), len(order), dtype=torch.long, device=order.device)
    best.scatter_reduce_(0, component, rank, reduce="amin")
    return order[best[best < len(order)]]


def _principal_scores(points: torch.Tensor, dims: int) -> torch.Tensor:
    """Float32 scores of centred ``points`` on their ``dims`` leading principal components."""
    screen = points.to(torch.float32)
    _, vectors = torch.linalg.eigh((screen.T @ screen).to(torch.float64))
    return screen @ vectors[:, -dims:].to(torch.float32)


def mst_edges(points: torch.Tensor, *, neighbours: int = 32, block_rows: int = 2048, screen_dims: int | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(u [N-1], v [N-1], length [N-1])`` of a Euclidean minimum spanning tree of ``points`` (exact).

    Borůvka rounds on the certified k-NN lists of :func:`knn_lists`; each component's shortest
    outgoing edge is exact by the cut property (see the module docstring), so the tree is a
    minimum spanning tree of the complete graph, not just of the k-NN graph.

    ``screen_dims`` (approximate, opt-in): the lists are the nearest neighbours in the
    ``screen_dims`` leading principal components (one pass of D / screen_dims less work), taken
    as they are: each Borůvka round joins a component by its shortest *listed* outgoing edge
    (exact float64 lengths), and only a component without one gets exact distance rows. The
    result is a spanning tree at least as long as the MST, equal to it when every MST edge is
    listed. Inputs with at most ``screen_dims`` features get the exact tree.
    """
    exact = points.to(torch.float64)
    exact = exact - exact.mean(dim=0)  # centring keeps the |a|² + |b|² − 2ab cancellation small
    n, device = len(exact), exact.device
    empty = torch.empty(0, dtype=torch.long, device=device)
    if n < 2:
        return empty, empty, torch.empty(0, dtype=torch.float64, device=device)
    screen = _principal_scores(exact, screen_dims) if screen_dims and screen_dims < exact.shape[1] else None
    listed, listed_length, lower = knn_lists(exact, neighbours, block_rows=block_rows, screen=screen)
    norms, screen = (exact * exact).sum(1), exact.to(torch.float32)
    parent = list(range(n))
    component = torch.arange(n, device=device)
    us: list[int] = []
    vs: list[int] = []
    points_ids = torch.arange(n, device=device)
    while len(us) < n - 1:
        outside = component[listed] != component[:, None]
        # the first outside entry of a list is its shortest (lists are sorted by length, then index)
        first = torch.where(outside.any(1), outside.to(torch.int8).argmax(1), -1)
        has = first >= 0
        length = torch.where(has, listed_length.gather(1, first.clamp_min(0)[:, None])[:, 0], float("inf"))
        partner = torch.where(has, listed.gather(1, first.clamp_min(0)[:, None])[:, 0], -1)
        # a component's candidate is certified unless a member's unlisted points could be closer
        best = torch.full((n,), float("inf"), dtype=torch.float64, device=device)
        best.scatter_reduce_(0, component, length, reduce="amin")
        doubtful = torch.nonzero((lower < best[component]) | torch.isinf(best[component]))[:, 0]
        if len(doubtful):
            length[doubtful], partner[doubtful] = _nearest_outside(exact, screen, norms, component, doubtful)
        chosen = _component_minima(component, length, points_ids, partner)
        for i in torch.argsort(length[chosen], stable=True).tolist():
            x, y = int(chosen[i]), int(partner[chosen[i]])
            root_x, root_y = _find(parent, x), _find(parent, y)
            if root_x != root_y:
                parent[root_x] = root_y
                us.append(x)
                vs.append(y)
        component = torch.tensor([_find(parent, x) for x in range(n)], device=device)
    u = torch.tensor(us, dtype=torch.long, device=device)
    v = torch.tensor(vs, dtype=torch.long, device=device)
    return u, v, (exact[u] - exact[v]).norm(dim=1)

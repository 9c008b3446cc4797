"""The one stratified sampler: every class's members in a seeded random order.

Callers take their share of each class from the front (data sampling, PARC's subsample, ITM's
validation split, LEAD's folds and NTK samples), so they all stratify the same way.

Example:
    >>> import numpy as np
    >>> labels = np.array([0, 1, 0, 1, 0])
    >>> [sorted(m.tolist()) for m in shuffled_by_class(labels, [0, 1], np.random.default_rng(0).permutation)]
    [[0, 2, 4], [1, 3]]
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

__all__ = ["shuffled_by_class"]


def shuffled_by_class(labels: Any, classes: Iterable[int], permutation: Callable[[int], Any]) -> list[Any]:
    """Indices of each class's samples, each reordered by ``permutation(count)``, classes in the given order.

    ``labels`` is a numpy array or a torch tensor (the indices are of the same kind, on its device);
    ``permutation`` draws a random order of ``count`` items, e.g. ``np.random.default_rng(seed).permutation``
    or ``lambda n: torch.randperm(n, generator=generator)``. It is called once per class, in class order,
    so a seeded generator gives the same sample on every run and device.
    """
    if isinstance(labels, np.ndarray):
        return [members[permutation(len(members))] for members in (np.flatnonzero(labels == c) for c in classes)]
    members_of = ((labels == c).nonzero().flatten() for c in classes)  # torch: no import needed here
    return [members[permutation(len(members)).to(members.device)] for members in members_of]

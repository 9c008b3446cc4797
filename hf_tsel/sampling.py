"""The one stratified sampler: every class's members in a seeded random order; and the bootstrap's size check.

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

from .defaults import DEFAULT_N_BOOT
from .errors import UserError

__all__ = ["check_n_boot", "shuffled_by_class", "stratified_rows"]


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


def stratified_rows(labels: np.ndarray, per_class: int, rng: np.random.Generator, allowed: np.ndarray | None = None,
                    classes: Iterable[int] | None = None) -> np.ndarray:
    """Sorted rows of up to ``per_class`` random samples of each class, drawn only from the ``allowed`` rows (a mask).

    Example:
        >>> stratified_rows(np.array([0, 1, 0, 1, 0]), 1, np.random.default_rng(0), classes=[0]).size
        1
    """
    pool = np.arange(len(labels)) if allowed is None else np.flatnonzero(allowed)
    classes = np.unique(labels) if classes is None else classes
    chosen = [pool[members[:per_class]] for members in shuffled_by_class(labels[pool], classes, rng.permutation)]
    return np.sort(np.concatenate(chosen))


def check_n_boot(n_boot: Any) -> int:
    """``n_boot`` (bootstrap resamples; 0 skips the bootstrap) as an int, or a :class:`UserError` saying what is wrong.

    Example:
        >>> check_n_boot(200)
        200
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise UserError(f"n_boot must be a whole number >= 0 (0 skips the bootstrap), got {n_boot!r}",
                        fix=f"pass e.g. n_boot={DEFAULT_N_BOOT} (--n-boot {DEFAULT_N_BOOT}).")
    return int(n_boot)

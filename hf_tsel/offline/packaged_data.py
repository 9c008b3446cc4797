"""Real image datasets that ship inside packages (scikit-learn's digits, Debian's Fashion-MNIST).

Used by ``hf-tsel demo`` and by the offline ranking benchmark, so both read the same arrays.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import UserError

__all__ = ["FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES", "read_idx", "digits_arrays", "fashion_mnist_arrays"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# Short lower-case names: they are part of the dataset fingerprint, so they key the committed offline
# benchmark results and the feature caches built from them.
FASHION_MNIST_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


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

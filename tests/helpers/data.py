"""Tiny image datasets for pipeline tests: in memory, an imagefolder, a dataset repo in the Hub cache layout.

Images are coloured by class plus noise, so features that see colour separate the classes.
Not a test module (plain helpers); the fake backbone is in :mod:`tests.helpers.models`.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

# The dataset repo the reliability suite writes into its offline Hub cache (tests/reliability/conftest.py).
RELIABILITY_DATASET = "hf-tsel-test/bad-input-images"

DATASET_SHA = "d" * 40
CLASS_COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (230, 220, 40)]


def class_images(num_classes: int = 3, per_class: int = 8, size: int = 16, seed: int = 0) -> tuple[list, list[int]]:
    """PIL images (RGB, with one greyscale and one RGBA image) and their labels."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(num_classes):
        for _ in range(per_class):
            pixels = np.clip(np.array(CLASS_COLOURS[label]) + rng.normal(0, 25, (size, size, 3)), 0, 255)
            images.append(Image.fromarray(pixels.astype(np.uint8)))
            labels.append(label)
    images[1] = images[1].convert("L")
    images[2] = images[2].convert("RGBA")
    return images, labels


def image_dataset(num_classes: int = 3, per_class: int = 8, **extra_columns):
    """A ``datasets.Dataset`` with ``image`` (Image) and ``label`` (ClassLabel) columns."""
    import datasets

    images, labels = class_images(num_classes, per_class)
    features = {"image": datasets.Image(), "label": datasets.ClassLabel(names=[f"c{i}" for i in range(num_classes)])}
    columns = {"image": images, "label": labels}
    for name, (values, feature) in extra_columns.items():
        columns[name], features[name] = values, feature
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def write_imagefolder(root: Path, num_classes: int = 3, per_class: int = 8, split: str = "train") -> Path:
    """``root/<split>/<class>/<i>.png``."""
    images, labels = class_images(num_classes, per_class)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / split / f"c{label}"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i}.png")
    return root


def write_hub_dataset(hub_cache: Path, repo_id: str, splits: dict) -> Path:
    """A dataset repo snapshot in the Hub cache layout: ``data/<split>-00000-of-00001.parquet`` + README configs."""
    repo = Path(hub_cache) / f"datasets--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / DATASET_SHA
    (snapshot / "data").mkdir(parents=True, exist_ok=True)
    for split, dataset in splits.items():
        dataset.to_parquet(str(snapshot / "data" / f"{split}-00000-of-00001.parquet"))
    data_files = "".join(f"      - split: {s}\n        path: data/{s}-*\n" for s in splits)
    (snapshot / "README.md").write_text(f"---\nconfigs:\n  - config_name: default\n    data_files:\n{data_files}---\n")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(DATASET_SHA)
    return snapshot


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def with_corrupt_image(per_class: int, row: int, payload: bytes):
    """``image_dataset(per_class=per_class)`` with the image of ``row`` replaced by ``payload`` (bytes that are
    not a decodable image)."""
    import datasets

    ds = image_dataset(per_class=per_class)
    images = [{"bytes": png_bytes(ds[i]["image"]), "path": None} for i in range(len(ds))]
    images[row] = {"bytes": payload, "path": None}
    return datasets.Dataset.from_dict({"image": images, "label": ds["label"][:]},
                                      features=datasets.Features({"image": datasets.Image(), "label": ds.features["label"]}))

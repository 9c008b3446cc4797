"""Tiny Hub repos built at test time: random-weight timm and transformers models, parquet image datasets.

Each builder returns the repo's files as ``{path in repo: bytes}``, written by the libraries' own
serialisers (``timm.models.save_for_hf``, ``save_pretrained``, ``Dataset.to_parquet`` with the ``Image``
feature), so the clients read them exactly as they read repos from the Hub.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

# The dataset repo the session's Hub stand-in serves (tests/hub/conftest.py seeds it) and its classes.
DATASET = "test-org/tiny-images"
CLASSES = ["circle", "square", "star", "cross"]

IMAGE_SIZE = 32  # small inputs keep the forward passes fast; the tiny models accept any size


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def timm_repo(architecture: str, *, seed: int, **model_args) -> dict[str, bytes]:
    """``config.json`` + ``model.safetensors`` of a random-weight timm model (e.g. ``test_resnet``)."""
    import timm
    import torch

    torch.manual_seed(seed)
    model = timm.create_model(architecture, **model_args)
    with tempfile.TemporaryDirectory() as folder:
        timm.models.save_for_hf(model, folder, safe_serialization=True,
                                model_args={k: v for k, v in model_args.items() if k == "img_size"},
                                data_config={"input_size": (3, IMAGE_SIZE, IMAGE_SIZE)})
        return _folder_files(Path(folder))


def transformers_vit_repo(*, seed: int) -> dict[str, bytes]:
    """A tiny ``ViTModel`` (safetensors) with its ``preprocessor_config.json``."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(seed)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=IMAGE_SIZE, patch_size=8)
    with tempfile.TemporaryDirectory() as folder:
        ViTModel(config, add_pooling_layer=False).save_pretrained(folder, safe_serialization=True)
        ViTImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(folder)
        return _folder_files(Path(folder))


def _png(pixels: np.ndarray) -> dict:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def image_dataset_repo(class_names: list[str], *, per_class: int, seed: int, image: bool = True,
                       label: bool = True) -> dict[str, bytes]:
    """The ``push_to_hub`` layout: ``data/train-00000-of-00001.parquet`` written with ``datasets``' own
    ``Image`` encoding (PNG bytes) and a ``ClassLabel``, plus a README whose ``configs`` name the shard.

    Each class has its own mean colour, so the features separate the classes a little. ``image=False``
    replaces the images by a text column, ``label=False`` drops the labels (for the error cases).
    """
    import datasets

    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(class_names)), per_class)
    columns: dict[str, list] = {}
    features: dict[str, datasets.features.features.FeatureType] = {}
    if image:
        tints = rng.uniform(0.2, 1.0, size=(len(class_names), 3))
        columns["image"] = [_png((rng.random((IMAGE_SIZE, IMAGE_SIZE, 3)) * tints[c] * 255).astype(np.uint8))
                            for c in labels]
        features["image"] = datasets.Image()
    else:
        columns["text"] = [f"sample {i}" for i in range(len(labels))]
        features["text"] = datasets.Value("string")
    if label:
        columns["label"] = labels.tolist()
        features["label"] = datasets.ClassLabel(names=class_names)
    else:
        columns["caption"] = [f"a picture of {class_names[c]}" for c in labels]
        features["caption"] = datasets.Value("string")
    table = datasets.Dataset.from_dict(columns, features=datasets.Features(features))
    buffer = io.BytesIO()
    table.to_parquet(buffer)
    readme = ("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
              "    path: data/train-*\n---\n# A tiny image dataset for hf-tsel tests\n")
    return {"README.md": readme.encode(), "data/train-00000-of-00001.parquet": buffer.getvalue()}

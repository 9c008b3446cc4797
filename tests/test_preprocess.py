"""ImageTransform: the eval transform of timm, BGR/0-255 models, and its argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hf_tsel.preprocess import ImageTransform


def _image(size=(40, 30), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


def test_image_transform_matches_timm_eval_transform():
    from timm.data import create_transform

    config = {"input_size": (3, 56, 56), "crop_pct": 0.9, "interpolation": "bicubic", "mean": (0.4, 0.5, 0.6), "std": (0.2, 0.3, 0.25)}
    ours = ImageTransform.from_config(config)
    theirs = create_transform(**config, is_training=False)
    for size in ((80, 61), (61, 80), (56, 56)):
        image = _image(size)
        torch.testing.assert_close(ours(image), theirs(image), atol=1e-5, rtol=0)


def test_image_transform_bgr_scale_and_errors():
    transform = ImageTransform(input_size=8, crop_pct=1.0, scale=1.0, mean=(104, 117, 123), std=(1, 1, 1), channel_order="BGR")
    image = Image.new("RGB", (8, 8), (10, 20, 30))
    out = transform(image)
    assert out[:, 0, 0].tolist() == [30 - 104, 20 - 117, 10 - 123]
    with pytest.raises(ValueError, match="channel_order"):
        ImageTransform(channel_order="XYZ")
    with pytest.raises(ValueError, match="3 values"):
        ImageTransform(mean=(0.5, 0.5))

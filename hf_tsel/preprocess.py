"""Picklable eval-time image preprocessing shared by all loaders.

It reproduces timm's eval transform (resize to ``input_size / crop_pct``, centre crop,
scale, normalise) with PIL and numpy only, so that a transform can be pickled into
DataLoader workers and described by a JSON dict (part of the feature-cache key).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from PIL import Image

_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImageTransform:
    """Resize + centre-crop + scale + normalise one image into a CHW float tensor.

    ``value = (pixel * scale - mean) / std`` with ``pixel`` in 0..255, so ``scale=1/255``
    with ImageNet mean/std is the usual recipe and ``scale=1, mean=127, std=128`` is
    EfficientNet-Lite's. ``channel_order="BGR"`` flips channels (mean/std are then given
    in BGR order). ``layout`` only tells ONNX backbones how to feed the model; the
    transform always returns CHW. ``resize_size`` (shorter side), when set, replaces
    ``input_size / crop_pct``.
    """

    input_size: tuple[int, int, int] = (3, 224, 224)
    crop_pct: float = 0.875
    crop_mode: str = "center"
    interpolation: str = "bicubic"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    scale: float = 1 / 255
    channel_order: str = "RGB"
    layout: str = "NCHW"
    resize_size: int | None = None

    def __post_init__(self):
        size = self.input_size
        if isinstance(size, int):
            size = (3, size, size)
        elif len(size) == 2:
            size = (3, *size)
        if len(size) != 3 or size[0] != 3 or min(int(v) for v in size) < 1:
            raise ValueError(f"input_size must be a size, [height, width] or [3, height, width], got {self.input_size}")
        object.__setattr__(self, "input_size", tuple(int(v) for v in size))
        object.__setattr__(self, "mean", _per_channel(self.mean, "mean"))
        object.__setattr__(self, "std", _per_channel(self.std, "std"))
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; use one of {sorted(_INTERPOLATIONS)}")
        if self.crop_mode not in ("center", "squash"):
            raise ValueError(f"unknown crop_mode {self.crop_mode!r}; use 'center' or 'squash'")
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        if self.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"layout must be 'NCHW' or 'NHWC', got {self.layout!r}")
        if not 0 < float(self.crop_pct) <= 1.0:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        if any(not s > 0 for s in self.std):  # a negative std would silently flip a channel's sign
            raise ValueError(f"std must be non-zero and positive in every channel, got {list(self.std)}")

    @classmethod
    def from_config(cls, config: dict[str, Any], overrides: dict[str, Any] | None = None) -> "ImageTransform":
        """Build from a timm-style data config, then apply a zoo entry's ``preprocessing`` overrides."""
        names = {f.name for f in fields(cls)}
        merged = {k: v for k, v in config.items() if k in names and v is not None}
        merged.update(overrides or {})
        if isinstance(merged.get("input_size"), (int, float)):
            merged["input_size"] = (3, int(merged["input_size"]), int(merged["input_size"]))
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        _, height, width = self.input_size
        image = self._resize(image, height, width)
        image = _center_crop(image, height, width)
        array = np.asarray(image, dtype=np.float32)
        if self.channel_order == "BGR":
            array = array[..., ::-1]
        array = (array * np.float32(self.scale) - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def _resize(self, image: Image.Image, height: int, width: int) -> Image.Image:
        resample = _INTERPOLATIONS[self.interpolation]
        if self.resize_size is not None:
            return _resize_shorter(image, int(self.resize_size), resample)
        scaled = (math.floor(height / self.crop_pct), math.floor(width / self.crop_pct))
        if self.crop_mode == "squash" or scaled[0] != scaled[1]:
            return image.resize((scaled[1], scaled[0]), resample)
        return _resize_shorter(image, scaled[0], resample)


def _per_channel(values: Any, what: str) -> tuple[float, ...]:
    values = (values,) * 3 if isinstance(values, (int, float)) else tuple(float(v) for v in values)
    if len(values) != 3:
        raise ValueError(f"{what} needs 3 values (one per channel), got {values}")
    return tuple(float(v) for v in values)


def _resize_shorter(image: Image.Image, size: int, resample: Image.Resampling) -> Image.Image:
    width, height = image.size
    if width <= height:
        return image.resize((size, int(size * height / width)), resample)
    return image.resize((int(size * width / height), size), resample)


def _center_crop(image: Image.Image, height: int, width: int) -> Image.Image:
    img_w, img_h = image.size
    if img_w < width or img_h < height:  # pad like torchvision's CenterCrop
        padded = Image.new("RGB", (max(img_w, width), max(img_h, height)))
        padded.paste(image, ((padded.width - img_w) // 2, (padded.height - img_h) // 2))
        image, img_w, img_h = padded, padded.width, padded.height
    top = int(round((img_h - height) / 2.0))
    left = int(round((img_w - width) / 2.0))
    return image.crop((left, top, left + width, top + height))

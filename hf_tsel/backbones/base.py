"""The :class:`Backbone` interface every loader returns, and :class:`BackboneLoadError`."""

from __future__ import annotations

from typing import Any, Callable

import torch
from PIL import Image
from torch import nn

from ..errors import ModelLoadError
from ..preprocess import ImageTransform
from ..zoo import ZooEntry

LOAD_ERROR_KINDS = ("not_found", "gated", "private", "pickle_only", "remote_code", "network", "invalid")


class BackboneLoadError(ModelLoadError):
    """A backbone could not be loaded; ``kind`` says why and ``str(err)`` what to do.

    ``kind`` is one of ``not_found``, ``gated``, ``private``, ``pickle_only``, ``remote_code``,
    ``network`` and ``invalid``. Ranking code reports the error and goes on with the next model.
    """

    def __init__(self, model: str, kind: str, message: str):
        if kind not in LOAD_ERROR_KINDS:
            raise ValueError(f"unknown BackboneLoadError kind {kind!r}; use one of {LOAD_ERROR_KINDS}")
        super().__init__(f"cannot load model {model!r} ({kind}): {message}")
        self.model = model
        self.kind = kind


class Backbone:
    """A frozen feature extractor with its own preprocessing.

    Subclasses implement :meth:`_forward` (batch on ``self.device`` -> features, logits) and
    :meth:`_move` (put the weights on a device).

    Attributes:
        entry: the zoo entry it was loaded from.
        resolved_revision: Hub commit sha actually loaded, or ``local-<content hash>``.
        feature_dim: width of the pooled features returned by :meth:`embed`.
        preprocessing: effective preprocessing, JSON-serialisable (part of feature-cache keys).
        has_source_head: True when :meth:`embed` also returns source-task logits.
        preprocessor: the picklable :class:`ImageTransform` behind :meth:`transform`; hand it
            (not the bound method, which would pickle the model) to DataLoader workers.
    """

    def __init__(
        self,
        entry: ZooEntry,
        *,
        resolved_revision: str,
        feature_dim: int,
        preprocessor: ImageTransform,
        has_source_head: bool,
        device: torch.device,
        details: dict[str, Any] | None = None,
    ):
        self.entry = entry
        self.resolved_revision = resolved_revision
        self.feature_dim = int(feature_dim)
        self.preprocessor = preprocessor
        self.has_source_head = bool(has_source_head)
        self.device = torch.device(device)
        self.details = details or {}

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.preprocessor.to_dict()

    def transform(self, image: Image.Image) -> torch.Tensor:
        """One PIL image (any mode; converted to RGB) -> preprocessed CHW float tensor."""
        return self.preprocessor(image)

    @torch.no_grad()
    def embed(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``[B, C, H, W]`` batch -> (pooled features ``[B, D]`` float32, source logits or None)."""
        if batch.ndim != 4:
            raise ValueError(f"embed expects a [B, C, H, W] batch, got shape {tuple(batch.shape)}; stack transform() outputs")
        features, logits = self._forward(batch.to(self.device, torch.float32))
        features = features.float()
        if features.shape[1:] != (self.feature_dim,):
            raise RuntimeError(f"{self.entry.name}: expected features of width {self.feature_dim}, got {tuple(features.shape)}")
        return features, None if logits is None else logits.float()

    def as_module(self) -> torch.nn.Module:
        """The backbone as a trainable ``torch.nn.Module`` (``[B, C, H, W] -> [B, D]`` pooled features, as :meth:`embed`).

        Raises:
            NotImplementedError: the backbone runs without a PyTorch module (e.g. ONNX Runtime).
        """
        raise NotImplementedError(f"{type(self).__name__} has no PyTorch module to train")

    def to(self, device: str | torch.device) -> "Backbone":
        self.device = torch.device(device)
        self._move(self.device)
        return self

    def _forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def _move(self, device: torch.device) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.entry.name!r}, hub_id={self.entry.hub_id!r}, "
            f"revision={self.resolved_revision!r}, feature_dim={self.feature_dim}, device={self.device})"
        )


class PooledFeatures(nn.Module):
    """A torch backbone as a trainable module returning the same pooled features as ``Backbone.embed``.

    ``feature_info`` of timm models is re-exposed (module names prefixed) so that
    :func:`hf_tsel.groundtruth.finetune.last_stage_parameter_names` finds the last stage.
    """

    def __init__(self, module: nn.Module, forward: Callable[[nn.Module, torch.Tensor], tuple]) -> None:
        super().__init__()
        self.model = module
        self._pooled_forward = forward
        info = getattr(module, "feature_info", None)
        if isinstance(info, (list, tuple)) and info and isinstance(info[-1], dict):
            self.feature_info = [{**item, "module": f"model.{item['module']}"} for item in info]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._pooled_forward(self.model, images)[0]


def probe_feature_dim(entry: ZooEntry, module: torch.nn.Module, forward, input_size: tuple[int, ...]) -> int:
    """Width of the pooled features, from one forward pass on a blank image (also checks pooling)."""
    module.eval()
    try:
        with torch.no_grad():
            features, _ = forward(module, torch.zeros(1, *input_size))
    except (ValueError, RuntimeError) as exc:
        raise BackboneLoadError(entry.name, "invalid", f"a test forward pass failed: {exc}") from None
    return int(features.shape[1])


class TorchBackbone(Backbone):
    """A backbone around a ``torch.nn.Module`` and a pooling function."""

    def __init__(self, entry: ZooEntry, module: torch.nn.Module, forward, **kwargs: Any):
        super().__init__(entry, **kwargs)
        self.module = module.eval().requires_grad_(False)
        self._forward_fn = forward
        self._move(self.device)

    def _forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self._forward_fn(self.module, batch)

    def as_module(self) -> torch.nn.Module:
        """:class:`PooledFeatures` around this backbone's module (shared, not copied; frozen until trained)."""
        return PooledFeatures(self.module, self._forward_fn)

    def _move(self, device: torch.device) -> None:
        self.module.to(device)

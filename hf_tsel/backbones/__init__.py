"""Load any zoo entry as a frozen :class:`Backbone` (timm, transformers, raw checkpoint or ONNX).

Example:
    >>> from hf_tsel.zoo import entry_for_model
    >>> backbone = load_backbone(entry_for_model("timm/resnet18.tv_in1k"))  # doctest: +SKIP
    >>> features, logits = backbone.embed(backbone.transform(image)[None])  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from ..hub_access import looks_like_local_path
from ..preprocess import ImageTransform
from ..zoo import LOADERS, ZooEntry
from .base import Backbone, BackboneLoadError

__all__ = ["Backbone", "BackboneLoadError", "ImageTransform", "load_backbone"]



def load_backbone(
    entry: ZooEntry,
    *,
    device: str | torch.device = "cpu",
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
) -> Backbone:
    """Load ``entry`` with its loader and move it to ``device``.

    Safe by default: weights come from safetensors (or ONNX); pickle files only load with
    ``allow_pickle=True`` and then through ``torch.load(weights_only=True)``; repository code
    only runs with ``trust_remote_code=True``.

    Raises:
        BackboneLoadError: with ``kind`` in ``not_found``, ``gated``, ``private``,
            ``pickle_only``, ``remote_code``, ``network``, ``invalid``.
    """
    if looks_like_local_path(entry.hub_id) and not Path(entry.hub_id).expanduser().exists():
        raise BackboneLoadError(entry.name, "not_found", f"the local path {entry.hub_id} does not exist; check it for typos")
    if entry.loader not in LOADERS:
        raise BackboneLoadError(entry.name, "invalid", f"unknown loader {entry.loader!r}; use one of {list(LOADERS)}")
    try:  # loader <name> is load_<name> in <name>_loader.py; imported lazily (transformers, onnxruntime are heavy)
        loader = getattr(importlib.import_module(f"{__name__}.{entry.loader}_loader"), f"load_{entry.loader}")
    except ImportError as exc:
        raise BackboneLoadError(entry.name, "invalid", f"the {entry.loader} loader needs a missing package ({exc}); pip install 'hf-tsel[onnx]'") from None
    return loader(entry, device=torch.device(device), allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)

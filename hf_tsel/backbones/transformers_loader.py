"""transformers backbones (``AutoModel``) with pooling that never uses untrained weights.

Pooling ``default``: the model's ``pooler_output`` only when its weights were in the
checkpoint (DINOv2's LayerNorm'd CLS, CLIP's post-LN CLS); otherwise the spatial mean of a
CNN feature map, the CLS token of a ViT, or the token mean of models without CLS (Swin). ViT-style poolers (dense + tanh) are not
even built (``add_pooling_layer=False``): DINO/MAE checkpoints do not contain them.
ViTMAE loads with ``mask_ratio=0.0`` so every patch is encoded.
"""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..preprocess import IMAGENET_MEAN, IMAGENET_STD, ImageTransform
from ..zoo import ZooEntry
from .base import Backbone, BackboneLoadError, TorchBackbone, probe_feature_dim
from .hub import content_revision, hub_errors, hub_file, snapshot_revision
from .timm_loader import load_timm

logger = logging.getLogger(__name__)
_RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def load_transformers(
    entry: ZooEntry, *, device: torch.device, allow_pickle: bool = False, trust_remote_code: bool = False, **_: Any
) -> Backbone:
    """``AutoModel.from_pretrained`` pinned to the resolved commit; safetensors unless ``allow_pickle``."""
    from transformers import AutoImageProcessor, AutoModel

    source, revision, config = _resolve(entry, allow_pickle)
    if "architecture" in config and "model_type" not in config:  # a timm repo outside the timm/ org
        return load_timm(replace(entry, loader="timm"), device=device, allow_pickle=allow_pickle,
                         trust_remote_code=trust_remote_code)
    if "auto_map" in config and not trust_remote_code:
        raise BackboneLoadError(
            entry.name, "remote_code",
            "the repo needs its own Python code (auto_map in config.json); review it, then pass --trust-remote-code",
        )
    kwargs: dict[str, Any] = dict(revision=revision, trust_remote_code=trust_remote_code, output_loading_info=True, **entry.model_kwargs)
    if not allow_pickle:
        kwargs["use_safetensors"] = True
    if config.get("model_type") == "vit_mae":
        kwargs.setdefault("mask_ratio", 0.0)
    if _accepts_pooling_flag(config):
        kwargs.setdefault("add_pooling_layer", False)
    with hub_errors(entry.hub_id, entry.revision):
        try:
            model, info = AutoModel.from_pretrained(source, **kwargs)
            processor = _image_processor(AutoImageProcessor, source, revision, trust_remote_code)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise BackboneLoadError(entry.name, "invalid", f"transformers could not load it: {exc}") from None
    model = getattr(model, "vision_model", model)  # CLIP-like dual encoders: keep the image tower
    pooler_trained = not any(k.startswith(("pooler.", "vision_model.pooler.")) for k in info.get("missing_keys", []))
    preprocessor, fixes = processor_transform(entry, processor)
    forward = _make_forward(entry.pooling, _prefix_tokens(model), pooler_trained)
    feature_dim = probe_feature_dim(entry, model, forward, preprocessor.input_size)
    return TorchBackbone(
        entry, model, forward, resolved_revision=revision, feature_dim=feature_dim, preprocessor=preprocessor,
        has_source_head=False, device=device, details={"model_class": type(model).__name__, "preprocessing_fixes": fixes},
    )


def _resolve(entry: ZooEntry, allow_pickle: bool) -> tuple[str, str, dict]:
    local = Path(entry.hub_id).expanduser()
    if local.is_dir():
        files = {p.name for p in local.iterdir()}
        config_path, revision, source = local / "config.json", content_revision(local), str(local)
        has_safe = bool(files & set(_SAFE_WEIGHTS))
        if not config_path.is_file():
            raise BackboneLoadError(entry.name, "invalid", f"{local} has no config.json; save the model with save_pretrained()")
    else:
        config_path = hub_file(entry.hub_id, "config.json", entry.revision)
        revision, source = snapshot_revision(config_path), entry.hub_id
        has_safe = any(hub_file(entry.hub_id, name, revision, required=False) for name in _SAFE_WEIGHTS)
    if not has_safe and not allow_pickle:
        raise BackboneLoadError(
            entry.name, "pickle_only",
            "no safetensors weights, only pickle files; pass --allow-pickle (allow_pickle=True) to load them "
            "(transformers then uses torch.load with weights_only=True)",
        )
    return source, revision, json.loads(config_path.read_text(encoding="utf-8"))


def _accepts_pooling_flag(config: dict) -> bool:
    from transformers import AutoConfig, AutoModel

    try:
        config_class = AutoConfig.for_model(config["model_type"]).__class__
        model_class = AutoModel._model_mapping[config_class]
    except (KeyError, ValueError):
        return False
    return "add_pooling_layer" in inspect.signature(model_class.__init__).parameters


def _image_processor(auto_class, source: str, revision: str, trust_remote_code: bool):
    try:
        return auto_class.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    except OSError:
        return None  # no preprocessor_config.json: fall back to defaults + the entry's overrides


def processor_transform(entry: ZooEntry, processor) -> tuple[ImageTransform, list[str]]:
    """Translate an image processor's eval settings into an :class:`ImageTransform` (plus fixes applied)."""
    fixes: list[str] = []
    if processor is None:
        logger.warning("%s has no image processor config; using ImageNet defaults plus the zoo entry's overrides", entry.name)
        return ImageTransform.from_config({}, entry.preprocessing), ["no image processor: ImageNet defaults"]
    size = _size_dict(getattr(processor, "size", None))
    crop = _size_dict(getattr(processor, "crop_size", None)) if getattr(processor, "do_center_crop", False) else {}
    config: dict[str, Any] = {
        "interpolation": _RESAMPLE_NAMES.get(int(getattr(processor, "resample", 3)), "bicubic"),
        "scale": float(getattr(processor, "rescale_factor", 1 / 255)) if getattr(processor, "do_rescale", True) else 1.0,
    }
    if getattr(processor, "do_normalize", True):
        config.update(mean=tuple(processor.image_mean), std=tuple(processor.image_std))
    else:
        config.update(mean=(0.0,) * 3, std=(1.0,) * 3)
    if crop.get("height"):
        config["input_size"] = (3, crop["height"], crop["width"])
        if size.get("shortest_edge"):
            config.update(resize_size=size["shortest_edge"], crop_pct=1.0)
        elif size.get("height"):
            config.update(crop_mode="squash", crop_pct=crop["height"] / size["height"])
    elif size.get("height"):
        config.update(input_size=(3, size["height"], size["width"]), crop_mode="squash", crop_pct=1.0)
    elif size.get("shortest_edge"):
        edge = size["shortest_edge"]
        config.update(input_size=(3, edge, edge), crop_pct=float(getattr(processor, "crop_pct", None) or 1.0))
    if entry.hub_id.startswith("facebook/dino-") and config.get("mean") == (0.5, 0.5, 0.5) and "mean" not in entry.preprocessing:
        config.update(mean=IMAGENET_MEAN, std=IMAGENET_STD)  # DINO was trained with ImageNet stats
        fixes.append("DINO: 0.5 mean/std in preprocessor_config.json replaced by ImageNet mean/std")
    return ImageTransform.from_config(config, entry.preprocessing), fixes


def _size_dict(size) -> dict[str, int]:
    if size is None:
        return {}
    if isinstance(size, int):
        return {"shortest_edge": size}
    items = size.items() if hasattr(size, "items") else vars(size).items()
    return {k: int(v) for k, v in items if v is not None and k in ("height", "width", "shortest_edge")}


def _prefix_tokens(model: torch.nn.Module) -> int:
    """Number of non-patch tokens in front of the sequence (CLS + registers); 0 for Swin-like models."""
    embeddings = getattr(getattr(model, "vision_model", model), "embeddings", None)
    has_cls = any(hasattr(embeddings, name) for name in ("cls_token", "class_embedding"))
    return int(has_cls) + int(getattr(model.config, "num_register_tokens", 0) or 0)


def _make_forward(pooling: str, num_prefix: int, pooler_trained: bool):
    def forward(model: torch.nn.Module, batch: torch.Tensor):
        outputs = model(pixel_values=batch)
        hidden = outputs.last_hidden_state
        pooled = getattr(outputs, "pooler_output", None)
        if pooling == "pooler" or (pooling == "default" and pooled is not None and pooler_trained):
            if pooled is None or not pooler_trained:
                raise ValueError("pooling 'pooler' needs a pooler trained with the checkpoint; use 'token' or 'mean-patch'")
            return pooled.flatten(1), None
        if hidden.ndim == 4:  # CNN feature map [B, C, H, W]
            return hidden.mean(dim=(2, 3)), None
        if pooling in ("avg", "mean-patch") or (pooling == "default" and num_prefix == 0):
            return hidden[:, num_prefix:].mean(dim=1), None
        if pooling in ("default", "token"):
            if num_prefix == 0:
                raise ValueError("pooling 'token' needs a CLS token, which this model has not; use 'mean-patch'")
            return hidden[:, 0], None
        raise ValueError(f"pooling {pooling!r} is not supported for transformers models; use default, token, mean-patch or pooler")

    return forward

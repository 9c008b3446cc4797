"""timm backbones: Hub repos in timm format (``timm/<arch>.<tag>``), local folders and ``<scheme>:<name>`` ids."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import timm
import torch
from timm.data import resolve_model_data_config

from ..preprocess import ImageTransform
from ..sources import resolve_model_path
from ..zoo import ZooEntry
from .base import Backbone, BackboneLoadError, TorchBackbone, probe_feature_dim
from .hub import content_revision, hub_errors, hub_file, snapshot_revision

_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.pth", "model.pth")


def load_timm(entry: ZooEntry, *, device: torch.device, allow_pickle: bool = False, **_: Any) -> Backbone:
    """Create a pretrained timm model from the Hub (pinned to the resolved commit) or a local folder."""
    folder = local_model_folder(entry)
    if folder is not None:
        _check_local_weights(entry, folder, allow_pickle)
        source, revision = f"local-dir:{folder}", content_revision(folder)
    else:
        config = hub_file(entry.hub_id, "config.json", entry.revision)
        revision = snapshot_revision(config)
        if hub_file(entry.hub_id, "model.safetensors", revision, required=False) is None:
            _require_pickle_opt_in(entry, allow_pickle)
        source = f"hf-hub:{entry.hub_id}@{revision}"
    model = create_timm_model(entry, source)
    return timm_backbone(entry, model, revision=revision, device=device)


def create_timm_model(entry: ZooEntry, source: str, *, pretrained: bool = True) -> torch.nn.Module:
    """``timm.create_model`` with the entry's kwargs; failures become :class:`BackboneLoadError`."""
    from safetensors import SafetensorError

    with hub_errors(entry.hub_id, entry.revision):
        try:
            return timm.create_model(source, pretrained=pretrained, **entry.model_kwargs)
        except json.JSONDecodeError as exc:
            raise BackboneLoadError(entry.name, "invalid", f"its config.json is not valid JSON ({exc}); "
                                    "fix the file or download the model again") from None
        except SafetensorError as exc:
            raise BackboneLoadError(entry.name, "invalid", f"its model.safetensors weights are damaged or truncated "
                                    f"({exc}); download the model again (delete it from the cache) or fix the file") from None
        except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as exc:  # e.g. weights of another net
            raise BackboneLoadError(
                entry.name, "invalid", f"timm could not build it from {source!r}: {exc}. Check the architecture, model_kwargs and weights"
            ) from None


def timm_backbone(entry: ZooEntry, model: torch.nn.Module, *, revision: str, device: torch.device, details: dict | None = None) -> Backbone:
    """Wrap a timm model: pooled pre-logits features, source logits when it has a classifier."""
    data_config = resolve_model_data_config(model)
    if "img_size" in entry.model_kwargs:  # timm keeps the checkpoint's size in the cfg (e.g. DINOv2's 518)
        size = entry.model_kwargs["img_size"]
        data_config["input_size"] = (3, size, size) if isinstance(size, int) else (3, *size)
    preprocessor = ImageTransform.from_config(data_config, entry.preprocessing)
    has_head = has_classifier(model)
    forward = _make_forward(entry.pooling, has_head)
    feature_dim = probe_feature_dim(entry, model, forward, preprocessor.input_size)
    return TorchBackbone(
        entry, model, forward,
        resolved_revision=revision, feature_dim=feature_dim, preprocessor=preprocessor,
        has_source_head=has_head, device=device, details=details,
    )


def has_classifier(model: torch.nn.Module) -> bool:
    """True when the head is a source-task classifier (not e.g. CLIP's image-text projection)."""
    if getattr(model, "num_classes", 0) <= 0:
        return False
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    tag = str(cfg.get("tag") or "")
    # tags name the label space of classifier heads (in1k, in21k, in12k, ...); CLIP/SigLIP tags do not
    return not tag or cfg.get("label_names") is not None or bool(re.search(r"in\d+k|inat|places", tag))


def _make_forward(pooling: str, has_head: bool):
    def forward(model: torch.nn.Module, batch: torch.Tensor):
        tokens = model.forward_features(batch)
        features = pool_timm_features(model, tokens, pooling)
        logits = model.forward_head(tokens) if has_head else None
        return features, logits

    return forward


def pool_timm_features(model: torch.nn.Module, tokens: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool ``forward_features`` output.

    ``default`` is the model's own pre-logits pooling. ``avg`` / ``mean-patch`` average the
    spatial map (CNNs) or the patch tokens without prefix tokens (ViTs) *after* the final
    norm and without a new ``fc_norm`` (the MAE/SimMIM recipe; timm's ``global_pool='avg'``
    would add an untrained ``fc_norm``). ``token`` takes the first (CLS) token.
    """
    if pooling == "default":
        return model.forward_head(tokens, pre_logits=True)
    if tokens.ndim == 4:  # NCHW feature map
        if pooling in ("avg", "mean-patch"):
            return tokens.mean(dim=(2, 3))
        raise ValueError(f"pooling {pooling!r} needs a token sequence; CNN feature maps support 'default' and 'avg'")
    if pooling in ("avg", "mean-patch"):
        return tokens[:, getattr(model, "num_prefix_tokens", 1):].mean(dim=1)
    if pooling == "token":
        return tokens[:, 0]
    raise ValueError(f"pooling {pooling!r} is not supported by the timm loader; use default, avg, mean-patch or token")


def local_model_folder(entry: ZooEntry) -> Path | None:
    """Folder for ``<scheme>:<name>`` ids (:mod:`hf_tsel.sources`) and local paths; ``None`` for Hub repos."""
    resolved = resolve_model_path(entry.hub_id)
    if resolved is not None:
        return resolved
    path = Path(entry.hub_id).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BackboneLoadError(entry.name, "invalid", f"{path} has no config.json; save timm models with timm.models.save_for_hf")
        return path.resolve()
    if entry.hub_id.startswith(("/", "./", "../", "~")):
        raise BackboneLoadError(entry.name, "not_found", f"local folder {path} does not exist")
    return None


def _check_local_weights(entry: ZooEntry, folder: Path, allow_pickle: bool) -> None:
    if (folder / "model.safetensors").is_file():
        return
    if any((folder / name).is_file() for name in _PICKLE_WEIGHTS):
        _require_pickle_opt_in(entry, allow_pickle)
        return
    raise BackboneLoadError(entry.name, "invalid", f"{folder} holds no model.safetensors (or pickle weights)")


def _require_pickle_opt_in(entry: ZooEntry, allow_pickle: bool) -> None:
    if not allow_pickle:
        raise BackboneLoadError(
            entry.name, "pickle_only",
            "the repo has no model.safetensors, only pickle weights; pass --allow-pickle (allow_pickle=True) "
            "to load them with torch.load(weights_only=True), or use a safetensors copy",
        )

"""Raw checkpoint files (e.g. self-supervised training outputs) loaded into a timm architecture.

The file comes from a Hub repo (``hub_id`` + ``filename``) or a local path. Safetensors
load by default; pickle files (``.pth``, ``.bin``, ``.pt``...) only with ``allow_pickle=True``
and then with ``torch.load(weights_only=True)``. Keys are renamed with the entry's
``key_map`` (``{"old.prefix.": "new.prefix."}``; ``""`` strips the prefix, ``null`` drops
the keys); when no ``key_map`` is given a wrapping prefix such as ``module.base_encoder.``
is detected from the architecture's own key names and keys outside it (projection heads,
momentum encoders) are dropped; on a tie the prefix met first in the file wins. Missing or unexpected keys are an error
(listed), except a missing classifier, which is then removed (no source head), and head
weights when the entry asks for ``num_classes: 0`` (they are then ignored).
"""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from ..zoo import ZooEntry
from .base import Backbone, BackboneLoadError
from .hub import content_revision, hub_file, is_pickle_file, snapshot_revision
from .timm_loader import create_timm_model, timm_backbone

_NESTED_KEYS = ("state_dict", "model", "module", "teacher", "model_state", "network")


def load_checkpoint(entry: ZooEntry, *, device: torch.device, allow_pickle: bool = False, **_: Any) -> Backbone:
    """Build ``entry.architecture`` with timm and load ``entry.filename`` into it."""
    if is_pickle_file(entry.filename) and not allow_pickle:
        raise BackboneLoadError(
            entry.name, "pickle_only",
            f"{entry.filename} is a pickle file; pass --allow-pickle (allow_pickle=True) to load it with "
            "torch.load(weights_only=True), or point the entry at a .safetensors file",
        )
    path, revision = _checkpoint_file(entry)
    state_dict = read_state_dict(entry, path)
    model = create_timm_model(entry, entry.architecture, pretrained=False)
    mapped, inferred_prefix = map_keys(state_dict, entry.key_map, model.state_dict().keys())
    _load_into(entry, model, mapped)
    details = {"checkpoint_file": entry.filename, "stripped_prefix": inferred_prefix}
    return timm_backbone(entry, model, revision=revision, device=device, details=details)


def _checkpoint_file(entry: ZooEntry) -> tuple[Path, str]:
    local = Path(entry.hub_id).expanduser()
    if local.is_file():
        return local, content_revision(local)
    if local.is_dir():
        path = local / entry.filename
        if not path.is_file():
            raise BackboneLoadError(entry.name, "not_found", f"{path} does not exist")
        return path, content_revision(path)
    path = hub_file(entry.hub_id, entry.filename, entry.revision)
    return path, snapshot_revision(path)


def read_state_dict(entry: ZooEntry, path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors or (weights-only) pickle checkpoint, unwrapping ``{"state_dict": ...}``."""
    if path.suffix == ".safetensors":
        import safetensors.torch

        return safetensors.torch.load_file(str(path), device="cpu")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise BackboneLoadError(
            entry.name, "invalid", f"{path.name} holds objects that weights_only loading refuses ({exc}); convert it to safetensors"
        ) from None
    while isinstance(checkpoint, dict) and not any(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        nested = next((checkpoint[k] for k in _NESTED_KEYS if isinstance(checkpoint.get(k), dict)), None)
        if nested is None:
            break
        checkpoint = nested
    if not isinstance(checkpoint, dict):
        raise BackboneLoadError(entry.name, "invalid", f"{path.name} is not a state dict (got {type(checkpoint).__name__})")
    return {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}


def map_keys(state_dict: dict[str, torch.Tensor], key_map: dict[str, str | None], model_keys) -> tuple[dict[str, torch.Tensor], str | None]:
    """Apply ``key_map`` (longest prefix first), or strip a detected wrapping prefix when none is given."""
    inferred = None
    if not key_map:
        inferred = _wrapping_prefix(state_dict.keys(), set(model_keys))
        if inferred:  # keys outside the wrapper belong to other sub-networks (projector, momentum encoder...)
            state_dict = {k: v for k, v in state_dict.items() if k.startswith(inferred)}
            key_map = {inferred: ""}
    prefixes = sorted(key_map, key=len, reverse=True)
    mapped = {}
    for key, tensor in state_dict.items():
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            mapped[key] = tensor
        elif key_map[prefix] is not None:
            mapped[key_map[prefix] + key[len(prefix):]] = tensor
    return mapped, inferred


def _wrapping_prefix(checkpoint_keys, model_keys: set[str]) -> str | None:
    """Most common prefix ``p`` such that ``p + model_key`` is a checkpoint key (None if keys already match)."""
    if len(model_keys & set(checkpoint_keys)) > len(model_keys) // 2:
        return None
    votes: Counter[str] = Counter()
    for key in checkpoint_keys:
        for start in [0] + [i + 1 for i, c in enumerate(key) if c == "."]:
            if key[start:] in model_keys:
                votes[key[:start]] += 1
                break
    best = votes.most_common(1)
    return best[0][0] if best and best[0][0] else None


def _load_into(entry: ZooEntry, model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    shape_errors = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}" for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    if shape_errors:
        raise BackboneLoadError(entry.name, "invalid", f"shape mismatch for {len(shape_errors)} tensor(s), e.g. {shape_errors[:3]}; check architecture/model_kwargs")
    head = _classifier_prefix(model)
    if head and getattr(model, "num_classes", 0) == 0:  # training heads (e.g. MoCo v3's projector in `head.`) unused
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(head)}
    result = model.load_state_dict(state_dict, strict=False)
    missing = list(result.missing_keys)
    if head and missing and all(k.startswith(head) for k in missing):
        model.reset_classifier(0)  # the checkpoint has no (or another) head: features only
        missing = []
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s) {missing[:5]}")
    if result.unexpected_keys:
        problems.append(f"{len(result.unexpected_keys)} unexpected key(s) {list(result.unexpected_keys)[:5]}")
    if problems:
        raise BackboneLoadError(
            entry.name, "invalid",
            f"checkpoint keys do not fit {entry.architecture}: {'; '.join(problems)}. "
            "Add key_map entries (\"prefix.\": \"new.\" to rename, \"prefix.\": null to drop) to the zoo entry",
        )


def _classifier_prefix(model: torch.nn.Module) -> str | None:
    name = getattr(model, "pretrained_cfg", {}).get("classifier")
    return f"{name}." if isinstance(name, str) else None

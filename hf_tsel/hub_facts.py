"""Facts about a Hub model read from its Hub metadata alone (no weight download): what a zoo entry needs.

:func:`entry_or_reason` turns one ``huggingface_hub.ModelInfo`` (from ``HfApi.list_models`` or
``model_info`` with ``safetensors``, ``cardData``, ``config``, ``tags`` and ``siblings``) into a pinned
:class:`hf_tsel.zoo.ZooEntry`, or says why the repo cannot be one. Family and pre-training are read from
the repo name and tags only where exactly one known family matches (else ``unknown``); ImageNet-1k top-1
comes from the card's ``model-index`` when it reports one, never estimated.

Example:
    >>> family_and_pretraining("timm/vit_small_patch16_224.dino", ["timm", "image-feature-extraction"])
    ('dino', 'self-supervised')
    >>> family_and_pretraining("timm/resnet50.tv_in1k", ["timm"])
    ('supervised-cnn', 'supervised')
    >>> family_and_pretraining("someone/my-model", [])
    ('unknown', 'unknown')
    >>> imagenet_top1({"model-index": [{"results": [{"dataset": {"type": "imagenet-1k"},
    ...                                               "metrics": [{"type": "accuracy", "value": 0.8012}]}]}]})
    80.12
"""

from __future__ import annotations

import re
from typing import Any

from .source_reference import IMAGENET_REFERENCE
from .zoo import ZooEntry, default_name, parse_entry

__all__ = ["SUPPORTED_LIBRARIES", "entry_or_reason", "family_and_pretraining", "imagenet_pretrained", "imagenet_top1",
           "input_size", "license_of"]

SUPPORTED_LIBRARIES = ("timm", "transformers")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_TOKEN = re.compile(r"[a-z0-9]+")
# (family, pre-training, name/tag tokens that identify it); a repo matching two families is left unknown
_SELF_SUPERVISED = [
    ("dinov2", "self-supervised", {"dinov2"}),
    ("dino", "self-supervised", {"dino"}),
    ("mae", "self-supervised", {"mae"}),
    ("simmim", "self-supervised", {"simmim"}),
    ("moco", "self-supervised", {"moco", "mocov3", "mocov2"}),
    ("clip", "language-supervised", {"clip", "siglip", "openai", "laion2b", "laion400m"}),
]
_SUPERVISED_TAGS = {"in1k", "in21k", "in22k", "in12k", "tv", "tv2"}
_CNN_PREFIXES = ("resnet", "resnext", "densenet", "efficientnet", "mobilenet", "mnasnet", "regnet", "convnext",
                 "vgg", "inception", "ghostnet", "rexnet", "hrnet", "dpn", "tf_efficientnet", "tf_mobilenet",
                 "seresnet", "wide_resnet", "fbnet", "lcnet", "mixnet")
_VIT_PREFIXES = ("vit_", "deit", "swin", "beit", "eva", "cait", "xcit", "pit_", "levit")
_IMAGENET_NAMES = {"imagenet", "imagenet-1k", "imagenet1k", "imagenet_1k", "ilsvrc2012", "imagenet-1k-wds"}
_TOP1_NAMES = {"accuracy", "top-1", "top1", "acc@1", "top_1_accuracy", "top-1 accuracy", "top1_accuracy"}
_SIZE_IN_NAME = re.compile(r"[_\-.](\d{3})(?:[_\-.]|$)")


def _architecture(hub_id: str, config: dict) -> str:
    """The timm architecture: ``config.json``'s ``architecture``, else the name of a ``timm/<arch>.<tag>`` repo."""
    if isinstance(config.get("architecture"), str):
        return config["architecture"]
    name = hub_id.split("/", 1)[-1]
    return name.split(".", 1)[0] if hub_id.startswith("timm/") else ""


def family_and_pretraining(hub_id: str, tags: list[str] | None, config: dict | None = None) -> tuple[str, str]:
    """``(family, pretraining)`` where the repo name and tags name one known family, else ``unknown``."""
    tokens = set(_TOKEN.findall(hub_id.lower())) | {t.lower() for t in tags or []}
    matches = [(family, kind) for family, kind, marks in _SELF_SUPERVISED if tokens & marks]
    if len(matches) == 2 and {m[0] for m in matches} == {"dino", "dinov2"}:
        matches = [("dinov2", "self-supervised")]  # "dinov2" repos are often tagged "dino" too
    fine_tuned = any(token.startswith("ft") for token in tokens)
    if len(matches) == 1:
        family, kind = matches[0]
        return family, "supervised" if fine_tuned else kind
    if matches or not tokens & _SUPERVISED_TAGS:
        return "unknown", "unknown"
    arch = _architecture(hub_id, config or {}).lower() or hub_id.split("/", 1)[-1].lower()
    if arch.startswith(_CNN_PREFIXES):
        return "supervised-cnn", "supervised"
    if arch.startswith(_VIT_PREFIXES):
        return "vit-supervised", "supervised"
    return "unknown", "supervised"


def imagenet_top1(card: dict | None) -> float | None:
    """The ImageNet-1k top-1 accuracy (%) the card's ``model-index`` reports, or None (never estimated)."""
    for model in (card or {}).get("model-index") or []:
        for result in (model or {}).get("results") or []:
            dataset = (result or {}).get("dataset") or {}
            names = {str(dataset.get(k, "")).lower().split("/")[-1] for k in ("type", "name")}
            if not names & _IMAGENET_NAMES:
                continue
            for metric in result.get("metrics") or []:
                kinds = {str(metric.get(k, "")).lower() for k in ("type", "name")}
                value = metric.get("value")
                if kinds & _TOP1_NAMES and isinstance(value, (int, float)) and not isinstance(value, bool):
                    return round(float(value) * (100.0 if value <= 1.0 else 1.0), 4)
    return None


def input_size(hub_id: str, config: dict | None) -> int | None:
    """Input resolution: timm's ``pretrained_cfg.input_size``, transformers' ``image_size``, else a size in the
    name (``_384``), else None."""
    config = config or {}
    pretrained = config.get("pretrained_cfg") or {}
    size = pretrained.get("test_input_size") or pretrained.get("input_size") or config.get("image_size")
    if isinstance(size, (list, tuple)) and size:
        size = size[-1]
    if isinstance(size, int) and size > 0:
        return size
    match = _SIZE_IN_NAME.search(hub_id.split("/", 1)[-1])
    return int(match.group(1)) if match else None


def license_of(info: Any) -> str:
    """The licence the card (or a ``license:`` tag) declares; ``unknown`` when none."""
    card = _card(info)
    if isinstance(card.get("license"), str):
        return card["license"]
    return next((t.split(":", 1)[1] for t in info.tags or [] if t.startswith("license:")), "unknown")


def _card(info: Any) -> dict:
    card = getattr(info, "card_data", None)
    return card.to_dict() if hasattr(card, "to_dict") else dict(card or {})


def _unsupported_architecture(loader: str, hub_id: str, config: dict) -> str | None:
    if loader == "timm":
        import timm

        arch = _architecture(hub_id, config)
        if arch and not timm.is_model(arch):
            return f"unsupported architecture {arch!r}: timm {timm.__version__} has no such model"
        return None
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    model_type = config.get("model_type")
    if model_type and model_type not in MODEL_MAPPING_NAMES:
        return f"unsupported architecture: transformers has no AutoModel for model_type {model_type!r}"
    return None


def _pretraining_data(card: dict) -> str | None:
    datasets = card.get("datasets")
    if isinstance(datasets, str):
        datasets = [datasets]
    return ", ".join(map(str, datasets)) if datasets else None


def entry_or_reason(info: Any, *, has_token: bool) -> ZooEntry | str:
    """A pinned zoo entry for one Hub model, or why it cannot be one (a one-line reason that says what would fix it).

    Repos of another library, without safetensors weights, with custom code, gated (without a token) or of an
    architecture the loaders do not know are refused; so is a repo whose metadata names no commit.
    """
    hub_id, tags, config = info.id, list(info.tags or []), dict(info.config or {})
    loader = info.library_name if info.library_name in SUPPORTED_LIBRARIES else None
    if loader is None:
        return f"library {info.library_name!r} is not supported (only {', '.join(SUPPORTED_LIBRARIES)})"
    if "custom_code" in tags or "auto_map" in config:
        return "custom code: the repo runs its own Python code; review it, then add it by hand with --trust-remote-code"
    if info.gated and not has_token:
        return "gated: accept its conditions on the Hub and log in (hf auth login or HF_TOKEN), then search again"
    files = [s.rfilename for s in info.siblings or []]
    if info.safetensors is None and not any(f.endswith(".safetensors") for f in files):
        return "no safetensors weights (pickle files only; they are never loaded from a search)"
    unsupported = _unsupported_architecture(loader, hub_id, config)
    if unsupported:
        return unsupported
    if not _SHA.match(info.sha or ""):
        return "the Hub reported no commit sha, so the entry cannot be pinned"
    card = _card(info)
    family, pretraining = family_and_pretraining(hub_id, tags, config)
    top1 = imagenet_top1(card)
    metadata = {"params": info.safetensors.total if info.safetensors else None, "imagenet_top1": top1,
                "input_size": input_size(hub_id, config), "pretraining_data": _pretraining_data(card),
                "source": "Hub search: params from the safetensors metadata"
                          + ("; top-1 from the model card's model-index" if top1 is not None else "")}
    raw: dict[str, Any] = {"name": default_name(hub_id), "hub_id": hub_id, "loader": loader, "revision": info.sha,
                           "family": family, "pretraining": pretraining, "license": license_of(info),
                           "metadata": {k: v for k, v in metadata.items() if v is not None}}
    if imagenet_pretrained(card, tags):
        raw["source_reference"] = dict(IMAGENET_REFERENCE)
    return parse_entry(raw, where=f"Hub model {hub_id}")


def imagenet_pretrained(card: dict, tags: list[str]) -> bool:
    """Whether the card names ImageNet-1k as the (only) training data: its source reference is then an ImageNet
    sample."""
    datasets = card.get("datasets")
    if isinstance(datasets, str):
        datasets = [datasets]
    named = {str(d).lower().split("/")[-1] for d in datasets or []}
    named |= {t.split(":", 1)[1].lower().split("/")[-1] for t in tags if t.startswith("dataset:")}
    return bool(named) and named <= _IMAGENET_NAMES

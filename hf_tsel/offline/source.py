"""The ``offline:<name>`` model id scheme: packaged models as a :class:`hf_tsel.sources.ModelSource`."""

from __future__ import annotations

from typing import Callable

from torch import nn

from ..sources import ModelSource, register_source
from ..zoo import ZooEntry, load_zoo
from .extras import TORCH_MODULES, torch_feature_module
from .models import lookup, offline_model_path

SCHEME = "offline"
# zoos whose entries carry the preprocessing of the offline models (e.g. NHWC/BGR for ONNX graphs)
ZOOS = ("offline", "offline-benchmark")


def offline_loader(model_id: str) -> str:
    """Loader name for an ``offline:<name>`` id."""
    return lookup(model_id).loader


def known_entry(model_id: str) -> ZooEntry | None:
    """The bundled zoo entry of an ``offline:<name>`` id, or None."""
    for zoo in ZOOS:
        known = next((e for e in load_zoo(zoo) if e.hub_id == model_id), None)
        if known is not None:
            return known
    return None


def torch_module_builder(model_id: str) -> Callable[[], nn.Module] | None:
    """Builder of the PyTorch module an ONNX-exported offline model came from, or None."""
    name = model_id.removeprefix(f"{SCHEME}:")
    if name not in TORCH_MODULES:
        return None
    return lambda: torch_feature_module(name)


SOURCE = ModelSource(scheme=SCHEME, resolve=offline_model_path, loader=offline_loader, zoo_entry=known_entry,
                     torch_module=torch_module_builder)
register_source(SOURCE)

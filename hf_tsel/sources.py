"""Model sources beyond the Hub: ``<scheme>:<name>`` model ids resolved by plug-ins.

A plug-in registers a :class:`ModelSource` for its scheme; the zoo and the loaders then treat
``<scheme>:<name>`` like a local model folder, without knowing where it came from. Installed
plug-ins (the ``hf_tsel.model_sources`` entry-point group, the scheme as the entry point's name, a
:class:`ModelSource` as its object) are loaded the first time one of their ids is seen (they import
torch); this module names none of them.

Example:
    >>> source_for("timm/resnet50.tv_in1k") is None  # Hub ids belong to no scheme
    True
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Callable

__all__ = ["ModelSource", "register_source", "is_source_id", "source_for", "resolve_model_path"]

ENTRY_POINT_GROUP = "hf_tsel.model_sources"


def _no_entry(model_id: str) -> None:
    return None


@dataclass(frozen=True)
class ModelSource:
    """How to turn ``<scheme>:<name>`` ids into loadable local models.

    Attributes:
        scheme: the id prefix before ``:``.
        resolve: model id -> local model folder (created on first use); raises a
            :class:`hf_tsel.errors.HfTselError` for unknown names or missing packages.
        loader: model id -> loader name (``timm``, ``onnx``, ...), for ids given without a zoo entry.
        zoo_entry: model id -> the :class:`hf_tsel.zoo.ZooEntry` that describes it best (e.g. its
            preprocessing), or None.
        torch_module: model id -> a function building a freshly loaded trainable ``torch.nn.Module``
            (``[B, 3, H, W] -> [B, D]`` features), or None; lets fine-tuning train models that are
            loaded for inference from another format (ONNX).
    """

    scheme: str
    resolve: Callable[[str], Path]
    loader: Callable[[str], str]
    zoo_entry: Callable[[str], Any] = _no_entry
    torch_module: Callable[[str], Callable[[], Any] | None] = _no_entry


_SOURCES: dict[str, ModelSource] = {}


@functools.lru_cache(maxsize=1)
def _installed() -> dict[str, EntryPoint]:
    """Scheme -> entry point of every installed plug-in (read once; nothing is imported)."""
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def register_source(source: ModelSource) -> None:
    """Make ``<source.scheme>:<name>`` ids resolvable (a later registration replaces an earlier one)."""
    _SOURCES[source.scheme] = source


def is_source_id(model_id: str) -> bool:
    """Whether ``model_id`` is ``<scheme>:<name>`` of a registered or built-in scheme (imports no plug-in)."""
    scheme, colon, _ = model_id.partition(":")
    return bool(colon) and (scheme in _SOURCES or scheme in _installed())


def source_for(model_id: str) -> ModelSource | None:
    """The :class:`ModelSource` of a ``<scheme>:<name>`` id, or None for Hub ids, paths and unknown schemes."""
    scheme, colon, _ = model_id.partition(":")
    if not colon:
        return None
    if scheme not in _SOURCES and scheme in _installed():
        register_source(_installed()[scheme].load())
    return _SOURCES.get(scheme)


def resolve_model_path(model_id: str) -> Path | None:
    """Local folder of a scheme id (created on first use), or None when ``model_id`` has no registered scheme."""
    source = source_for(model_id)
    return None if source is None else source.resolve(model_id)

"""ONNX backbones run with onnxruntime; features come from a named (possibly internal) tensor.

``output_node`` names the feature tensor; when it is an intermediate tensor it is added as
an extra graph output. ``preprocessing`` describes the model's input: ``layout``
(NCHW/NHWC), ``channel_order`` (RGB/BGR), ``scale``, ``mean``/``std``, ``input_size`` (read
from the graph's input shape when not given). 4-D feature maps are average-pooled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..preprocess import ImageTransform
from ..sources import resolve_model_path
from ..zoo import ZooEntry
from .base import Backbone, BackboneLoadError
from .hub import content_revision, hub_file, snapshot_revision

DEFAULT_FILENAME = "model.onnx"


class OnnxBackbone(Backbone):
    """A backbone backed by an onnxruntime session."""

    def __init__(self, entry: ZooEntry, model_bytes: bytes, input_name: str, output_name: str, **kwargs: Any):
        super().__init__(entry, **kwargs)
        self._model_bytes = model_bytes
        self._input_name = input_name
        self._output_name = output_name
        self._move(self.device)

    def _move(self, device: torch.device) -> None:
        import onnxruntime

        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # extra outputs on internal tensors trigger harmless warnings
        self._session = onnxruntime.InferenceSession(self._model_bytes, sess_options=options, providers=providers)

    def _forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, None]:
        array = batch.detach().cpu().numpy().astype(np.float32, copy=False)
        if self.preprocessor.layout == "NHWC":
            array = np.ascontiguousarray(array.transpose(0, 2, 3, 1))
        (output,) = self._session.run([self._output_name], {self._input_name: array})
        return torch.from_numpy(_pool(output, self.preprocessor.layout)).to(self.device), None


def load_onnx(entry: ZooEntry, *, device: torch.device, **_: Any) -> Backbone:
    """Open ``entry``'s ONNX file and expose ``entry.output_node`` as pooled features."""
    import onnx

    path, revision = _onnx_file(entry)
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError / ValidationError subclasses of varying types
        raise BackboneLoadError(entry.name, "invalid", f"{path.name} is not a readable ONNX model: {exc}") from None
    input_info = _graph_input(model)
    output_name = entry.output_node or model.graph.output[0].name
    _expose(entry, model, output_name)
    preprocessing = dict(entry.preprocessing)
    preprocessing.setdefault("crop_pct", 1.0)
    if "input_size" not in preprocessing:
        size = _static_input_size(input_info, preprocessing.get("layout", "NCHW"))
        if size:
            preprocessing["input_size"] = (3, *size)
    preprocessor = ImageTransform.from_config({}, preprocessing)
    backbone = OnnxBackbone(
        entry, model.SerializeToString(), input_info.name, output_name,
        resolved_revision=revision, feature_dim=1, preprocessor=preprocessor, has_source_head=False, device=device,
        details={"onnx_file": path.name, "output_node": output_name},
    )
    try:
        probe, _ = backbone._forward(torch.zeros(1, *preprocessor.input_size))
    except Exception as exc:  # onnxruntime raises its own exception hierarchy
        raise BackboneLoadError(entry.name, "invalid", f"a test run of the ONNX model failed: {exc}") from None
    backbone.feature_dim = probe.shape[1]
    return backbone


def _onnx_file(entry: ZooEntry) -> tuple[Path, str]:
    filename = entry.filename or DEFAULT_FILENAME
    resolved = resolve_model_path(entry.hub_id)
    if resolved is not None:
        path = resolved / filename
        return path, content_revision(path)
    local = Path(entry.hub_id).expanduser()
    if local.is_file() or local.is_dir():
        path = local if local.is_file() else local / filename
        if not path.is_file():
            raise BackboneLoadError(entry.name, "not_found", f"{path} does not exist")
        return path, content_revision(path)
    path = hub_file(entry.hub_id, filename, entry.revision)
    return path, snapshot_revision(path)


def _graph_input(model):
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ValueError(f"expected one image input, found {[i.name for i in inputs]}")
    return inputs[0]


def _expose(entry: ZooEntry, model, name: str) -> None:
    """Make tensor ``name`` a graph output (no-op if it already is one)."""
    import onnx

    if any(o.name == name for o in model.graph.output):
        return
    produced = {out for node in model.graph.node for out in node.output}
    if name not in produced:
        some = sorted(produced)[:8]
        raise BackboneLoadError(entry.name, "invalid", f"output_node {name!r} is not a tensor of the graph; tensors include {some}")
    model.graph.output.append(onnx.ValueInfoProto(name=name))


def _static_input_size(input_info, layout: str) -> tuple[int, int] | None:
    dims = [d.dim_value if d.HasField("dim_value") else None for d in input_info.type.tensor_type.shape.dim]
    if len(dims) != 4:
        return None
    height, width = (dims[2], dims[3]) if layout == "NCHW" else (dims[1], dims[2])
    return (height, width) if height and width else None


def _pool(output: np.ndarray, layout: str) -> np.ndarray:
    if output.ndim == 4:
        return output.mean(axis=(2, 3) if layout == "NCHW" else (1, 2))
    return output.reshape(output.shape[0], -1)

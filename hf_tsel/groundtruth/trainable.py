"""Trainable PyTorch versions of zoo entries, and image datasets preprocessed for them (fine-tuning GT)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..errors import UserError


def _not_trainable(entry: Any) -> UserError:
    return UserError(f"{entry.name}: the {entry.loader} loader gives no trainable PyTorch module, so it cannot be "
                     "fine-tuned; use the linear-probe protocol for it")


class PooledFeatures(nn.Module):
    """A loaded torch backbone as a module returning the same pooled features as ``Backbone.embed``.

    ``feature_info`` of timm models is re-exposed (module names prefixed) so that
    :func:`hf_tsel.groundtruth.finetune.last_stage_parameter_names` finds the last stage.
    """

    def __init__(self, module: nn.Module, forward: Callable[[nn.Module, torch.Tensor], tuple]) -> None:
        super().__init__()
        self.model = module
        self._pooled_forward = forward
        info = getattr(module, "feature_info", None)
        if isinstance(info, (list, tuple)) and info and isinstance(info[-1], dict):
            self.feature_info = [{**item, "module": f"model.{item['module']}"} for item in info]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._pooled_forward(self.model, images)[0]


@dataclass
class Trainable:
    """How to rebuild a pretrained model for training, and its eval preprocessing."""

    build: Callable[[], nn.Module]
    feature_dim: int
    preprocessor: Any  # picklable PIL image -> CHW tensor


def trainable_backbone(entry: Any, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> Trainable:
    """A :class:`Trainable` for a zoo entry whose weights exist as a PyTorch module.

    timm / transformers / checkpoint entries reload their backbone for every build; the extra
    offline ONNX models of :mod:`hf_tsel.groundtruth.offline_extras` rebuild the PyTorch module they
    were exported from. Other ONNX models cannot be trained (ONNX Runtime only runs inference).
    """
    from ..backbones import load_backbone
    from . import offline_extras

    name = entry.hub_id.removeprefix("offline:")
    exported = entry.hub_id.startswith("offline:") and name in offline_extras.TORCH_MODULES
    if entry.loader == "onnx" and not exported:
        raise _not_trainable(entry)
    options = {"allow_pickle": allow_pickle, "trust_remote_code": trust_remote_code}
    probe = load_backbone(entry, **options)
    if exported:
        return Trainable(lambda: offline_extras.torch_feature_module(name), probe.feature_dim, probe.preprocessor)
    if not hasattr(probe, "module") or not hasattr(probe, "_forward_fn"):
        raise _not_trainable(entry)

    def build() -> nn.Module:
        backbone = load_backbone(entry, **options)
        return PooledFeatures(backbone.module, backbone._forward_fn)

    return Trainable(build, probe.feature_dim, probe.preprocessor)


def split_last_stage(module: nn.Module, example: torch.Tensor) -> tuple[nn.Module, nn.Module] | None:
    """``(frozen trunk, last stage + pooling)`` of a feature module, or None when its layout is unknown.

    Supported (bare or inside :class:`PooledFeatures`): ``nn.Sequential`` (split before the last
    child with parameters) and timm EfficientNet-family models (split before the last block stage).
    The split is only returned if ``tail(trunk(example))`` reproduces ``module(example)``.
    Training the tail on cached trunk outputs equals training the last stage with a frozen trunk
    (frozen batch-norm statistics, no augmentation) at a fraction of the cost.
    """
    inner = module.model if isinstance(module, PooledFeatures) else module
    if isinstance(inner, nn.Sequential):
        index = max((i for i, child in enumerate(inner) if any(True for _ in child.parameters())), default=0)
        trunk, tail = inner[:index], inner[index:]
    elif all(hasattr(inner, a) for a in ("conv_stem", "bn1", "blocks", "conv_head", "bn2", "global_pool")):
        model = inner
        trunk = nn.Sequential(model.conv_stem, model.bn1, *model.blocks[:-1])
        tail = nn.Sequential(model.blocks[-1], model.conv_head, model.bn2, model.global_pool, nn.Flatten(1))
    else:
        return None
    was_training = module.training
    module.eval()
    with torch.no_grad():
        same = torch.allclose(tail(trunk(example)), module(example), atol=1e-4, rtol=1e-4)
    module.train(was_training)
    return (trunk, tail) if same else None


def trunk_outputs(trunk: nn.Module, images: torch.utils.data.Dataset, batch_size: int = 64) -> torch.utils.data.TensorDataset:
    """Frozen trunk outputs of every image, with labels, as an in-memory dataset."""
    trunk.eval()
    outputs, labels = [], []
    with torch.no_grad():
        for batch, batch_labels in torch.utils.data.DataLoader(images, batch_size=batch_size):
            outputs.append(trunk(batch))
            labels.append(torch.as_tensor(batch_labels))
    return torch.utils.data.TensorDataset(torch.cat(outputs), torch.cat(labels))


class PreprocessedImages(torch.utils.data.Dataset):
    """``(preprocessed image, label)`` pairs of a sampled :class:`hf_tsel.data.ImageDataset`."""

    def __init__(self, data: Any, preprocessor: Callable) -> None:
        self.data, self.preprocessor = data, preprocessor

    def __len__(self) -> int:
        return self.data.num_samples

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int]:
        return self.preprocessor(self.data.load_image(position)), int(self.data.labels[position])

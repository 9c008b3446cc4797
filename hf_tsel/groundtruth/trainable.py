"""Trainable PyTorch versions of zoo entries, and image datasets preprocessed for them (fine-tuning GT)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .. import backbones  # backbones.load_backbone looked up at call time (tests replace it)
from ..backbones.base import PooledFeatures
from ..errors import UserError
from ..sources import source_for


def _not_trainable(entry: Any) -> UserError:
    return UserError(f"{entry.name}: the {entry.loader} loader gives no trainable PyTorch module, so it cannot be "
                     "fine-tuned; use the linear-probe protocol for it")


@dataclass
class Trainable:
    """How to rebuild a pretrained model for training, and its eval preprocessing."""

    build: Callable[[], nn.Module]
    feature_dim: int
    preprocessor: Any  # picklable PIL image -> CHW tensor


def trainable_backbone(entry: Any, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> Trainable:
    """A :class:`Trainable` for a zoo entry whose weights exist as a PyTorch module.

    timm / transformers / checkpoint entries reload their backbone for every build; models of a
    :mod:`hf_tsel.sources` scheme that were exported to ONNX from a PyTorch module (the extra
    offline models) rebuild that module. Other ONNX models cannot be trained (ONNX Runtime only
    runs inference).
    """
    source = source_for(entry.hub_id)
    exported = source.torch_module(entry.hub_id) if source is not None else None
    if entry.loader == "onnx" and exported is None:
        raise _not_trainable(entry)
    options = {"allow_pickle": allow_pickle, "trust_remote_code": trust_remote_code}
    probe = backbones.load_backbone(entry, **options)
    if exported is not None:
        return Trainable(exported, probe.feature_dim, probe.preprocessor)
    try:
        probe.as_module()
    except NotImplementedError:
        raise _not_trainable(entry) from None

    def build() -> nn.Module:
        return backbones.load_backbone(entry, **options).as_module()

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

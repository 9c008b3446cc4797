"""The benchmark's model zoo: small timm architectures pre-trained here, on CPU, from offline data.

Every model is a stock timm architecture shrunk with constructor arguments (no custom code), saved
with :func:`timm.models.save_for_hf` as ``config.json`` (``architecture`` + ``model_args`` +
``pretrained_cfg``) and ``model.safetensors``: the folder format the pipeline's timm loader reads.

A :class:`Recipe` is one pre-training run; it yields one model, or two when ``early`` is set (a
checkpoint after that fraction of the steps, and the final one). Pre-training is

* ``supervised``: cross-entropy on a source task (the source head is kept, so LEEP / NCE apply);
* ``rotation``: self-supervised rotation prediction (Gidaris et al., ICLR 2018) on the same
  images without labels; the 4-way head is dropped;
* ``random``: no training (random-init controls; no head).

Training is seeded (weights, data order), single-threaded and therefore bit-reproducible.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ...preprocess import ImageTransform
from .tasks import SOURCE_CLASSES, Split, source_split

INPUT_SIZE = 32
# The pixel statistics every zoo model is trained and evaluated with (values in 0..1 units).
DATA_CONFIG = {"input_size": (3, INPUT_SIZE, INPUT_SIZE), "crop_pct": 1.0, "interpolation": "bilinear",
               "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
MODEL_INFO = "hf_tsel_zoo.json"
BUILDER_VERSION = 2  # bump when the training code changes: built models with another version are rebuilt

# name -> (timm architecture, family, constructor arguments)
ARCHITECTURES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "resnet-xxs": ("resnet18", "resnet", dict(layers=[1, 1, 1, 1], channels=[8, 16, 32, 64], stem_width=8)),
    "resnet-xs": ("resnet18", "resnet", dict(layers=[1, 1, 1, 1], channels=[16, 32, 64, 128], stem_width=16)),
    "resnet-s": ("resnet18", "resnet", dict(layers=[1, 1, 1, 1], channels=[32, 64, 128, 256], stem_width=32)),
    "resnet-m": ("resnet18", "resnet", dict(layers=[2, 2, 2, 2], channels=[32, 64, 128, 256], stem_width=32)),
    "repvgg-xs": ("repvgg_a0", "vgg-style", dict(width_factor=0.25)),
    "mobilenetv3-s": ("mobilenetv3_small_050", "mobilenet", {}),
    "lcnet-xs": ("lcnet_035", "mobilenet", {}),
    "efficientnet-xxs": ("test_efficientnet", "mobilenet", {}),
    "vit-xs": ("vit_tiny_patch16_224", "vit", dict(img_size=INPUT_SIZE, patch_size=4, embed_dim=64, depth=4,
                                                   num_heads=2)),
}


@dataclass(frozen=True)
class Recipe:
    """One pre-training run (see the module docstring)."""

    name: str
    architecture: str  # key of ARCHITECTURES
    method: str  # supervised | rotation | random
    source: str | None = None  # key of tasks.SOURCE_CLASSES
    per_class: int = 0  # source images per class
    epochs: int = 0
    early: float | None = None  # also save a checkpoint after this fraction of the steps
    seed: int = 0
    lr: float = 2e-3
    batch_size: int = 64

    def model_names(self) -> list[str]:
        return ([f"{self.name}-early"] if self.early else []) + [self.name]


def _full_recipes() -> list[Recipe]:
    recipes = []
    for arch in ("resnet-xxs", "resnet-xs", "resnet-s", "repvgg-xs", "mobilenetv3-s", "lcnet-xs", "efficientnet-xxs",
                 "vit-xs"):
        recipes.append(Recipe(f"{arch}-fmnist10", arch, "supervised", "fmnist10", 200, 3, early=0.3))
    recipes.append(Recipe("resnet-m-fmnist10", "resnet-m", "supervised", "fmnist10", 200, 3))
    for arch in ("resnet-xs", "vit-xs", "lcnet-xs"):
        recipes.append(Recipe(f"{arch}-fmnist-tops5", arch, "supervised", "fmnist-tops5", 400, 3))
    for arch in ("resnet-xs", "repvgg-xs"):
        recipes.append(Recipe(f"{arch}-fmnist-rest5", arch, "supervised", "fmnist-rest5", 400, 3))
    for arch in ("resnet-xs", "vit-xs", "mobilenetv3-s"):
        recipes.append(Recipe(f"{arch}-mnist10", arch, "supervised", "mnist10", 200, 4))
    recipes.append(Recipe("resnet-xs-fmnist10-small", "resnet-xs", "supervised", "fmnist10", 30, 10))
    for arch in ("resnet-xs", "repvgg-xs", "vit-xs"):
        recipes.append(Recipe(f"{arch}-rotation", arch, "rotation", "fmnist10", 200, 3))
    for arch in ("resnet-xs", "vit-xs", "mobilenetv3-s"):
        recipes.append(Recipe(f"{arch}-random", arch, "random", seed=1))
    return recipes


def _tiny_recipes() -> list[Recipe]:
    return [Recipe("resnet-xxs-fmnist10", "resnet-xxs", "supervised", "fmnist10", 40, 2, lr=5e-3, batch_size=32),
            Recipe("efficientnet-xxs-rotation", "efficientnet-xxs", "rotation", "fmnist10", 40, 1, batch_size=32),
            Recipe("resnet-xxs-random", "resnet-xxs", "random", seed=1)]


RECIPES: dict[str, list[Recipe]] = {"full": _full_recipes(), "tiny": _tiny_recipes()}


def create_model(architecture: str, num_classes: int, seed: int) -> nn.Module:
    """A freshly initialised (seeded) timm model of one of :data:`ARCHITECTURES`."""
    import timm

    timm_name, _, kwargs = ARCHITECTURES[architecture]
    torch.manual_seed(seed)
    return timm.create_model(timm_name, pretrained=False, num_classes=num_classes, **kwargs)


def preprocess(images: np.ndarray) -> torch.Tensor:
    """uint8 greyscale ``[N, H, W]`` -> ``[N, 3, 32, 32]`` exactly as the pipeline's timm loader will see them."""
    from PIL import Image

    transform = ImageTransform.from_config(dict(DATA_CONFIG))
    return torch.stack([transform(Image.fromarray(image)) for image in images])


def _rotated(images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    turns = torch.randint(0, 4, (len(images),), generator=generator)
    return torch.stack([torch.rot90(img, int(k), dims=(1, 2)) for img, k in zip(images, turns)]), turns


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of a classifier on preprocessed images."""
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])
    return float((predictions == labels).float().mean())


def recalibrate_batchnorm(model: nn.Module, images: torch.Tensor, batch_size: int = 128) -> None:
    """Replace batch-norm running statistics by exact averages over ``images`` (the current weights').

    Mid-training running statistics lag behind weights that change fast, which makes an early
    checkpoint look untrained in eval mode; recomputing them is cheap (forward passes only).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            model(images[start:start + batch_size])
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.eval()


def _train(model: nn.Module, recipe: Recipe, images: torch.Tensor, labels: torch.Tensor,
           save_early: Callable[[nn.Module], None]) -> None:
    generator = torch.Generator().manual_seed(recipe.seed)
    steps_per_epoch = math.ceil(len(images) / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    early_step = max(1, int(round(recipe.early * total))) if recipe.early else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=total, pct_start=0.15)
    loss_fn, step = nn.CrossEntropyLoss(), 0
    for _ in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), recipe.batch_size):
            batch = images[order[start:start + recipe.batch_size]]
            if recipe.method == "rotation":
                batch, targets = _rotated(batch, generator)
            else:
                targets = labels[order[start:start + recipe.batch_size]]
            loss = loss_fn(model(batch), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step == early_step:
                save_early(model)


def training_draw(recipe: Recipe) -> tuple[str, int, int]:
    """The ``(source, per_class, seed)`` arguments of :func:`~.tasks.source_split` for the recipe's images."""
    return recipe.source or "fmnist10", max(recipe.per_class, 10), 1000 + recipe.seed


def _source_data(recipe: Recipe, held_out: bool) -> Split:
    source, per_class, seed = training_draw(recipe)
    return source_split(source, per_class, seed=seed, held_out=held_out)


def _save(model: nn.Module, recipe: Recipe, out: Path, info: dict[str, Any]) -> None:
    """Save atomically: a folder is complete (weights + config + info) or absent."""
    import timm

    model.eval()
    if recipe.method != "supervised":
        model.reset_classifier(0)  # rotation / random heads are not a source-task classifier
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        staging = Path(tmp) / out.name
        source = recipe.source if recipe.method == "supervised" else None
        labels = list(source_split(source, 1, seed=0).class_names) if source else None
        timm.models.save_for_hf(model, staging, safe_serialization=True, data_config=dict(DATA_CONFIG),
                                model_config={"pretrained_cfg": {"tag": None, "license": "mit"},
                                              **({"label_names": labels} if labels else {})})
        info = {**info, "params": sum(p.numel() for p in model.parameters())}
        (staging / MODEL_INFO).write_text(json.dumps(info, indent=1))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)


def build_recipe(recipe: Recipe, models_dir: Path, *, log=print) -> list[dict[str, Any]]:
    """Train (or find already built) the model(s) of one recipe; returns their info dicts."""
    folders = [models_dir / name for name in recipe.model_names()]
    if all((folder / MODEL_INFO).is_file() for folder in folders):
        infos = [json.loads((folder / MODEL_INFO).read_text()) for folder in folders]
        if all(info["recipe"] == asdict(recipe) and info.get("builder") == BUILDER_VERSION for info in infos):
            return infos
    started = time.perf_counter()
    num_classes = len(SOURCE_CLASSES[recipe.source]) if recipe.method == "supervised" else 4
    model = create_model(recipe.architecture, num_classes if recipe.method != "random" else 10, recipe.seed)
    held_out = _source_data(recipe, held_out=True)
    held_images, held_labels = preprocess(held_out.images), torch.as_tensor(held_out.labels)
    timm_name, family, kwargs = ARCHITECTURES[recipe.architecture]
    base = {"recipe": asdict(recipe), "builder": BUILDER_VERSION, "timm_architecture": timm_name, "family": family, "model_args": kwargs}

    def source_accuracy(m: nn.Module) -> float:
        # supervised: its own head on held-out source images; random: an untrained 10-way head (chance level)
        if recipe.method == "rotation":
            images, turns = _rotated(held_images, torch.Generator().manual_seed(0))
            return accuracy(m, images, turns)
        return accuracy(m, held_images, held_labels)

    def save(m: nn.Module, name: str, stage: str, fraction: float) -> None:
        info = {**base, "name": name, "stage": stage, "trained_fraction": fraction,
                "train_images": 0 if recipe.method == "random" else len(train.labels),
                "source_accuracy": source_accuracy(m), "seconds": time.perf_counter() - started}
        _save(m, recipe, models_dir / name, info)

    if recipe.method == "random":
        train = Split(np.zeros((0, 1, 1), np.uint8), np.zeros(0, np.int64), [])
        save(model, recipe.name, "random-init", 0.0)
    else:
        train = _source_data(recipe, held_out=False)
        images, labels = preprocess(train.images), torch.as_tensor(train.labels)

        calibration = images[:512]

        def save_early(m: nn.Module) -> None:
            import copy

            early = copy.deepcopy(m)
            recalibrate_batchnorm(early, calibration)
            save(early, f"{recipe.name}-early", "early", recipe.early)

        _train(model, recipe, images, labels, save_early)
        recalibrate_batchnorm(model, calibration)
        save(model, recipe.name, "final", 1.0)
    infos = [json.loads((folder / MODEL_INFO).read_text()) for folder in folders]
    log(f"  built {', '.join(recipe.model_names())} in {time.perf_counter() - started:.0f}s "
        f"(source accuracy {', '.join(format(i['source_accuracy'], '.2f') for i in infos)})")
    return infos

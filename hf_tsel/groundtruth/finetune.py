"""Fine-tuning ground truth: train backbone + new linear head over a hyper-parameter grid.

Grids of the seed papers:

* ``sgd`` (LEAD, PED and SFDA; LEAD Sec. 4 "Ground Truth Rank"): SGD with momentum,
  lr in {1e-1, 1e-2, 1e-3, 1e-4} x weight decay in {0, 1e-6, 1e-5, 1e-4, 1e-3}, seeds averaged.
* ``adamw`` (ITM Sec. 4.1 "Ground truth model rank"): AdamW, lr in {1e-5, 2e-5, 5e-5} x weight
  decay in {1e-2, 1e-4}, test accuracy evaluated after every epoch, the best one kept.

The model's accuracy is the best grid point's accuracy (mean over seeds). Every grid point lives
in its own folder: a finished point (``result.json``) is never recomputed and an interrupted one
resumes from its last epoch checkpoint (``last.pt``). Data order, augmentation and dropout are
re-seeded from (seed, epoch), so a resumed point ends exactly where an uninterrupted one would.
Training runs through :mod:`accelerate`, so ``accelerate launch`` spreads it over several GPUs.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..errors import UserError

TRAIN_LAYERS = ("all", "last")
SELECTIONS = ("best-epoch", "last-epoch")


@dataclass(frozen=True)
class Grid:
    """Optimizer and the learning-rate x weight-decay grid searched for every model."""

    optimizer: str
    learning_rates: tuple[float, ...]
    weight_decays: tuple[float, ...]

    def points(self) -> list[tuple[float, float]]:
        return [(lr, wd) for lr in self.learning_rates for wd in self.weight_decays]


GRIDS: dict[str, Grid] = {
    "sgd": Grid("sgd", (1e-1, 1e-2, 1e-3, 1e-4), (0.0, 1e-6, 1e-5, 1e-4, 1e-3)),
    "adamw": Grid("adamw", (1e-5, 2e-5, 5e-5), (1e-2, 1e-4)),
}


@dataclass(frozen=True)
class FinetuneConfig:
    """Training settings shared by every grid point (part of the checkpoint folder's identity)."""

    grid: Grid = GRIDS["sgd"]
    epochs: int = 10
    batch_size: int = 32
    seeds: tuple[int, ...] = (0,)
    momentum: float = 0.9
    augment: bool = True
    train_layers: str = "all"
    selection: str = "best-epoch"
    max_steps_per_epoch: int | None = None

    def __post_init__(self) -> None:
        if self.optimizer_name not in ("sgd", "adamw"):
            raise UserError(f"unknown optimizer {self.grid.optimizer!r}; use 'sgd' or 'adamw'")
        if self.train_layers not in TRAIN_LAYERS:
            raise UserError(f"train_layers must be one of {TRAIN_LAYERS}, got {self.train_layers!r}")
        if self.selection not in SELECTIONS:
            raise UserError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.epochs < 1 or self.batch_size < 1 or not self.seeds:
            raise UserError("epochs and batch size must be positive and at least one seed is needed")

    @property
    def optimizer_name(self) -> str:
        return self.grid.optimizer

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FinetuneResult:
    """Best grid point of one model: accuracy (fraction, mean over seeds) and its hyper-parameters."""

    accuracy: float
    learning_rate: float
    weight_decay: float
    points: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def hyperparameters(self) -> str:
        return f"lr={self.learning_rate:g},wd={self.weight_decay:g}"


class FeatureClassifier(nn.Module):
    """A backbone producing pooled ``[B, D]`` features followed by a new linear head."""

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(images)
        return self.head(features.flatten(1))


def last_stage_parameter_names(backbone: nn.Module) -> list[str]:
    """Names of the parameters of the backbone's last stage and everything after it.

    timm models describe their stages in ``feature_info``; the last stage starts at the first
    parameter of the last listed module. Other modules train their last child that has parameters.
    """
    names = [name for name, _ in backbone.named_parameters()]
    info = getattr(backbone, "feature_info", None)
    stage = None
    if isinstance(info, (list, tuple)) and info and isinstance(info[-1], dict) and info[-1].get("module"):
        stage = info[-1]["module"]
    elif hasattr(info, "module_name"):
        stage = info.module_name()[-1]
    if stage is None:
        children = [n for n, m in backbone.named_children() if any(True for _ in m.parameters())]
        if not children:
            raise UserError("the backbone has no parameters to fine-tune; use --train-layers all or another model")
        stage = children[-1]
    start = next((i for i, n in enumerate(names) if n == stage or n.startswith(stage + ".")), None)
    if start is None:
        raise UserError(f"cannot find the last stage {stage!r} among the backbone parameters; use --train-layers all")
    return names[start:]


def _freeze_for(model: FeatureClassifier, train_layers: str) -> None:
    trainable = set(last_stage_parameter_names(model.backbone)) if train_layers == "last" else None
    for name, parameter in model.backbone.named_parameters():
        parameter.requires_grad_(trainable is None or name in trainable)


def _train_mode(model: nn.Module) -> None:
    model.train()
    # Frozen batch-norm layers keep their pretrained running statistics.
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                p.requires_grad for p in module.parameters(recurse=False)):
            module.eval()


def augment_batch(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and random translation by up to 1/8 of the size (reflect padding)."""
    batch, _, height, width = images.shape
    flip = torch.rand(batch, generator=generator) < 0.5
    images = torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)
    pad_h, pad_w = max(1, height // 8), max(1, width // 8)
    padded = nn.functional.pad(images, (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    out = torch.empty_like(images)
    dy = torch.randint(0, 2 * pad_h + 1, (batch,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pad_w + 1, (batch,), generator=generator).tolist()
    for i in range(batch):
        out[i] = padded[i, :, dy[i]:dy[i] + height, dx[i]:dx[i] + width]
    return out


def _make_optimizer(config: FinetuneConfig, parameters: list[nn.Parameter], lr: float, wd: float):
    if config.optimizer_name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=config.momentum, weight_decay=wd)
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=wd)


def _staging_path(path: Path) -> Path:
    # One staging file per process: two runs training the same grid point (parallel benchmark processes
    # sharing a work dir) must not rename each other's half-written file away.
    return path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = _staging_path(path)
    torch.save(obj, tmp)
    tmp.replace(path)


def _evaluate(model: nn.Module, loader, accelerator) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            predictions = model(images).argmax(dim=1)
            predictions, labels = accelerator.gather_for_metrics((predictions, labels))
            correct += int((predictions == labels).sum())
            total += int(labels.numel())
    return correct / max(total, 1)


def train_grid_point(build_backbone: Callable[[], nn.Module], feature_dim: int, num_classes: int, train_set,
                     test_set, config: FinetuneConfig, lr: float, wd: float, seed: int, point_dir: Path, *,
                     accelerator=None, on_epoch_end: Callable[[dict], None] | None = None,
                     validation_set=None, num_workers: int = 0, record_curve: bool = False,
                     stop_after: int | None = None) -> dict[str, Any]:
    """Train one (lr, weight decay, seed) point, resuming from ``point_dir/last.pt`` if present.

    With a ``validation_set`` the epoch is selected on it (``best-epoch``) and the result also
    holds ``validation_accuracy``; ``accuracy`` is then the test accuracy at the selected epoch.
    ``record_curve`` evaluates the validation set after every epoch even under ``last-epoch``
    selection (the learning curve; the training itself is unchanged). ``stop_after`` trains up to
    that epoch only and keeps the checkpoint, so a later call continues the same schedule; the
    returned dict then has ``finished: False`` and is not written as the point's result.
    """
    from accelerate import Accelerator

    result_path = point_dir / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    accelerator = accelerator or Accelerator()
    point_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)  # the new head's initialisation
    model = FeatureClassifier(build_backbone(), feature_dim, num_classes)
    _freeze_for(model, config.train_layers)
    optimizer = _make_optimizer(config, [p for p in model.parameters() if p.requires_grad], lr, wd)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
    history: list[float] = []
    validation_history: list[float | None] = []
    checkpoint_path = point_dir / "last.pt"
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = list(state["history"])
        validation_history = list(state.get("validation_history", []))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    # the worker count changes only the speed, so it is an argument here, not part of the run's identity (config)
    test_loader = accelerator.prepare(torch.utils.data.DataLoader(test_set, batch_size=config.batch_size,
                                                                  num_workers=num_workers))
    validation_loader = None if validation_set is None else accelerator.prepare(
        torch.utils.data.DataLoader(validation_set, batch_size=config.batch_size, num_workers=num_workers))
    loss_fn = nn.CrossEntropyLoss()
    started = time.perf_counter()
    last_epoch = config.epochs if stop_after is None else min(config.epochs, stop_after)
    for epoch in range(len(history), last_epoch):
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        torch.manual_seed(seed * 100_003 + epoch)
        train_loader = accelerator.prepare(torch.utils.data.DataLoader(
            train_set, batch_size=config.batch_size, shuffle=True, generator=generator, drop_last=False,
            num_workers=num_workers))
        _train_mode(model)
        for step, (images, labels) in enumerate(train_loader):
            if step >= steps_per_epoch:
                break
            if config.augment:
                images = augment_batch(images, generator)
            loss = loss_fn(model(images), labels)
            if not torch.isfinite(loss):
                break  # a diverged point (e.g. lr 0.1 on a fragile model) scores what it reaches
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
        # "last-epoch" selection only needs the final evaluation; skipped epochs are recorded as None.
        evaluate = config.selection == "best-epoch" or epoch == config.epochs - 1
        history.append(_evaluate(model, test_loader, accelerator) if evaluate else None)
        if validation_loader is not None:
            validation_history.append(_evaluate(model, validation_loader, accelerator)
                                      if evaluate or record_curve else None)
        if accelerator.is_main_process:
            _atomic_save({"model": accelerator.unwrap_model(model).state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "history": history,
                          "validation_history": validation_history}, checkpoint_path)
        accelerator.wait_for_everyone()
        if on_epoch_end:
            on_epoch_end({"lr": lr, "weight_decay": wd, "seed": seed, "epoch": epoch + 1, "accuracy": history[-1]})
    if len(history) < config.epochs:  # stopped early on purpose: the checkpoint stays for the next call
        return {"lr": lr, "weight_decay": wd, "seed": seed, "finished": False, "history": history,
                "validation_history": validation_history, "seconds": time.perf_counter() - started}
    selector = validation_history if validation_loader is not None else history
    chosen = len(history) - 1
    if config.selection == "best-epoch":  # the first epoch with the best selection accuracy
        chosen = max((i for i, a in enumerate(selector) if a is not None), key=lambda i: (selector[i], -i))
    result = {"lr": lr, "weight_decay": wd, "seed": seed, "accuracy": history[chosen], "history": history,
              "seconds": time.perf_counter() - started}
    if validation_loader is not None:
        result.update(validation_accuracy=validation_history[chosen], validation_history=validation_history)
    if accelerator.is_main_process:
        result_path.write_text(json.dumps(result, indent=1))
        checkpoint_path.unlink(missing_ok=True)  # a finished point needs only its result
    return result


def point_name(lr: float, wd: float, seed: int) -> str:
    """The folder of one grid point inside a run folder."""
    return f"lr{lr:g}_wd{wd:g}_seed{seed}"


def check_run_dir(run_dir: Path, config: FinetuneConfig) -> None:
    """Create ``run_dir`` for ``config``, or refuse one that holds a run with other settings."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    wanted = json.loads(json.dumps(config.to_dict()))
    if config_path.is_file():
        existing = json.loads(config_path.read_text())
        if existing != wanted:
            raise UserError(f"{run_dir} holds a fine-tuning run with other settings ({existing}); "
                            "use another output directory or delete that one")
    else:
        config_path.write_text(json.dumps(wanted, indent=1))


def finetune(build_backbone: Callable[[], nn.Module], feature_dim: int, num_classes: int, train_set, test_set,
             config: FinetuneConfig, run_dir: str | Path, *, accelerator=None,
             on_epoch_end: Callable[[dict], None] | None = None, validation_set=None,
             num_workers: int = 0, record_curve: bool = False) -> FinetuneResult:
    """Grid-search fine-tuning of one model; returns the best grid point (accuracy averaged over seeds).

    ``build_backbone()`` must return a freshly loaded pretrained module mapping images to ``[B, D]``
    features; the datasets yield ``(image tensor, label)`` pairs already preprocessed for it. With a
    ``validation_set`` the epoch and grid point are chosen on it and the test accuracy of that choice
    is reported; without one they are chosen on the test accuracy itself (the seed papers' protocol).
    ``record_curve``: see :func:`train_grid_point`.
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, config)
    points = []
    for lr, wd in config.grid.points():
        for seed in config.seeds:
            points.append(train_grid_point(build_backbone, feature_dim, num_classes, train_set, test_set, config,
                                           lr, wd, seed, run_dir / point_name(lr, wd, seed), accelerator=accelerator,
                                           on_epoch_end=on_epoch_end, validation_set=validation_set,
                                           num_workers=num_workers, record_curve=record_curve))
    return summarise_points(points)


def summarise_points(points: Sequence[dict[str, Any]]) -> FinetuneResult:
    """Average each (lr, wd) over seeds and keep the best (on validation accuracy when the points have one);
    ties go to the first grid point."""
    by_setting: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for point in points:
        by_setting.setdefault((point["lr"], point["weight_decay"]), []).append(point)
    selector = "validation_accuracy" if all("validation_accuracy" in p for p in points) else "accuracy"
    best_key = max(by_setting, key=lambda k: sum(p[selector] for p in by_setting[k]) / len(by_setting[k]))
    best = by_setting[best_key]
    return FinetuneResult(accuracy=sum(p["accuracy"] for p in best) / len(best), learning_rate=best_key[0],
                          weight_decay=best_key[1], points=list(points),
                          seconds=sum(p.get("seconds", 0.0) for p in points))

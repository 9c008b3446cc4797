"""Frozen-feature extraction with :mod:`accelerate`: one process on CPU/GPU, or many via ``accelerate launch``.

With several processes every chunk's DataLoader is sharded across them (``split_images=True``);
features are gathered with ``gather_for_metrics`` (which drops the samples ``even_batches``
duplicates to pad the last batch) and put back in dataset order by their sample position. In a
zoo-parallel run each process instead extracts its own models over all images
(``split_images=False``), with no collective call. Work is done in chunks so that an
interrupted extraction resumes from its last checkpointed chunk.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from ..data import CorruptImageError, ImageDataset
from ..defaults import PRECISIONS
from ..errors import UserError

__all__ = ["PRECISIONS", "ExtractionResult", "effective_precision", "extract_features", "make_accelerator"]

logger = logging.getLogger(__name__)


@dataclass
class ExtractionResult:
    """Features of the decodable samples, in dataset order."""

    features: torch.Tensor  # [N, D] float32 on CPU
    positions: np.ndarray  # [N] sample positions (corrupt images are absent)
    source_logits: torch.Tensor | None
    num_corrupt: int
    data_seconds: float  # waiting for decoded + preprocessed batches
    forward_seconds: float
    chunks_reused: int = 0


class _TransformedImages(torch.utils.data.Dataset):
    """Sample positions -> (preprocessed image, position, decoded ok); picklable for DataLoader workers."""

    def __init__(self, data: ImageDataset, transform: Callable[[Image.Image], torch.Tensor], positions: np.ndarray):
        self.data, self.transform, self.positions = data, transform, positions
        self.placeholder = torch.zeros_like(transform(Image.new("RGB", (64, 64))))

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, bool]:
        position = int(self.positions[i])
        try:
            return self.transform(self.data.load_image(position)), position, True
        except CorruptImageError as exc:
            logger.info("skipping an unreadable image (%s)", exc)  # the run warns once with the count
            return self.placeholder, position, False


def make_accelerator(device: str | None = None, precision: str = "auto") -> Any:
    """An :class:`accelerate.Accelerator` for inference; ``precision="auto"`` uses bf16 (else fp16) on CUDA.

    fp16 autocast does not exist on CPU (accelerate would silently run fp32 while the run reports
    fp16), so it is refused there; :func:`effective_precision` names what the accelerator runs.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}", fix=f"use one of {', '.join(PRECISIONS)}.")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is visible; drop --device or use --device cpu")
    cpu = device == "cpu" or (device is None and not torch.cuda.is_available())
    if cpu and precision == "fp16":
        raise UserError("--precision fp16 needs a CUDA device: on the CPU there is no fp16 autocast",
                        fix="use --precision bf16 or fp32 on the CPU (or auto, which is fp32 there).")
    if precision == "auto":
        precision = "no" if cpu else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    if AcceleratorState._shared_state and PartialState().num_processes == 1:
        # accelerate keeps one state per interpreter and refuses (or ignores) new settings; a single
        # process may safely start afresh, e.g. a second hf_tsel.rank call with another device or precision.
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(cpu=cpu, mixed_precision="no" if precision == "fp32" else precision)


def effective_precision(accelerator: Any) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"``: the precision the forward passes of ``accelerator`` run in."""
    return {"no": "fp32"}.get(str(accelerator.mixed_precision), str(accelerator.mixed_precision))


class _AdaptiveBatch:
    """Runs ``embed`` in sub-batches, halving their size whenever CUDA runs out of memory."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, embed: Callable, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features, logits, start = [], [], 0
        while start < len(batch):
            try:
                f, l = embed(batch[start:start + self.size])
            except torch.cuda.OutOfMemoryError:
                if self.size == 1:
                    raise
                self.size //= 2
                logger.warning("CUDA out of memory; continuing with batch size %d", self.size)
                torch.cuda.empty_cache()
                continue
            features.append(f.float())
            logits.append(None if l is None else l.float())
            start += len(f)
        return torch.cat(features), None if logits[0] is None else torch.cat(logits)


def extract_features(backbone: Any, data: ImageDataset, *, accelerator: Any = None, batch_size: int = 64,
                     num_workers: int = 0, chunk_size: int = 512,
                     done_chunks: dict[int, tuple[torch.Tensor, np.ndarray, torch.Tensor | None]] | None = None,
                     on_chunk: Callable[[int, torch.Tensor, np.ndarray, torch.Tensor | None], None] | None = None,
                     on_batch: Callable[[int], None] | None = None, split_images: bool = True) -> ExtractionResult:
    """Pooled features (and source logits) of every sample of ``data``.

    Args:
        backbone: a :class:`hf_tsel.backbones.Backbone` already on ``accelerator.device``.
        done_chunks: chunks finished by an earlier, interrupted run (skipped).
        on_chunk: called after each newly finished chunk (to checkpoint it), on the main process
            only when the images are split across processes.
        on_batch: called with the number of samples each step finished (progress bars).
        split_images: share each chunk's images among the launched processes; False extracts all
            images in this process alone.
    """
    accelerator = accelerator or make_accelerator()
    done_chunks = dict(done_chunks or {})
    reused = len(done_chunks)
    transform = getattr(backbone, "preprocessor", None) or backbone.transform
    all_positions = np.arange(data.num_samples)
    runner = _AdaptiveBatch(batch_size)
    data_seconds = forward_seconds = 0.0
    num_chunks = max(1, -(-len(all_positions) // chunk_size))
    for index in range(num_chunks):
        if index in done_chunks:
            if on_batch:
                on_batch(len(done_chunks[index][1]))
            continue
        chunk = all_positions[index * chunk_size:(index + 1) * chunk_size]
        loader = torch.utils.data.DataLoader(_TransformedImages(data, transform, chunk), batch_size=batch_size,
                                             shuffle=False, num_workers=num_workers)
        if split_images:
            loader = accelerator.prepare_data_loader(loader)
        share = accelerator.num_processes if split_images else 1
        parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        tick = time.perf_counter()
        for images, positions, ok in loader:
            start = time.perf_counter()
            data_seconds += start - tick
            with torch.no_grad(), accelerator.autocast():
                features, logits = runner(backbone.embed, images.to(accelerator.device))
            # uint8, not bool: every collective backend can gather it
            outputs = ((features, positions.to(features.device), ok.to(features.device, torch.uint8))
                       + ((logits,) if logits is not None else ()))
            gathered = accelerator.gather_for_metrics(outputs) if split_images else outputs
            tick = time.perf_counter()
            forward_seconds += tick - start
            parts.append(tuple(t.cpu() for t in gathered) + ((None,) if logits is None else ()))
            if on_batch:
                on_batch(len(gathered[0]) // share)
        features = torch.cat([p[0] for p in parts])
        positions = torch.cat([p[1] for p in parts]).numpy()
        ok = torch.cat([p[2] for p in parts]).numpy().astype(bool)
        logits = torch.cat([p[3] for p in parts]) if parts[0][3] is not None else None
        # Sorting by position restores dataset order; unique drops any padding duplicate left over.
        positions, first = np.unique(positions, return_index=True)
        keep = first[ok[first]]
        result = (features[keep], positions[ok[first]], None if logits is None else logits[keep])
        done_chunks[index] = result
        if on_chunk and (accelerator.is_main_process or not split_images):
            on_chunk(index, *result)
    ordered = [done_chunks[i] for i in range(num_chunks)]
    positions = np.concatenate([c[1] for c in ordered])
    logits = [c[2] for c in ordered]
    return ExtractionResult(features=torch.cat([c[0] for c in ordered]), positions=positions,
                            source_logits=None if any(l is None for l in logits) else torch.cat(logits),
                            num_corrupt=data.num_samples - len(positions), data_seconds=data_seconds,
                            forward_seconds=forward_seconds, chunks_reused=reused)

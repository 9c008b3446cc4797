"""What a candidate will cost on this machine, before it is downloaded: the funnel's estimates.

Extraction of one model on ``N`` images is estimated as

    seconds = build + rate * params * input_size**2 * N + 4 * params / LOAD_BYTES_PER_SECOND

where ``rate`` (seconds per parameter, pixel and image) and ``build`` (seconds to construct a model) are
measured by :func:`calibrate_forward` with one short forward pass of a reference model (timm's
``resnet18``, random weights, nothing downloaded) on the run's device: a network's multiply-adds grow
with its parameters times the pixels it sees, for CNNs (each weight is applied at every position) and
ViTs (every weight at every token) alike. Download and loading are assumed to run at 50 MB/s until the
run has measured a model; then every estimate is scaled by the ratio of measured to estimated seconds
(:class:`hf_tsel.funnel.Funnel`). Scoring is estimated by timing the run's metrics on synthetic
features of the sample's size (:func:`calibrate_scoring`).

Example:
    >>> rate = ForwardRate(seconds_per_unit=1e-12, build_seconds=0.1)
    >>> round(rate.extract_seconds(params=1_000_000, input_size=224, num_samples=100), 2)
    5.2
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .metrics import InputKind, get_metric, score

__all__ = ["BOOTSTRAP_SHARE", "DEFAULT_INPUT_SIZE", "LOAD_BYTES_PER_SECOND", "ForwardRate", "calibrate_forward",
           "calibrate_scoring", "input_size_of"]

REFERENCE_ARCH = "resnet18"
REFERENCE_PARAMS = 11_689_512  # resnet18's parameters: the cost of a candidate whose size is unknown
REFERENCE_IMAGES = 4
DEFAULT_INPUT_SIZE = 224
LOAD_BYTES_PER_SECOND = 50e6  # assumed until the run has measured a model
BYTES_PER_PARAM = 4  # float32 safetensors
# The consensus bootstrap (200 resamples) took 1.13x the metric stage in benchmarks/results/recommend_speed.md.
BOOTSTRAP_SHARE = 1.13
_SCORING_WIDTH = 768  # features of the synthetic scoring probe (a ViT-B width)
_SCORING_ROWS = (250, 500)


@dataclass(frozen=True)
class ForwardRate:
    """Measured on this device: seconds per parameter x pixel x image, and seconds to construct a model."""

    seconds_per_unit: float
    build_seconds: float

    def extract_seconds(self, *, params: int, input_size: int, num_samples: int) -> float:
        """Estimated seconds to download, load and run one model over ``num_samples`` images."""
        forward = self.seconds_per_unit * params * input_size ** 2 * num_samples
        return self.build_seconds + forward + BYTES_PER_PARAM * params / LOAD_BYTES_PER_SECOND


@functools.lru_cache(maxsize=4)
def calibrate_forward(device: str) -> ForwardRate:
    """Time one forward pass of a randomly initialised ``resnet18`` on ``REFERENCE_IMAGES`` 224-px images (once per
    process and device; about a second on a laptop CPU)."""
    import timm
    import torch

    tick = time.perf_counter()
    model = timm.create_model(REFERENCE_ARCH, pretrained=False).eval().to(device)
    build = time.perf_counter() - tick
    params = sum(p.numel() for p in model.parameters())
    images = torch.rand(REFERENCE_IMAGES, 3, DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE, device=device)
    with torch.inference_mode():
        model(images[:1])  # warm-up: first-call allocations and kernel selection
        _synchronize(device)
        tick = time.perf_counter()
        model(images)
        _synchronize(device)
        seconds = time.perf_counter() - tick
    return ForwardRate(seconds / (params * DEFAULT_INPUT_SIZE ** 2 * REFERENCE_IMAGES), build)


def _synchronize(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def calibrate_scoring(metric_names: Sequence[str], labels: np.ndarray, *, n_boot: int, seed: int = 0) -> float:
    """Estimated seconds to score one model with ``metric_names`` on ``len(labels)`` samples (bootstrap included).

    The per-model metrics are timed on synthetic features at two sample sizes (at most 250 and 500 rows of the
    run's own labels), and the time is extrapolated to the full sample with the measured growth exponent
    (between 1 and 2: k-NN is quadratic, LogME linear). Metrics that read no features (priors, source
    heads, reference sets) cost little and are not timed.
    """
    names = [n for n in metric_names if get_metric(n).consumes is InputKind.FEATURES]
    if not names or len(labels) < 4:
        return 0.0
    rng = np.random.default_rng(seed)
    sizes = sorted({min(len(labels), rows) for rows in _SCORING_ROWS})
    timings = []
    for rows in sizes:
        keep = np.sort(rng.choice(len(labels), size=rows, replace=False))
        features = rng.standard_normal((rows, _SCORING_WIDTH)).astype(np.float32)
        tick = time.perf_counter()
        for name in names:
            try:
                score(name, features, labels[keep], seed=seed)
            except Exception:  # noqa: BLE001 (an estimate: a metric that refuses random features costs nothing here)
                continue
        timings.append(time.perf_counter() - tick)
    exponent = 1.0
    if len(sizes) == 2 and timings[0] > 0:
        exponent = min(2.0, max(1.0, math.log(max(timings[1], 1e-9) / timings[0]) / math.log(sizes[1] / sizes[0])))
    per_model = timings[-1] * (len(labels) / sizes[-1]) ** exponent
    return per_model * (1.0 + (BOOTSTRAP_SHARE if n_boot > 0 else 0.0))


def input_size_of(entry: Any) -> int:
    """The side of the images the model sees: the entry's preprocessing, else its metadata, else 224."""
    size = (entry.preprocessing or {}).get("input_size") or (entry.metadata or {}).get("input_size")
    if isinstance(size, (list, tuple)):
        size = size[-1]
    return int(size) if isinstance(size, (int, float)) and size > 0 else DEFAULT_INPUT_SIZE

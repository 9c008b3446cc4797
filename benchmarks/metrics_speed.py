"""Wall time and peak memory of every registered transferability metric on synthetic features.

Each metric runs in a fresh Python subprocess, so the peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) belongs to that metric alone; the table also
shows how much of it the metric added on top of the generated data. Besides wall time it
reports the process CPU time summed over threads, which is less sensitive to other load on a
shared machine (uncontended, wall ≈ CPU / threads for the BLAS/LAPACK-bound metrics).

Synthetic features (``synthetic_features``) imitate pooled CNN/ViT features: every class has a
prototype in a 128-dimensional latent space; a sample is its prototype plus unit Gaussian noise;
the latent coordinates are scaled by ``r**-0.5`` (a decaying spectrum, like real features whose
variance concentrates in a few directions), mapped linearly to D dimensions, shifted by a
non-negative per-dimension offset, given a little isotropic noise and clipped at 0 (post-ReLU
features; ~10 % of the entries end up exactly 0). ``source_probs`` are the softmax of a random
1000-way linear head on the z-scored features. Model-set metrics are timed on a zoo of
``--zoo-size`` models (latent separations 0.5, 1, 1.5, ...) and reported per model.

Every row also gives its wall time as a multiple of LogME's in the same run (the baseline named
in issue 21; timings on a shared machine are only comparable within one run), and the header names
the CPU, torch and the load average before and after the run. ``prior:*`` metrics are not timed:
they read published model metadata, not features.

Usage:
    python benchmarks/metrics_speed.py --config small --metrics logme,leep,nce
    python benchmarks/metrics_speed.py --config large --output benchmarks/results/metrics_speed_large.md
    python benchmarks/metrics_speed.py --config all            # every metric, both configs (slow)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time

import torch

CONFIGS = {"small": (10_000, 2048, 100), "large": (50_000, 768, 100)}
# ITM (issue 3) is specified at a smaller size: the small config times it there; large times it at full size.
ITM_SMALL_CONFIG = (5000, 768, 100)
PED_COMPOSITIONS = ("ped+logme", "ped+sfda", "ped+nleep")
# Opt-in variants timed besides the defaults, written ``metric[parameter=value]``.
VARIANTS = ("persistence_ratio[mst=approximate]", "persistence_ratio_target[mst=approximate]")
BASELINE = "logme"
# Not timed: they read published model metadata, not features.
METADATA_PREFIX = "prior:"
LATENT_DIM = 128
N_SOURCE_CLASSES = 1000


def synthetic_features(n_samples: int, dim: int, n_classes: int, *, separation: float = 1.0,
                       seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded ``([N, D] float32 features, [N] int64 labels)`` with low-rank class structure (see module doc)."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n_samples) % n_classes)[torch.randperm(n_samples, generator=generator)]
    prototypes = torch.randn(n_classes, LATENT_DIM, generator=generator)
    latent = separation * prototypes[labels] + torch.randn(n_samples, LATENT_DIM, generator=generator)
    spectrum = torch.arange(1, LATENT_DIM + 1, dtype=torch.float32) ** -0.5
    mixing = torch.randn(LATENT_DIM, dim, generator=generator) / math.sqrt(LATENT_DIM)
    offset = torch.rand(dim, generator=generator)
    features = (latent * spectrum) @ mixing + offset + 0.05 * torch.randn(n_samples, dim, generator=generator)
    return features.clamp_min(0), labels


def synthetic_source_probs(features: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Softmax of a random ``N_SOURCE_CLASSES``-way linear head on the z-scored features."""
    generator = torch.Generator().manual_seed(seed + 1)
    head = torch.randn(features.shape[1], N_SOURCE_CLASSES, generator=generator) / math.sqrt(features.shape[1])
    standardised = (features - features.mean(0)) / features.std(0).clamp_min(1e-3)
    return torch.softmax(3 * standardised @ head, dim=1)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def parse_variant(metric: str) -> tuple[str, dict[str, str]]:
    """``"name[key=value,...]"`` -> ``("name", {"key": "value"})``; a plain name has no parameters."""
    name, _, rest = metric.partition("[")
    pairs = [item.split("=", 1) for item in rest.rstrip("]").split(",") if item]
    return name, {key: value for key, value in pairs}


def run_one(metric: str, n_samples: int, dim: int, n_classes: int, zoo_size: int) -> dict:
    """Time ``metric`` (a registry name, optionally ``name[key=value]``) once in this process (a fresh subprocess)."""
    from hf_tsel.metrics import get_metric, score, score_zoo

    name, params = parse_variant(metric)
    spec = get_metric(name)
    if spec.consumes == "model_set":
        zoo = {f"m{i}": synthetic_features(n_samples, dim, n_classes, separation=0.5 * (i + 1), seed=i)[0]
               for i in range(zoo_size)}
        labels = synthetic_features(n_samples, dim, n_classes, seed=0)[1]
        baseline = _peak_rss_mib()
        start, cpu_start = time.perf_counter(), time.process_time()
        values = score_zoo(name, zoo, labels, **params)
        seconds = (time.perf_counter() - start) / zoo_size
        cpu_seconds = (time.process_time() - cpu_start) / zoo_size
        value = values["m0"]
    else:
        features, labels = synthetic_features(n_samples, dim, n_classes)
        probs = synthetic_source_probs(features) if "source_probs" in spec.consumes else None
        baseline = _peak_rss_mib()
        start, cpu_start = time.perf_counter(), time.process_time()
        value = score(name, features, labels, source_probs=probs, **params)
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
    peak = _peak_rss_mib()
    return {"metric": metric, "config": f"{n_samples}x{dim}x{n_classes}", "seconds": seconds, "cpu_seconds": cpu_seconds,
            "threads": torch.get_num_threads(), "peak_rss_mib": peak,
            "added_rss_mib": peak - baseline, "value": value, "per_model": spec.consumes == "model_set"}


def _subprocess(metric: str, config: tuple[int, int, int], zoo_size: int, threads: int, timeout: float) -> dict:
    n_samples, dim, n_classes = config
    command = [sys.executable, __file__, "--worker", metric, "--shape", f"{n_samples},{dim},{n_classes}",
               "--zoo-size", str(zoo_size), "--threads", str(threads)]
    row = {"metric": metric, "config": f"{n_samples}x{dim}x{n_classes}"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**row, "error": f"timeout after {timeout:.0f} s"}
    if done.returncode != 0:
        return {**row, "error": (done.stderr.strip().splitlines() or ["failed"])[-1][:120]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def default_metrics() -> list[str]:
    """Every registered metric, a few PED compositions (to show PED's overhead) and the opt-in ``VARIANTS``."""
    from hf_tsel.metrics import get_metric, list_metrics

    names = [spec.name for spec in list_metrics(include_transforms=False) if not spec.name.startswith(METADATA_PREFIX)]
    for name in PED_COMPOSITIONS:
        try:
            get_metric(name)
            names.append(name)
        except ValueError:
            pass
    return names + list(VARIANTS)


def machine_line() -> str:
    """CPU model, cores, torch version and the 1-minute load average now (Linux ``/proc``; best effort)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} logical cores, torch {torch.__version__}, "
            f"load average {os.getloadavg()[0]:.2f}")


def _baseline_seconds(rows: list[dict], shape: str) -> float | None:
    return next((r["seconds"] for r in rows if r["metric"] == BASELINE and r["config"] == shape and "error" not in r),
                None)


def markdown_table(rows: list[dict]) -> str:
    lines = [f"| metric | N×D×C | threads | wall s | × {BASELINE} (wall) | CPU s (all threads) | peak RSS (MiB) | "
             "added by metric (MiB) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['metric']} | {row['config']} | | {row['error']} | | | | |")
            continue
        per_model = " per model" if row["per_model"] else ""
        baseline = _baseline_seconds(rows, row["config"])
        ratio = f"{row['seconds'] / baseline:.2f}" if baseline else ""
        lines.append(f"| {row['metric']} | {row['config']} | {row['threads']} | {row['seconds']:.2f}{per_model} | "
                     f"{ratio} | {row['cpu_seconds']:.2f}{per_model} | {row['peak_rss_mib']:.0f} | "
                     f"{row['added_rss_mib']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=[*CONFIGS, "all"], default="small",
                        help="small = 10000x2048x100, large = 50000x768x100 (N x D x C)")
    parser.add_argument("--metrics", default="", help="comma-separated metric names (default: all registered + "
                        f"{', '.join(PED_COMPOSITIONS)})")
    parser.add_argument("--zoo-size", type=int, default=3, help="models in the zoo for model-set metrics")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a metric is reported as timed out")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads per metric (default: torch's choice, all cores)")
    parser.add_argument("--output", help="also write the table, with the machine line, to this markdown file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        if args.threads:
            torch.set_num_threads(args.threads)
        n_samples, dim, n_classes = (int(v) for v in args.shape.split(","))
        print(json.dumps(run_one(args.worker, n_samples, dim, n_classes, args.zoo_size)))
        return 0
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] or default_metrics()
    if BASELINE not in metrics:
        metrics.insert(0, BASELINE)
    configs = list(CONFIGS) if args.config == "all" else [args.config]
    before = machine_line()
    rows = []
    for metric in metrics:
        shapes = [ITM_SMALL_CONFIG if metric == "itm" and c == "small" else CONFIGS[c] for c in configs]
        for shape in shapes:
            row = _subprocess(metric, shape, args.zoo_size, args.threads, args.timeout)
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    text = f"{before}; after the run: load average {os.getloadavg()[0]:.2f}\n\n{markdown_table(rows)}"
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(f"`python benchmarks/metrics_speed.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
                      f"{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

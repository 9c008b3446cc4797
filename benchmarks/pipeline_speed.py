"""Pipeline speed of the offline zoo on this machine: images/s per model, where the time goes, cached re-rank.

Runs ``hf_tsel.rank`` twice on a packaged dataset (as ``hf-tsel demo`` does) with a fresh feature
cache: the first run extracts every model, the second re-ranks from the cache without loading any
model. In the same run it measures, per model, a bare ``embed(x)`` loop over pre-made tensors of
the pipeline's input size and batch size (the efficiency ratio: whole extraction images/s over bare
forward images/s), and the wall time of ``hf-tsel extract`` over the whole zoo with 1 process
against zoo-parallel with 2 processes (torchrun, CPU, the same cores split between them).
Prints Markdown tables (and writes JSON with ``--json``).

Usage:
    python benchmarks/pipeline_speed.py [--dataset digits|fashion-mnist] [--samples-per-class 10] [--metrics ...]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import hf_tsel
from hf_tsel.commands.demo import demo_dataset
from hf_tsel.defaults import DEFAULT_METRICS
from hf_tsel.offline.models import prepare_offline_zoo

ZOO = "offline"


class ExtractionClock:
    """``on_event`` hook: wall time from each model's "extracting" event to its "extracted" event."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def __call__(self, event) -> None:
        if event.kind == "extracting":
            self.started[event.model] = time.perf_counter()
        elif event.kind == "extracted":
            self.seconds[event.model] = time.perf_counter() - self.started[event.model]


def bare_forward_rate(entry, data, num_images: int, batch_size: int) -> tuple[list[int], float]:
    """Input shape and images/s of ``backbone.embed`` alone on pre-made random tensors of the pipeline's input shape."""
    from hf_tsel.backbones import load_backbone

    backbone = load_backbone(entry, device="cpu")
    transform = getattr(backbone, "preprocessor", None) or backbone.transform
    shape = transform(data.load_image(0)).shape
    generator = torch.Generator().manual_seed(0)
    batches = [torch.rand(min(batch_size, num_images - i), *shape, generator=generator)
               for i in range(0, num_images, batch_size)]
    start = time.perf_counter()
    with torch.no_grad():
        for batch in batches:
            backbone.embed(batch)
    return list(shape), num_images / (time.perf_counter() - start)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def extract_wall_seconds(dataset_dir: Path, samples_per_class: int, batch_size: int, num_workers: int, processes: int,
                         cache_dir: Path) -> float:
    """Wall time of ``hf-tsel extract`` over the zoo with ``processes`` CPU processes sharing this machine's cores."""
    cores = len(os.sched_getaffinity(0))
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // processes))}
    command = [sys.executable, "-m", "hf_tsel.cli", "extract", str(dataset_dir), "--zoo", ZOO, "--samples-per-class",
               str(samples_per_class), "--batch-size", str(batch_size), "--num-workers", str(num_workers),
               "--cache-dir", str(cache_dir), "-q"]
    if processes > 1:
        command[1:3] = ["-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_addr",
                        "127.0.0.1", "--master_port", str(_free_port()), "-m", "hf_tsel.cli"]
        command += ["--parallel", "zoo"]
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def measure(dataset: str, samples_per_class: int, metrics: list[str], batch_size: int, num_workers: int,
            cache_dir: Path) -> dict:
    from hf_tsel.data import load_image_dataset
    from hf_tsel.extraction import resolve_models

    prepare_offline_zoo()  # convert the packaged weights once, outside the timed runs
    data = demo_dataset(dataset, samples_per_class=samples_per_class)
    options = dict(zoo=ZOO, metrics=metrics, cache_dir=cache_dir / "rank", batch_size=batch_size, num_workers=num_workers)
    clock = ExtractionClock()
    start = time.perf_counter()
    first = hf_tsel.rank(data, on_event=clock, **options)
    first_seconds = time.perf_counter() - start
    start = time.perf_counter()
    cached = hf_tsel.rank(data, **options)
    cached_seconds = time.perf_counter() - start
    assert {m["status"] for m in cached.attrs["run"]["models"]} == {"cached"}, "the re-run should load no model"
    metric_seconds = first.groupby("model")["seconds"].sum()
    entries = {e.name: e for e in resolve_models(ZOO)}
    sample = load_image_dataset(data)
    rows = []
    for model in first.attrs["run"]["models"]:
        images = first.attrs["run"]["num_samples"]
        pipeline = model["data_seconds"] + model["forward_seconds"] + float(metric_seconds[model["name"]])
        extraction_rate = images / clock.seconds[model["name"]]
        shape, bare_rate = bare_forward_rate(entries[model["name"]], sample, images, batch_size)
        rows.append({"model": model["name"], "images": images, "input": shape,
                     "extraction_images_per_second": extraction_rate, "bare_images_per_second": bare_rate,
                     "efficiency": extraction_rate / bare_rate,
                     "images_per_second": images / max(1e-9, model["data_seconds"] + model["forward_seconds"]),
                     "load_seconds": model["extraction_seconds"] - model["data_seconds"] - model["forward_seconds"],
                     "decode_share": model["data_seconds"] / pipeline, "forward_share": model["forward_seconds"] / pipeline,
                     "metrics_share": float(metric_seconds[model["name"]]) / pipeline})
    dataset_dir = cache_dir / "dataset"
    data_for_cli = demo_dataset(dataset, samples_per_class=samples_per_class)
    data_for_cli.save_to_disk(str(dataset_dir))
    walls = {n: extract_wall_seconds(dataset_dir, samples_per_class, batch_size, num_workers, n, cache_dir / f"zoo-{n}")
             for n in (1, 2)}
    return {"hardware": first.attrs["run"]["hardware"], "dataset": first.attrs["run"]["dataset"], "metrics": metrics,
            "batch_size": batch_size, "num_workers": num_workers, "models": rows, "zoo_wall_seconds": walls,
            "zoo_parallel_speedup": walls[1] / walls[2], "first_run_seconds": first_seconds, "cached_rerun_seconds": cached_seconds,
            "speedup": first_seconds / cached_seconds, "stage_seconds_first": first.attrs["run"]["stage_seconds"],
            "stage_seconds_cached": cached.attrs["run"]["stage_seconds"]}


def markdown(result: dict) -> str:
    lines = [f"{result['dataset']}, {result['models'][0]['images']} images, metrics {', '.join(result['metrics'])}, "
             f"{result['hardware']}, {result['num_workers']} DataLoader worker(s)", "",
             "| model | images/s | model load s | decode % | forward % | metrics % |", "|---|---:|---:|---:|---:|---:|"]
    for row in result["models"]:
        lines.append(f"| {row['model']} | {row['images_per_second']:.1f} | {row['load_seconds']:.1f} | "
                     f"{100 * row['decode_share']:.0f} | {100 * row['forward_share']:.0f} | {100 * row['metrics_share']:.0f} |")
    lines += ["", f"first run {result['first_run_seconds']:.1f} s; cached re-rank {result['cached_rerun_seconds']:.1f} s "
                  f"(x{result['speedup']:.1f} faster, no model loaded)", "",
              f"| model | input | whole extraction images/s | bare embed(x) images/s (batch {result['batch_size']}) "
              "| ratio |", "|---|---|---:|---:|---:|"]
    for row in result["models"]:
        lines.append(f"| {row['model']} | {'x'.join(map(str, row['input']))} | {row['extraction_images_per_second']:.1f} "
                     f"| {row['bare_images_per_second']:.1f} | {row['efficiency']:.2f} |")
    walls = result["zoo_wall_seconds"]
    lines += ["", f"`hf-tsel extract` of the whole zoo: 1 process {walls[1]:.1f} s, zoo-parallel 2 processes "
                  f"{walls[2]:.1f} s (x{result['zoo_parallel_speedup']:.2f}; same cores, split between the processes)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=["digits", "fashion-mnist"], default="digits")
    parser.add_argument("--samples-per-class", type=int, default=10)
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers decoding images (default 0)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache_dir:
        result = measure(args.dataset, args.samples_per_class, args.metrics.split(","), args.batch_size,
                         args.num_workers, Path(cache_dir))
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

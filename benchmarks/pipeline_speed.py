"""Pipeline speed of the offline zoo on this machine: images/s per model, where the time goes, cached re-rank.

Runs ``hf_tsel.rank`` twice on a packaged dataset (as ``hf-tsel demo`` does) with a fresh feature
cache: the first run extracts every model, the second re-ranks from the cache without loading any
model. Prints a Markdown table (and writes JSON with ``--json``).

Usage:
    python benchmarks/pipeline_speed.py [--dataset digits|fashion-mnist] [--samples-per-class 10] [--metrics ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import hf_tsel
from hf_tsel.commands.demo import demo_dataset
from hf_tsel.defaults import DEFAULT_METRICS
from hf_tsel.offline.models import prepare_offline_zoo


def measure(dataset: str, samples_per_class: int, metrics: list[str], batch_size: int, cache_dir: Path) -> dict:
    prepare_offline_zoo()  # convert the packaged weights once, outside the timed runs
    data = demo_dataset(dataset, samples_per_class=samples_per_class)
    options = dict(zoo="offline", metrics=metrics, cache_dir=cache_dir, batch_size=batch_size)
    start = time.perf_counter()
    first = hf_tsel.rank(data, **options)
    first_seconds = time.perf_counter() - start
    start = time.perf_counter()
    cached = hf_tsel.rank(data, **options)
    cached_seconds = time.perf_counter() - start
    assert {m["status"] for m in cached.attrs["run"]["models"]} == {"cached"}, "the re-run should load no model"
    metric_seconds = first.groupby("model")["seconds"].sum()
    rows = []
    for model in first.attrs["run"]["models"]:
        images = first.attrs["run"]["num_samples"]
        pipeline = model["data_seconds"] + model["forward_seconds"] + float(metric_seconds[model["name"]])
        rows.append({"model": model["name"], "images": images,
                     "images_per_second": images / max(1e-9, model["data_seconds"] + model["forward_seconds"]),
                     "load_seconds": model["extraction_seconds"] - model["data_seconds"] - model["forward_seconds"],
                     "decode_share": model["data_seconds"] / pipeline, "forward_share": model["forward_seconds"] / pipeline,
                     "metrics_share": float(metric_seconds[model["name"]]) / pipeline})
    return {"hardware": first.attrs["run"]["hardware"], "dataset": first.attrs["run"]["dataset"], "metrics": metrics,
            "models": rows, "first_run_seconds": first_seconds, "cached_rerun_seconds": cached_seconds,
            "speedup": first_seconds / cached_seconds, "stage_seconds_first": first.attrs["run"]["stage_seconds"],
            "stage_seconds_cached": cached.attrs["run"]["stage_seconds"]}


def markdown(result: dict) -> str:
    lines = [f"{result['dataset']}, {result['models'][0]['images']} images, metrics {', '.join(result['metrics'])}, "
             f"{result['hardware']}", "",
             "| model | images/s | model load s | decode % | forward % | metrics % |", "|---|---:|---:|---:|---:|---:|"]
    for row in result["models"]:
        lines.append(f"| {row['model']} | {row['images_per_second']:.1f} | {row['load_seconds']:.1f} | "
                     f"{100 * row['decode_share']:.0f} | {100 * row['forward_share']:.0f} | {100 * row['metrics_share']:.0f} |")
    lines += ["", f"first run {result['first_run_seconds']:.1f} s; cached re-rank {result['cached_rerun_seconds']:.1f} s "
                  f"(x{result['speedup']:.1f} faster, no model loaded)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=["digits", "fashion-mnist"], default="digits")
    parser.add_argument("--samples-per-class", type=int, default=10)
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache_dir:
        result = measure(args.dataset, args.samples_per_class, args.metrics.split(","), args.batch_size, Path(cache_dir))
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

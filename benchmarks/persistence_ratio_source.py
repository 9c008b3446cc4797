"""Source-mode persistence ratio on the zoo benchmark: sensitivity to the reference sample, and why it fails here.

Needs the zoo benchmark's models and ground truth (``hf-tsel benchmark zoo`` first). For the
models pre-trained on Fashion-MNIST classes (their image pool leaves room for every sample size)
it draws source reference sets of 20-200 images per class (never an image any model trained on),
extracts each model's reference features through the product path
(:func:`hf_tsel.extraction.attach_source_references`, cached under the benchmark's work dir) and
reports, against both ground truths of ``benchmarks/results/zoo_ground_truth.csv``:

1. mean weighted Kendall tau of ``persistence_ratio`` over the 8 tasks, per reference size;
2. how many of the k - 1 longest single-linkage merges (the MST edges that define ``H_sep``) only
   cut off 1-2 points, i.e. measure outliers rather than gaps between classes;
3. Kendall tau between the score and the feature width D;
4. for contrast, a class-centroid separation ratio on the same embeddings (mean distance between
   class means / mean distance of a point to its class mean). It is *not* the poster's score, only
   a check that the reference embeddings carry a usable class-structure signal.

Writes ``benchmarks/results/zoo_persistence_ratio.md``.

    python benchmarks/persistence_ratio_source.py
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist
from scipy.stats import kendalltau

from hf_tsel.evaluation import weighted_kendall_tau
from hf_tsel.groundtruth.table import read_ground_truth
from hf_tsel.extraction import ModelOutcome, attach_source_references
from hf_tsel.features import CachedFeatures
from hf_tsel.metrics import score
from hf_tsel.offline.benchmark import _markdown as markdown_table
from hf_tsel.offline.zoo.benchmark import default_work_dir, write_source_reference
from hf_tsel.offline.zoo.models import RECIPES, training_draw
from hf_tsel.zoo import load_zoo

RESULTS = Path(__file__).parent / "results"
SIZES = (20, 50, 100, 200)  # reference images per class
DEFAULT_SIZE = 50  # what `hf-tsel benchmark zoo` uses for the 10-class sources (500 images per source)


def reference_folder(work_dir: Path, source: str, per_class: int) -> Path:
    """A saved reference set of ``per_class`` images per class (built once, reused on re-runs)."""
    folder = work_dir / "source-reference-sweep" / f"{source}-{per_class}"
    if not (folder / "dataset_dict.json").is_file():
        draws = [training_draw(r) for r in RECIPES["full"] if r.method != "random"]
        write_source_reference(source, per_class, draws, folder)
    return folder


def reference_features(entries: list, work_dir: Path, per_class: int) -> dict[str, tuple[torch.Tensor, np.ndarray]]:
    """Each model's embeddings of its source reference sample of ``per_class`` images per class."""
    outcomes = []
    for entry in entries:
        source = Path(entry.source_reference["dataset"]).name
        reference = {**entry.source_reference, "dataset": str(reference_folder(work_dir, source, per_class))}
        placeholder = CachedFeatures(torch.zeros(1, 1), np.zeros(1, dtype=np.int64))  # target features: not needed
        outcomes.append(ModelOutcome(dataclasses.replace(entry, source_reference=reference), "cached", features=placeholder))
    outcomes = attach_source_references(outcomes, cache_dir=work_dir / "features")
    return {o.entry.name: (o.reference.features.double(), o.reference.labels) for o in outcomes if o.reference}


def mean_weighted_tau(values: dict[str, float], ground_truth: pd.DataFrame) -> dict[str, float]:
    """Mean over tasks of the weighted tau between a per-model prior and each task's accuracies, per protocol."""
    taus: dict[str, list[float]] = {}
    for (_, protocol), group in ground_truth.groupby(["dataset", "protocol"]):
        group = group[group["model"].isin(values)]
        taus.setdefault(protocol, []).append(weighted_kendall_tau([values[m] for m in group["model"]],
                                                                  group["accuracy"].to_numpy()))
    return {protocol: float(np.mean(t)) for protocol, t in taus.items()}


def outlier_splits(features: torch.Tensor, labels: np.ndarray) -> tuple[int, int]:
    """Of the k - 1 largest single-linkage merges, how many cut off at most 2 points (and k - 1)."""
    k = len(np.unique(labels))
    clusters = fcluster(linkage(features.numpy(), "single"), k, "maxclust")
    return int((np.bincount(clusters)[1:] <= 2).sum()), k - 1


def centroid_separation(features: torch.Tensor, labels: np.ndarray) -> float:
    """Mean distance between class means over the mean distance of a point to its class mean (not the poster's)."""
    x = features.numpy()
    means = np.stack([x[labels == c].mean(axis=0) for c in np.unique(labels)])
    within = np.mean([np.linalg.norm(x[labels == c] - means[i], axis=1).mean() for i, c in enumerate(np.unique(labels))])
    return float(pdist(means).mean() / within)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, default=default_work_dir())
    parser.add_argument("--ground-truth", type=Path, default=RESULTS / "zoo_ground_truth.csv")
    parser.add_argument("--out", type=Path, default=RESULTS / "zoo_persistence_ratio.md")
    args = parser.parse_args()
    started = time.perf_counter()
    entries = [e for e in load_zoo(args.work_dir / "zoo.yaml")
               if e.source_reference and Path(e.source_reference["dataset"]).name.startswith("fmnist")]
    ground_truth = read_ground_truth(args.ground_truth)
    rows, diagnostics = [], None
    for per_class in SIZES:
        embeddings = reference_features(entries, args.work_dir, per_class)
        pr = {m: score("persistence_ratio", f, y) for m, (f, y) in embeddings.items()}
        taus = mean_weighted_tau(pr, ground_truth)
        rows.append({"images per class": per_class, "models": len(pr), "τw full": taus["full"],
                     "τw linear-probe": taus["linear-probe"]})
        print(f"{per_class} per class: {rows[-1]}", flush=True)
        if per_class == DEFAULT_SIZE:
            outliers = np.array([outlier_splits(f, y) for f, y in embeddings.values()]).sum(axis=0)
            widths = {m: f.shape[1] for m, (f, _) in embeddings.items()}
            separation = {m: centroid_separation(f, y) for m, (f, y) in embeddings.items()}
            diagnostics = (outliers, kendalltau([pr[m] for m in pr], [widths[m] for m in pr])[0],
                           mean_weighted_tau(separation, ground_truth))
    outliers, width_tau, separation_taus = diagnostics
    lines = [
        "# Source-mode persistence ratio on the zoo benchmark",
        "",
        f"Produced by `python benchmarks/persistence_ratio_source.py` ({time.perf_counter() - started:.0f} s). "
        f"{len(entries)} models pre-trained on Fashion-MNIST classes (fmnist10, fmnist-tops5, fmnist-rest5; "
        "supervised, early and final checkpoints, rotation SSL); reference images from their source task that no "
        "model trained on; weighted Kendall tau against `zoo_ground_truth.csv`, mean over the 8 tasks.",
        "",
        "## Reference sample size",
        "",
        markdown_table(pd.DataFrame(rows)).rstrip(),
        "",
        f"## Diagnostics ({DEFAULT_SIZE} images per class, the benchmark's setting)",
        "",
        f"* Of the k − 1 longest single-linkage merges that define `H_sep`, {outliers[0]} of {outliers[1]} "
        f"({outliers[0] / outliers[1]:.0%}) cut off at most 2 points: outliers, not gaps between classes.",
        f"* Kendall tau between the score and the feature width D: {width_tau:.3f}.",
        f"* Class-centroid separation ratio on the same embeddings (not the poster's score): mean τw "
        f"{separation_taus['full']:.3f} against fine-tuning, {separation_taus['linear-probe']:.3f} against the "
        "linear probe.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

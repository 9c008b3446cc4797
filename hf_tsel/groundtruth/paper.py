"""Published ground truth and weighted-tau figures of the seed papers, mapped onto the bundled zoos.

The tables ship as package data (``hf_tsel/resources/paper_results``); ``benchmarks.yaml`` there maps
paper model names to zoo entries, paper method names to registry metrics and dataset keys to
Hub datasets. ``paper_results_dir`` (or ``$HF_TSEL_PAPER_RESULTS``) points at another folder with
the same layout, e.g. to inject the ground truth of a custom zoo.

Example:
    >>> bench = load_paper_benchmark("supervised-cnn")
    >>> round(paper_accuracies(bench, "cifar10")["resnet50"], 4)
    0.9628
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ..errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "resources" / "paper_results"
MAPPING_FILE = "benchmarks.yaml"


@dataclass(frozen=True)
class DatasetSpec:
    """Where a paper's target dataset lives on the Hub."""

    key: str
    hub_id: str
    train_split: str = "train"
    test_split: str = "test"
    label_column: str | None = None
    revision: str | None = None
    multi_label: bool = False


@dataclass(frozen=True)
class PaperBenchmark:
    """One zoo of a paper: its accuracy table, weighted-tau table and name mappings."""

    zoo: str
    paper: str
    accuracies: pd.DataFrame  # index: paper model name; columns: dataset keys; values in %
    weighted_tau: pd.DataFrame  # index: paper method name; columns: dataset keys
    models: dict[str, str | None]
    methods: dict[str, str | None]
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)

    @property
    def dataset_keys(self) -> list[str]:
        return [k for k in self.accuracies.columns if k in self.weighted_tau.columns]

    def missing_models(self, zoo_names: set[str] | None = None) -> list[str]:
        """Paper models without a zoo entry (unmapped, or mapped to a name absent from ``zoo_names``)."""
        return [paper for paper, ours in self.models.items()
                if ours is None or (zoo_names is not None and ours not in zoo_names)]


def results_dir(paper_results_dir: str | Path | None = None) -> Path:
    chosen = paper_results_dir or os.environ.get("HF_TSEL_PAPER_RESULTS")
    folder = Path(chosen).expanduser() if chosen else PACKAGE_DIR
    if not (folder / MAPPING_FILE).is_file():
        raise UserError(f"{folder} holds no {MAPPING_FILE}; point --paper-results at a folder laid out like {PACKAGE_DIR}")
    return folder


def load_paper_benchmark(zoo: str, paper_results_dir: str | Path | None = None) -> PaperBenchmark:
    """The paper tables and mappings for a bundled zoo (``supervised-cnn`` or ``foundation``)."""
    folder = results_dir(paper_results_dir)
    mapping = yaml.safe_load((folder / MAPPING_FILE).read_text())
    benchmarks = mapping.get("benchmarks", {})
    if zoo not in benchmarks:
        raise UserError(f"no paper results for zoo {zoo!r}; available: {sorted(benchmarks)}")
    spec: dict[str, Any] = benchmarks[zoo]
    accuracies = pd.read_csv(folder / spec["accuracy_file"]).set_index("model")
    tau = pd.read_csv(folder / spec["tau_file"])
    if spec.get("tau_zoo"):
        tau = tau[tau["zoo"] == spec["tau_zoo"]]
    if "quantity" in tau.columns:
        tau = tau[tau["quantity"] == "weighted_tau"]
    tau = tau.set_index("method").drop(columns=[c for c in ("zoo", "venue", "quantity", "average") if c in tau.columns])
    unknown = sorted(set(spec["models"]) - set(accuracies.index))
    if unknown:
        raise UserError(f"{MAPPING_FILE}: models {unknown} of zoo {zoo!r} are not rows of {spec['accuracy_file']}")
    datasets = {key: DatasetSpec(key=key, **values) for key, values in mapping.get("datasets", {}).items()}
    return PaperBenchmark(zoo=zoo, paper=spec.get("paper", ""), accuracies=accuracies.astype(float),
                          weighted_tau=tau.astype(float), models=dict(spec["models"]),
                          methods=dict(spec["methods"]), datasets=datasets)


def _check_dataset(bench: PaperBenchmark, dataset: str) -> None:
    if dataset not in bench.accuracies.columns:
        raise UserError(f"the {bench.zoo} paper tables have no dataset {dataset!r}; "
                        f"choose one of {list(bench.accuracies.columns)}")


def paper_accuracies(bench: PaperBenchmark, dataset: str) -> dict[str, float]:
    """Published fine-tuning accuracy (fraction) of every mapped zoo entry on ``dataset``."""
    _check_dataset(bench, dataset)
    column = bench.accuracies[dataset]
    return {ours: float(column[paper]) / 100 for paper, ours in bench.models.items() if ours is not None}


def paper_weighted_tau(bench: PaperBenchmark, dataset: str) -> dict[str, float]:
    """Published weighted tau of every paper method on ``dataset`` (keys are paper method names)."""
    _check_dataset(bench, dataset)
    if dataset not in bench.weighted_tau.columns:
        return {}
    return {method: float(v) for method, v in bench.weighted_tau[dataset].items()}


def ground_truth_rows(bench: PaperBenchmark, datasets: list[str] | None = None) -> pd.DataFrame:
    """The paper accuracies as a GT table (protocol ``paper``), for ``hf-tsel evaluate``."""
    rows = [{"dataset": d, "model": model, "protocol": "paper", "accuracy": acc, "source": bench.paper}
            for d in datasets or list(bench.accuracies.columns) for model, acc in paper_accuracies(bench, d).items()]
    return pd.DataFrame(rows)


def comparison_table(bench: PaperBenchmark, dataset: str, ours: dict[str, float | None]) -> pd.DataFrame:
    """Our weighted tau (``{registry metric: tau}``) next to the paper's, one row per method.

    Paper methods we do not implement get ``ours`` = NaN; our metrics the paper did not report are
    appended with ``paper`` = NaN.
    """
    published = paper_weighted_tau(bench, dataset)
    rows, seen = [], set()
    for method, metric in bench.methods.items():
        value = ours.get(metric) if metric else None
        rows.append({"method": method, "metric": metric or "-", "paper_weighted_tau": published.get(method),
                     "our_weighted_tau": value})
        seen.add(metric)
    rows += [{"method": "-", "metric": metric, "paper_weighted_tau": None, "our_weighted_tau": value}
             for metric, value in sorted(ours.items()) if metric not in seen]
    table = pd.DataFrame(rows)
    for column in ("paper_weighted_tau", "our_weighted_tau"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    table["difference"] = table["our_weighted_tau"] - table["paper_weighted_tau"]
    return table

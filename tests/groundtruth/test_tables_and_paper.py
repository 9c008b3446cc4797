"""Ground-truth tables and the bundled paper results."""

from __future__ import annotations

import pandas as pd
import pytest

from hf_tsel.errors import UserError
from hf_tsel.groundtruth.paper import (comparison_table, ground_truth_rows, load_paper_benchmark, paper_accuracies,
                                       paper_weighted_tau)
from hf_tsel.groundtruth.table import (accuracies_for, attach_ground_truth, ground_truth_frame, read_ground_truth,
                                       upsert_ground_truth)


def test_gt_table_rejects_percentages_and_duplicates():
    with pytest.raises(UserError, match="divide percentages by 100"):
        ground_truth_frame([{"dataset": "d", "model": "m", "protocol": "full", "accuracy": 93.1}])
    with pytest.raises(UserError, match="several rows"):
        ground_truth_frame([{"dataset": "d", "model": "m", "protocol": "full", "accuracy": 0.9}] * 2)


def test_upsert_replaces_same_key_and_keeps_others(tmp_path):
    path = tmp_path / "gt.csv"
    upsert_ground_truth(path, pd.DataFrame([{"dataset": "d", "model": "a", "protocol": "full", "accuracy": 0.5},
                                            {"dataset": "d", "model": "b", "protocol": "full", "accuracy": 0.6}]))
    table = upsert_ground_truth(path, pd.DataFrame([{"dataset": "d", "model": "a", "protocol": "full", "accuracy": 0.7},
                                                    {"dataset": "d", "model": "a", "protocol": "linear-probe",
                                                     "accuracy": 0.4}]))
    assert len(read_ground_truth(path)) == len(table) == 3
    assert accuracies_for(table, "d", "full") == {"a": 0.7, "b": 0.6}
    with pytest.raises(UserError, match="choose one with --protocol"):
        accuracies_for(table, "d")


def test_attach_ground_truth_fills_the_results_columns():
    from hf_tsel.results import empty_record, validate_results

    results = validate_results(pd.DataFrame([empty_record(dataset="d", split="train", model=m, metric="logme", score=s)
                                             for m, s in (("a", 1.0), ("b", 2.0), ("c", 0.0))]))
    gt = ground_truth_frame([{"dataset": "d", "model": "a", "protocol": "full", "accuracy": 0.8},
                             {"dataset": "d", "model": "b", "protocol": "full", "accuracy": 0.9}])
    merged = validate_results(attach_ground_truth(results, gt, "full"))
    by_model = merged.set_index("model")
    assert by_model.loc["b", "ground_truth_accuracy"] == 0.9 and by_model.loc["b", "ground_truth_protocol"] == "full"
    assert pd.isna(by_model.loc["c", "ground_truth_accuracy"]) and by_model.loc["c", "ground_truth_protocol"] is None


@pytest.mark.parametrize("zoo", ["supervised-cnn", "foundation"])
def test_every_mapped_paper_model_is_in_the_bundled_zoo(zoo):
    from hf_tsel.zoo import load_zoo

    bench = load_paper_benchmark(zoo)
    names = {entry.name for entry in load_zoo(zoo)}
    mapped = {ours for ours in bench.models.values() if ours is not None}
    assert mapped <= names, f"mapped names missing from model_zoos/{zoo}.yaml: {sorted(mapped - names)}"
    expected_gaps = {"supervised-cnn": ["Googlenet"], "foundation": ["SimMIM-B16"]}[zoo]
    assert bench.missing_models(names) == expected_gaps


def test_paper_figures_match_the_published_tables():
    lead = load_paper_benchmark("supervised-cnn")
    assert paper_accuracies(lead, "dtd")["densenet161"] == pytest.approx(0.7621)
    assert paper_weighted_tau(lead, "dtd")["LEAD"] == pytest.approx(0.689)
    assert "Googlenet" not in paper_accuracies(lead, "dtd")  # a gap is never given someone else's accuracy
    itm = load_paper_benchmark("foundation")
    assert paper_weighted_tau(itm, "dtd")["ITM (Ours)"] == pytest.approx(0.77)
    assert paper_accuracies(itm, "cifar100")["mae-l16"] == pytest.approx(0.9128)
    assert len(ground_truth_rows(itm, ["dtd"])) == 9


def test_comparison_table_puts_ours_next_to_the_paper():
    lead = load_paper_benchmark("supervised-cnn")
    table = comparison_table(lead, "cifar10", {"logme": 0.5, "hscore": 0.1}).set_index("method")
    assert table.loc["Logme", "paper_weighted_tau"] == pytest.approx(0.783)
    assert table.loc["Logme", "difference"] == pytest.approx(0.5 - 0.783)
    assert pd.isna(table.loc["GBC", "our_weighted_tau"])
    assert table.loc["-", "metric"] == "hscore"


def test_unknown_zoo_or_dataset_is_a_clear_error():
    with pytest.raises(UserError, match="available"):
        load_paper_benchmark("no-such-zoo")
    with pytest.raises(UserError, match="choose one of"):
        paper_accuracies(load_paper_benchmark("foundation"), "voc2007")

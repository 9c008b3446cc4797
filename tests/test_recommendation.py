"""hf_tsel.recommendation: the answer per goal, P(best) and its calibration, rank intervals, the answer line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hf_tsel import recommend
from hf_tsel.errors import MetricInputError
from hf_tsel.metrics import score_zoo
from hf_tsel.metrics.consensus import ANSWERS
from hf_tsel.recommendation import PBestCalibration, bootstrap_indices, recommendation_line, sample_size_advice


def test_recommend_columns_and_determinism(three_model_zoo):
    features, labels = three_model_zoo
    first = recommend(features, labels, n_boot=30, seed=1)
    assert list(first.columns) == ["model", "score", "rank", "p_top1", "rank_low", "rank_high"]
    assert first["model"].tolist() == ["strong", "weak", "none"]
    assert first["p_top1"].sum() == pytest.approx(1.0)
    assert (first["rank_low"] <= first["rank"]).all() and (first["rank"] <= first["rank_high"]).all()
    pd.testing.assert_frame_equal(first, recommend(features, labels, n_boot=30, seed=1))


def test_dominant_model_gets_p_top1_near_one_and_twins_split_it(three_model_zoo):
    features, labels = three_model_zoo
    table = recommend(features, labels, n_boot=40, calibration=None).set_index("model")
    assert table.loc["strong", "p_top1"] > 0.95 and table.loc["strong", "rank_high"] == 1
    twins = {"a": features["strong"], "b": features["strong"].copy(), "c": features["none"]}
    table = recommend(twins, labels, n_boot=40, calibration=None).set_index("model")
    assert table.loc["a", "p_top1"] == pytest.approx(0.5, abs=0.1) and table.loc["c", "p_top1"] < 0.05
    assert "indistinguishable" in sample_size_advice(recommend(twins, labels, n_boot=40))


def test_calibrated_p_best_leaves_room_for_metric_error(three_model_zoo):
    features, labels = three_model_zoo
    raw = recommend(features, labels, n_boot=20, calibration=None).set_index("model")
    calibrated = recommend(features, labels, n_boot=20).set_index("model")
    assert raw.loc["strong", "p_top1"] == 1.0  # the bootstrap alone is certain
    assert 1 / 3 < calibrated.loc["strong", "p_top1"] < 1.0  # the calibrated answer is not
    assert calibrated["p_top1"].sum() == pytest.approx(1.0)
    assert calibrated.attrs["bootstrap_share"]["strong"] == 1.0 and calibrated.attrs["agreement"] == 1.0


def test_p_best_of_two_models_follows_the_gap_not_the_two_z_scores(three_model_zoo):
    features, labels = three_model_zoo
    rng = np.random.default_rng(10)  # two draws of the same class signal: what tells them apart is sampling noise
    alike = {name: rng.normal(size=features["weak"].shape) + np.eye(12)[labels] for name in ("a", "b")}
    clear = {"strong": features["strong"], "none": features["none"]}
    for goal in ANSWERS:
        # over two models z is always -1/+1 (a softmax of it alone gave 0.97 / 0.99): the resamples see the gap
        assert recommend(alike, labels, goal=goal, n_boot=50)["p_top1"].max() < 0.75
        assert recommend(clear, labels, goal=goal, n_boot=50).set_index("model").loc["strong", "p_top1"] > 0.8
    resampled = PBestCalibration(score_weight=2.0, resampled=True)
    flips = np.array([[1.0, 0.0], [0.0, 1.0]] * 10)  # the lead changes hands in half the resamples
    assert resampled(np.array([1.0, 0.0]), None, agreement=1.0, n_boot=20, resamples=flips) == pytest.approx([0.5, 0.5])
    point = resampled(np.array([1.0, 0.0]), None, agreement=1.0, n_boot=0, resamples=np.empty((0, 2)))
    assert point == pytest.approx(PBestCalibration(score_weight=2.0)(np.array([1.0, 0.0]), None, agreement=1.0,
                                                                     n_boot=0))  # no resamples: the point score


def test_p_best_calibration_map():
    scores = np.array([2.0, 1.0, 0.0])
    flat = PBestCalibration(score_weight=1.0)(np.zeros(3), None, agreement=1.0, n_boot=0)
    assert flat == pytest.approx([1 / 3] * 3)  # tied consensus: uniform
    sharper = PBestCalibration(score_weight=3.0)(scores, None, agreement=1.0, n_boot=0)
    assert sharper[0] > PBestCalibration(score_weight=1.0)(scores, None, agreement=1.0, n_boot=0)[0]
    with_share = PBestCalibration(score_weight=1.0, share_weight=1.0)
    assert np.isnan(with_share(scores, None, agreement=1.0, n_boot=0)).all()  # needs the bootstrap
    assert with_share(scores, np.array([0.2, 0.8, 0.0]), agreement=1.0, n_boot=100)[1] > \
        with_share(scores, np.array([0.8, 0.2, 0.0]), agreement=1.0, n_boot=100)[1]
    disagreeing = PBestCalibration(score_weight=1.0, agreement_weight=1.0)
    assert disagreeing(scores, None, agreement=0.0, n_boot=0)[0] < disagreeing(scores, None, agreement=1.0, n_boot=0)[0]


def test_stratified_bootstrap_keeps_class_sizes():
    labels = np.array([0] * 5 + [1] * 9)
    draws = bootstrap_indices(labels, 4, seed=0)
    assert draws.shape == (4, 14) and all((np.bincount(labels[d]) == [5, 9]).all() for d in draws)


def test_recommendation_line():
    table = pd.DataFrame({"model": ["x", "y"], "score": [1.0, 0.0], "rank": [1, 2], "p_top1": [0.74, 0.26],
                          "rank_low": [1, 1], "rank_high": [2, 2]})
    table.attrs["members"] = ["logme"]
    assert recommendation_line(table, ["gbc", "etran"]) == (
        "Fine-tune x: #1 of 2 by logme, P(best) 0.74; runner-up y 0.26. gbc and etran put x first too.")
    unsure = table.assign(p_top1=[0.45, 0.40])
    assert recommendation_line(unsure, (), ["gbc"]).endswith(
        "gbc puts another model first. Not settled: fine-tune x and y briefly on your data and keep the better one.")
    unsure.attrs.update(members=["logme", "knn"], goal="linear-probe")
    line = recommendation_line(unsure)
    assert line.startswith("Train a linear probe on x: #1 of 2 by the consensus (mean of logme and knn, ")
    assert line.endswith("Not settled: train linear probes on x and y briefly on your data and keep the better one.")


def test_answer_names_the_other_metrics_and_not_the_members(three_model_zoo):
    from types import SimpleNamespace

    from hf_tsel.features import CachedFeatures
    from hf_tsel.extraction import ModelOutcome
    from hf_tsel.recommendation import consensus_records

    features, labels = three_model_zoo
    agrees, disagrees = [m for m in ("gbc", "hscore", "transrate", "pactran") if m not in ANSWERS["finetune"].members][:2]
    outcomes = [ModelOutcome(SimpleNamespace(name=m, metadata={}), "cached",
                             features=CachedFeatures(torch.from_numpy(f), np.arange(len(labels))))
                for m, f in features.items()]
    scored = [{"model": m, "metric": "prior:params", "score": float(i)} for i, m in enumerate(features)]
    scored += [{"model": m, "metric": agrees, "score": {"strong": 3.0, "weak": 2.0, "none": 1.0}[m]} for m in features]
    scored += [{"model": m, "metric": disagrees, "score": {"strong": 1.0, "weak": 2.0, "none": 3.0}[m]} for m in features]
    _, summary = consensus_records(outcomes, labels, scored, n_boot=10)
    assert f"{agrees} puts strong first too; {disagrees} does not." in summary["line"]
    assert "prior" not in summary["line"]
    tied = next(m for m in ("transrate", "pactran", "sfda") if m not in ANSWERS["finetune"].members + (agrees, disagrees))
    scored += [{"model": m, "metric": tied, "score": {"weak": 3.0, "strong": 3.0, "none": 1.0}[m]}
               for m in ("weak", "strong", "none")]  # a tie for first, listed with the other model ahead
    _, summary = consensus_records(outcomes, labels, scored, n_boot=10)
    agreeing = summary["line"].split(" put strong first too;")[0]
    assert tied in agreeing and agrees in agreeing and summary["line"].endswith(f"{disagrees} does not.")


def test_recommend_on_torch_inputs_matches_numpy(three_model_zoo):
    features, labels = three_model_zoo
    as_torch = {m: torch.from_numpy(f).float() for m, f in features.items()}
    numpy_table = recommend(features, labels, n_boot=20)
    torch_table = recommend(as_torch, torch.from_numpy(labels), n_boot=20)
    assert torch_table["model"].tolist() == numpy_table["model"].tolist()
    assert torch_table["p_top1"].to_numpy() == pytest.approx(numpy_table["p_top1"].to_numpy(), abs=0.05)


def test_results_files_of_schema_1_0_still_load(tmp_path):
    import json

    from hf_tsel.results import RESULTS_SCHEMA_VERSION, empty_record, read_results

    record = {k: v for k, v in empty_record(dataset="d", split="train", model="m", metric="logme", score=1.0).items()
              if k not in ("p_top1", "rank_low", "rank_high")}
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema_version": "1.0", "run": {}, "records": [{**record, "schema_version": "1.0"}]}))
    table, _ = read_results(path)
    assert table["schema_version"].tolist() == [RESULTS_SCHEMA_VERSION] and table["p_top1"].isna().all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_consensus_and_recommend_on_cuda(three_model_zoo):
    features, labels = three_model_zoo
    on_gpu = {m: torch.from_numpy(f).cuda() for m, f in features.items()}
    assert score_zoo("consensus", on_gpu, labels) == pytest.approx(score_zoo("consensus", features, labels), abs=1e-6)
    assert recommend(on_gpu, labels, n_boot=10)["model"].tolist() == ["strong", "weak", "none"]


def test_per_sample_members_are_bootstrapped_by_resampling_their_hits(three_model_zoo):
    from hf_tsel.metrics import MetricInputs, get_metric

    features, labels = three_model_zoo
    table = recommend(features, labels, members=["linear_probe_cv"], rule="rank", n_boot=30, seed=2, calibration=None)
    hits = {m: get_metric("linear_probe_cv").per_sample(MetricInputs(torch.from_numpy(f), torch.from_numpy(labels),
                                                                     len(np.unique(labels)))).numpy() for m, f in features.items()}
    draws = bootstrap_indices(labels, 30, seed=2)
    resampled = np.array([[hits[m][rows].mean() for m in features] for rows in draws])
    best = resampled == resampled.max(axis=1, keepdims=True)
    expected = dict(zip(features, (best / best.sum(axis=1, keepdims=True)).mean(axis=0)))
    assert table.set_index("model")["p_top1"].to_dict() == pytest.approx(expected)
    assert table.set_index("model")["score"].to_dict() == pytest.approx({m: 1.0 * (m == "strong") + 0.5 * (m == "weak")
                                                                        for m in features})


def test_each_goal_has_its_answer_and_calibration(three_model_zoo):
    from hf_tsel.defaults import GOALS
    from hf_tsel.groundtruth.table import GOAL_OF_PROTOCOL, PROTOCOLS
    from hf_tsel.recommendation import P_BEST_CALIBRATIONS

    assert set(ANSWERS) == set(P_BEST_CALIBRATIONS) == set(GOALS)
    assert set(GOAL_OF_PROTOCOL) == set(PROTOCOLS) and set(GOAL_OF_PROTOCOL.values()) == set(GOALS)
    features, labels = three_model_zoo
    for goal, config in ANSWERS.items():
        table = recommend(features, labels, goal=goal, n_boot=0)
        assert table.attrs["members"] == list(config.members) and table.attrs["goal"] == goal
        assert table.attrs["calibration"] is P_BEST_CALIBRATIONS[goal]
        assert table.loc[0, "model"] == "strong"
        by_registry = score_zoo("consensus", features, labels, goal=goal)
        assert by_registry == pytest.approx(dict(zip(table["model"], table["score"])))


def test_unknown_goal_is_refused_with_the_choices(three_model_zoo):
    features, labels = three_model_zoo
    with pytest.raises(MetricInputError, match="unknown goal 'finetuning'.*linear-probe"):
        recommend(features, labels, goal="finetuning", n_boot=0)


def test_a_tie_is_not_settled_by_more_images():
    table = pd.DataFrame({"model": ["x", "y"], "score": [1.0, 1.0], "rank": [1, 1], "p_top1": [0.45, 0.45],
                          "rank_low": [1, 1], "rank_high": [2, 2]})
    table.attrs.update(members=["logme"], n_boot=40, num_samples=100, num_classes=10, goal="linear-probe",
                       score_gap={"mean": 0.0, "sd": 0.0})
    assert sample_size_advice(table).endswith("more images will not separate them: consider both, or train linear "
                                              "probes on both briefly.")
    line = recommendation_line(table)
    assert "more images" not in line
    assert line.endswith("Not settled: train linear probes on x and y briefly on your data and keep the better one.")
    table.attrs["score_gap"] = {"mean": 0.01, "sd": 0.05}  # a real but unresolved gap: more images help
    assert "more images per class would help" in recommendation_line(table)


def test_one_member_given_as_a_string_is_refused_not_spelled_out(three_model_zoo):
    features, labels = three_model_zoo
    with pytest.raises(MetricInputError, match="members must be a list of metric names, got the string 'logme'"):
        recommend(features, labels, members="logme")
    assert recommend(features, labels, members=["logme"], n_boot=0).attrs["members"] == ["logme"]

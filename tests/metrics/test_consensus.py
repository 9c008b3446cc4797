"""The consensus metric, the prior:* baselines and hf_tsel.recommendation (P(best), rank interval)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hf_tsel import recommend
from hf_tsel.errors import MetricInputError
from hf_tsel.metrics import score_zoo
from hf_tsel.metrics.consensus import ANSWERS, consensus_scores
from hf_tsel.recommendation import PBestCalibration, bootstrap_indices, recommendation_line, sample_size_advice

N_PER_CLASS, CLASSES, DIM = 40, 3, 12


@pytest.fixture(scope="module")
def zoo():
    """Three models whose class separation (hence every member's ranking) is strong, weak and none."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(CLASSES), N_PER_CLASS)
    signal = np.eye(DIM)[labels]
    features = {"strong": rng.normal(size=(len(labels), DIM)) + 4 * signal,
                "weak": rng.normal(size=(len(labels), DIM)) + 1 * signal,
                "none": rng.normal(size=(len(labels), DIM))}
    return features, labels


def test_consensus_ranks_by_separation_on_numpy_and_torch(zoo):
    features, labels = zoo
    numpy_scores = score_zoo("consensus", features, labels)
    torch_scores = score_zoo("consensus", {m: torch.from_numpy(f) for m, f in features.items()}, torch.from_numpy(labels))
    assert numpy_scores["strong"] > numpy_scores["weak"] > numpy_scores["none"]
    assert numpy_scores == pytest.approx(torch_scores)


def test_consensus_is_validated_like_every_metric(zoo):
    features, labels = zoo
    with pytest.raises(MetricInputError, match="at least 2"):
        score_zoo("consensus", {"strong": features["strong"]}, labels)
    with pytest.raises(MetricInputError, match="NaN"):
        score_zoo("consensus", {**features, "bad": np.full_like(features["none"], np.nan)}, labels)
    with pytest.raises(MetricInputError, match="unknown combination rule"):
        score_zoo("consensus", features, labels, rule="median")


def test_consensus_invariant_to_model_order_and_feature_scale(zoo):
    features, labels = zoo
    reference = score_zoo("consensus", features, labels, seed=3)
    reversed_zoo = dict(reversed(list(features.items())))
    assert score_zoo("consensus", reversed_zoo, labels, seed=3) == pytest.approx(reference)
    # LogME and ETran's LDA part change with a global feature scale, but not the ranking of
    # models that are all rescaled by the same factor when the factor is moderate.
    scaled = {m: 1.5 * f for m, f in features.items()}
    order = sorted(reference, key=reference.get)
    assert sorted(score_zoo("consensus", scaled, labels), key=score_zoo("consensus", scaled, labels).get) == order


def test_regime_awareness_drops_members_and_says_why(zoo):
    features, labels = zoo
    wide = {m: np.hstack([f, np.zeros((len(f), 200))]) for m, f in features.items()}
    result = consensus_scores(wide, labels, members=["logme", "hscore", "leep", "prior:imagenet_top1"],
                              source_probs={"strong": np.full((len(labels), 4), 0.25)}, priors={"strong": {"imagenet_top1": 80.0}})
    assert result.members == ("logme",)
    assert "saturates" in result.dropped["hscore"] and "none for none, weak" in result.dropped["leep"]
    assert "no published imagenet_top1" in result.dropped["prior:imagenet_top1"]


def test_priors_are_baseline_metrics(zoo):
    features, labels = zoo
    priors = {"strong": {"params": 10}, "weak": {"params": 30}, "none": {"params": 20}}
    assert score_zoo("prior:params", features, labels, priors=priors) == {"strong": 10.0, "weak": 30.0, "none": 20.0}
    assert set(score_zoo("prior:feature_dim", features, labels).values()) == {float(DIM)}
    with pytest.raises(MetricInputError, match="no published imagenet_top1"):
        score_zoo("prior:imagenet_top1", features, labels, priors=priors)


def test_recommend_columns_and_determinism(zoo):
    features, labels = zoo
    first = recommend(features, labels, n_boot=30, seed=1)
    assert list(first.columns) == ["model", "score", "rank", "p_top1", "rank_low", "rank_high"]
    assert first["model"].tolist() == ["strong", "weak", "none"]
    assert first["p_top1"].sum() == pytest.approx(1.0)
    assert (first["rank_low"] <= first["rank"]).all() and (first["rank"] <= first["rank_high"]).all()
    pd.testing.assert_frame_equal(first, recommend(features, labels, n_boot=30, seed=1))


def test_dominant_model_gets_p_top1_near_one_and_twins_split_it(zoo):
    features, labels = zoo
    table = recommend(features, labels, n_boot=40, calibration=None).set_index("model")
    assert table.loc["strong", "p_top1"] > 0.95 and table.loc["strong", "rank_high"] == 1
    twins = {"a": features["strong"], "b": features["strong"].copy(), "c": features["none"]}
    table = recommend(twins, labels, n_boot=40, calibration=None).set_index("model")
    assert table.loc["a", "p_top1"] == pytest.approx(0.5, abs=0.1) and table.loc["c", "p_top1"] < 0.05
    assert "indistinguishable" in sample_size_advice(recommend(twins, labels, n_boot=40))


def test_calibrated_p_best_leaves_room_for_metric_error(zoo):
    features, labels = zoo
    raw = recommend(features, labels, n_boot=20, calibration=None).set_index("model")
    calibrated = recommend(features, labels, n_boot=20).set_index("model")
    assert raw.loc["strong", "p_top1"] == 1.0  # the bootstrap alone is certain
    assert 1 / 3 < calibrated.loc["strong", "p_top1"] < 1.0  # the calibrated answer is not
    assert calibrated["p_top1"].sum() == pytest.approx(1.0)
    assert calibrated.attrs["bootstrap_share"]["strong"] == 1.0 and calibrated.attrs["agreement"] == 1.0


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
    assert line.endswith("Not settled: train linear probes on x and y on your data and keep the better one.")


def test_answer_names_the_other_metrics_and_not_the_members(zoo):
    from types import SimpleNamespace

    from hf_tsel.features import CachedFeatures
    from hf_tsel.extraction import ModelOutcome
    from hf_tsel.recommendation import consensus_records

    features, labels = zoo
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


def test_recommend_on_torch_inputs_matches_numpy(zoo):
    features, labels = zoo
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
def test_consensus_and_recommend_on_cuda(zoo):
    features, labels = zoo
    on_gpu = {m: torch.from_numpy(f).cuda() for m, f in features.items()}
    assert score_zoo("consensus", on_gpu, labels) == pytest.approx(score_zoo("consensus", features, labels), abs=1e-6)
    assert recommend(on_gpu, labels, n_boot=10)["model"].tolist() == ["strong", "weak", "none"]


def test_per_sample_members_are_bootstrapped_by_resampling_their_hits(zoo):
    from hf_tsel.metrics import MetricInputs, get_metric

    features, labels = zoo
    table = recommend(features, labels, members=["linear_probe_cv"], rule="rank", n_boot=30, seed=2, calibration=None)
    hits = {m: get_metric("linear_probe_cv").per_sample(MetricInputs(torch.from_numpy(f), torch.from_numpy(labels),
                                                                     CLASSES)).numpy() for m, f in features.items()}
    draws = bootstrap_indices(labels, 30, seed=2)
    resampled = np.array([[hits[m][rows].mean() for m in features] for rows in draws])
    best = resampled == resampled.max(axis=1, keepdims=True)
    expected = dict(zip(features, (best / best.sum(axis=1, keepdims=True)).mean(axis=0)))
    assert table.set_index("model")["p_top1"].to_dict() == pytest.approx(expected)
    assert table.set_index("model")["score"].to_dict() == pytest.approx({m: 1.0 * (m == "strong") + 0.5 * (m == "weak")
                                                                        for m in features})


def test_weighted_combination_renormalises_over_the_members_present():
    from hf_tsel.metrics.consensus import combine

    members = {"a": {"x": 1.0, "y": 0.0, "z": 0.5}, "b": {"x": 0.0, "y": 1.0, "z": 0.5}}
    models = ["x", "y", "z"]
    assert combine(members, models, "rank", {"a": 3.0, "b": 1.0}) == pytest.approx({"x": 0.75, "y": 0.25, "z": 0.5})
    assert combine(members, models, "rank", {"a": 1.0, "c": 5.0}) == pytest.approx({"x": 1.0, "y": 0.0, "z": 0.5})
    assert combine(members, models, "rank") == pytest.approx({"x": 0.5, "y": 0.5, "z": 0.5})
    with pytest.raises(MetricInputError, match="no member with a positive weight"):
        combine(members, models, "rank", {"c": 1.0})


def test_each_goal_has_its_answer_and_calibration(zoo):
    from hf_tsel.defaults import GOALS
    from hf_tsel.recommendation import P_BEST_CALIBRATIONS

    assert set(ANSWERS) == set(P_BEST_CALIBRATIONS) == set(GOALS)
    features, labels = zoo
    for goal, config in ANSWERS.items():
        table = recommend(features, labels, goal=goal, n_boot=0)
        assert table.attrs["members"] == list(config.members) and table.attrs["goal"] == goal
        assert table.attrs["calibration"] is P_BEST_CALIBRATIONS[goal]
        assert table.loc[0, "model"] == "strong"
        by_registry = score_zoo("consensus", features, labels, goal=goal)
        assert by_registry == pytest.approx(dict(zip(table["model"], table["score"])))


def test_unknown_goal_is_refused_with_the_choices(zoo):
    features, labels = zoo
    with pytest.raises(MetricInputError, match="unknown goal 'finetuning'.*linear-probe"):
        recommend(features, labels, goal="finetuning", n_boot=0)

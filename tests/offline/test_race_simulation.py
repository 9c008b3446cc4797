"""The race replayed on recorded learning curves (hf_tsel.offline.zoo.race_simulation)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from hf_tsel.offline.zoo.race_simulation import read_curves, replay, simulate, summary_table

CURVES = {"a": [0.5, 0.6, 0.7], "b": [0.6, 0.6, 0.65], "c": [0.4, 0.8, 0.9], "d": [0.1, 0.2, 0.3]}


def test_replay_follows_the_race_schedule_and_caps_rounds_at_the_recorded_epochs():
    # round 1: 1 epoch each -> b (0.6) and a (0.5) go on; round 2: to epoch 3 -> a (0.7) beats b (0.65)
    assert replay(["a", "b", "c", "d"], CURVES, 1) == ("a", {"a": 3, "b": 3, "c": 1, "d": 1})
    # round 1 at 2 epochs: c (0.8) and a/b tie at 0.6 -> a, the higher ranked; round 2 capped at epoch 3
    assert replay(["a", "b", "c", "d"], CURVES, 2) == ("c", {"a": 3, "b": 2, "c": 3, "d": 2})
    assert replay(["b", "a"], CURVES, 1) == ("b", {"b": 1, "a": 1})  # a tie goes to the ranking's first


def test_simulation_scores_every_method_against_the_other_seeds(tmp_path):
    scores = pd.DataFrame([{"dataset": "t", "model": m, "metric": "consensus", "score": s}
                           for m, s in zip("abcd", (4, 3, 2, 1))])
    truth = pd.DataFrame([{"dataset": "t", "model": m, "seed": seed, "accuracy": a}
                          for seed, values in ((0, (0.7, 0.6, 0.9, 0.3)), (1, (0.0, 0.0, 0.0, 0.0)))
                          for m, a in zip("abcd", values)])
    curves = pd.DataFrame([{"dataset": "t", "model": m, "seed": 1, "lr": 0.1, "curve": c, "seconds": 3.0 * (i + 1)}
                           for i, (m, c) in enumerate(CURVES.items())])
    result = simulate(scores, truth, curves, lr=0.1, ks=(2, 4), first_epochs=(1,), random_draws=5)
    by = result.set_index(["method", "k"])
    assert by.loc[("consensus", 1), "pick"] == "a" and by.loc[("consensus", 1), "regret"] == pytest.approx(0.2)
    assert by.loc[("race", 4), "pick"] == "a"  # graded on seed 0 only: seed 1's own runs never grade themselves
    # race among 4 at 1 first epoch: a, b 3 epochs (1 + 2 s/epoch), c, d 1 epoch (3 + 4); full: 2 lrs x 3 epochs x 10
    assert by.loc[("race", 4), "compute"] == pytest.approx((3 * 1 + 3 * 2 + 3 + 4) / 60)
    assert by.loc[("halving", 4), "compute"] == pytest.approx(by.loc[("race", 4), "compute"])
    assert 0 <= by.loc[("random race", 2), "regret"] <= 0.6
    table = summary_table(result)
    assert set(table["method"]) == {"consensus", "race", "random race", "halving"} and (table["runs"] == 1).all()

    run = tmp_path / "finetune" / "t" / "a" / "sig"
    (run / "lr0.1_wd0_seed1").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"epochs": 3, "seeds": [1], "grid": {"learning_rates": [0.1]}}))
    (run / "lr0.1_wd0_seed1" / "result.json").write_text(json.dumps(
        {"seed": 1, "lr": 0.1, "validation_history": [0.1, 0.2, 0.3], "seconds": 2.0}))
    read = read_curves(tmp_path, epochs=3, learning_rates=[0.1], seeds=[1])
    assert read[["dataset", "model", "seed", "lr"]].values.tolist() == [["t", "a", 1, 0.1]]
    assert read_curves(tmp_path, epochs=3, learning_rates=[0.1], seeds=[2]).empty

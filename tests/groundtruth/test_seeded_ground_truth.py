"""Seeded ground truth: per-seed rows next to their mean, the noise ceiling, and per-epoch validation curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hf_tsel.errors import UserError
from hf_tsel.groundtruth.table import read_ground_truth, seed_rows, validate_ground_truth
from hf_tsel.offline.zoo.benchmark import seed_mean_rows
from hf_tsel.offline.zoo.summary import headline_table, noise_ceiling, with_ceiling


def _seeded(accuracies: dict[int, list[float]], task: str = "t") -> list[dict]:
    return [{"dataset": task, "model": f"m{i}", "protocol": "full", "accuracy": a, "seed": seed, "seconds": 1.0}
            for seed, values in accuracies.items() for i, a in enumerate(values)]


def test_seed_rows_and_their_mean_share_one_file_and_old_files_still_load(tmp_path):
    rows = _seeded({0: [0.5, 0.7], 1: [0.7, 0.9]})
    table = validate_ground_truth(pd.DataFrame([*rows, *seed_mean_rows(rows),
                                                {"dataset": "t", "model": "m0", "protocol": "linear-probe",
                                                 "accuracy": 0.4}]))
    table.to_csv(tmp_path / "gt.csv", index=False)
    truth = read_ground_truth(tmp_path / "gt.csv")  # the ground truth: the seed means and the unseeded protocol
    assert sorted(zip(truth["model"], truth["protocol"], truth["accuracy"].round(3))) == [
        ("m0", "full", 0.6), ("m0", "linear-probe", 0.4), ("m1", "full", 0.8)]
    assert truth.set_index(["model", "protocol"]).loc[("m0", "full"), "seeds"] == 2
    assert len(seed_rows(read_ground_truth(tmp_path / "gt.csv", seeds=True))) == 4
    pd.DataFrame(rows).drop(columns="seed").iloc[:2].to_csv(tmp_path / "old.csv", index=False)  # no seed column
    assert read_ground_truth(tmp_path / "old.csv")["accuracy"].tolist() == [0.5, 0.7]


def test_two_rows_of_one_seed_are_refused():
    rows = _seeded({0: [0.5, 0.7]}) + _seeded({0: [0.6]})
    with pytest.raises(UserError, match="protocol, seed"):
        validate_ground_truth(pd.DataFrame(rows))


def test_the_ceiling_is_the_mean_weighted_tau_over_seed_pairs():
    from hf_tsel.evaluation import weighted_kendall_tau

    seeds = {0: [0.1, 0.2, 0.3, 0.4], 1: [0.1, 0.2, 0.4, 0.3], 2: [0.4, 0.3, 0.2, 0.1]}
    truth = pd.DataFrame(_seeded(seeds) + _seeded({0: [0.5, 0.6], 1: [0.5, 0.6]}, task="u"))
    ceiling = noise_ceiling(truth).set_index("dataset")
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = np.mean([weighted_kendall_tau(seeds[a], seeds[b]) for a, b in pairs])
    assert ceiling.loc["t", "ceiling"] == pytest.approx(expected) and ceiling.loc["t", "pairs"] == 3
    # seed 0 picks m3 (0.4): on seed 1 that scores 0.3 (regret 0.1), on seed 2 0.1 (0.3); and so on both ways
    assert ceiling.loc["t", "ceiling_regret"] == pytest.approx(np.mean([0.1, 0.3, 0.0, 0.3, 0.3, 0.3]))
    assert ceiling.loc["u", "ceiling"] == pytest.approx(1.0) and ceiling.loc["u", "ceiling_regret"] == 0
    assert noise_ceiling(truth.drop(columns="seed")).empty  # no seeds, no ceiling


def test_every_table_has_the_ceiling_row_and_each_tau_as_a_fraction_of_it():
    evaluation = pd.DataFrame([{"dataset": t, "protocol": "full", "metric": "logme", "weighted_kendall_tau": tau,
                                "top1_regret": 0.1} for t, tau in (("t", 0.3), ("u", 0.5))])
    ceiling = pd.DataFrame({"dataset": ["t", "u"], "ceiling": [0.6, 1.0], "ceiling_regret": [0.05, 0.0]})
    from hf_tsel.offline.zoo.summary import metric_table

    table = with_ceiling(metric_table(evaluation, "full", samples=10), ceiling, samples=10).set_index("metric")
    assert table.loc["ceiling", "mean_tau"] == pytest.approx(0.8)
    assert table.loc["logme", "of_ceiling"] == pytest.approx(0.4 / 0.8)
    headline = headline_table(evaluation, ["full"], ceilings={"full": ceiling}).set_index("metric")
    assert headline.index[0] == "ceiling" and headline.loc["logme", "of ceiling full"] == pytest.approx(0.5)
    unmeasured = with_ceiling(metric_table(evaluation, "full", samples=10), None)
    assert unmeasured["metric"].iloc[0].startswith("ceiling (not measured")


def test_a_recorded_curve_changes_nothing_but_the_record(tmp_path):
    """``record_curve`` evaluates the validation set after every epoch of a ``last-epoch`` run; training, the
    selected epoch and the test accuracy stay those of the run without it."""
    import torch

    from hf_tsel.groundtruth.finetune import FinetuneConfig, Grid, train_grid_point

    def images(n: int, seed: int) -> torch.utils.data.TensorDataset:  # the class is the brightest channel
        labels = torch.arange(n) % 3
        pixels = torch.rand(n, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
        return torch.utils.data.TensorDataset(pixels + 0.5 * torch.nn.functional.one_hot(labels, 3)[:, :, None, None],
                                              labels)

    def backbone() -> torch.nn.Module:
        torch.manual_seed(7)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                   torch.nn.Flatten())

    config = FinetuneConfig(grid=Grid("sgd", (0.05,), (0.0,)), epochs=3, batch_size=8, selection="last-epoch",
                            augment=False)
    train, test, validation = images(48, 0), images(24, 1), images(15, 2)
    plain = train_grid_point(backbone, 4, 3, train, test, config, 0.05, 0.0, 0, tmp_path / "plain",
                             validation_set=validation)
    curve = train_grid_point(backbone, 4, 3, train, test, config, 0.05, 0.0, 0, tmp_path / "curve",
                             validation_set=validation, record_curve=True)
    assert plain["validation_history"][:2] == [None, None] and None not in curve["validation_history"]
    assert curve["validation_history"][-1] == plain["validation_history"][-1]
    assert curve["accuracy"] == plain["accuracy"] and curve["history"] == plain["history"]


def test_a_seed_still_running_is_left_out_of_the_ceiling():
    truth = pd.DataFrame(_seeded({0: [0.1, 0.2, 0.3], 1: [0.1, 0.3, 0.2]}) + _seeded({2: [0.9]}))
    ceiling = noise_ceiling(truth).set_index("dataset")
    assert ceiling.loc["t", "seeds"] == 2 and ceiling.loc["t", "models"] == 3

"""The fine-tuning race (hf_tsel.racing, ``rank --confirm K``) on tiny local torch models."""

from __future__ import annotations

import pytest

from hf_tsel import racing
from hf_tsel.cli import main
from hf_tsel.errors import UserError
from hf_tsel.racing import Round, first_epochs_for, halving_schedule, race, race_cost
from tests.helpers.models import write_zoo


@pytest.mark.parametrize("k, rounds, cost", [
    (2, [Round(2, 1)], 2),
    (3, [Round(3, 1), Round(2, 3)], 7),
    (4, [Round(4, 1), Round(2, 3)], 8),
    (8, [Round(8, 1), Round(4, 3), Round(2, 7)], 24),
])
def test_each_round_halves_the_field_and_doubles_the_epochs(k, rounds, cost):
    assert halving_schedule(k) == rounds and race_cost(rounds) == cost
    assert race_cost(halving_schedule(k, 3)) == 3 * cost


def test_an_epoch_budget_sets_the_first_round_and_a_too_small_one_says_the_minimum():
    assert first_epochs_for(4, 8) == 1 and first_epochs_for(4, 17) == 2
    with pytest.raises(UserError, match="at least 8 epochs.*raise --budget to 8ep"):
        first_epochs_for(4, 7.5)


@pytest.fixture
def ranked(fake_torch_models, colour_dataset):
    from hf_tsel.ranking import rank

    zoo, _ = fake_torch_models
    return zoo, rank(str(colour_dataset), zoo=zoo, metrics=["logme"], n_boot=0)


def _race(colour_dataset, ranked, tmp_path, **options):
    zoo, df = ranked
    return race(str(colour_dataset), df, zoo=zoo, work_dir=tmp_path / "race", **options)


def test_a_killed_race_resumes_with_identical_results(ranked, colour_dataset, tmp_path):
    whole = _race(colour_dataset, ranked, tmp_path / "whole", k=3, epochs=14)  # 2 epochs in round 1, then 4
    assert whole.attrs["race"]["rounds"] == [{"models": 3, "epochs": 2}, {"models": 2, "epochs": 6}]
    epochs = []

    def kill_after_five_epochs(event):
        epochs.append(event) if event["kind"] == "epoch" else None
        if len(epochs) == 5:  # after the first of the third model's 2 epochs in round 1
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _race(colour_dataset, ranked, tmp_path / "killed", k=3, epochs=14, on_progress=kill_after_five_epochs)
    resumed_events = []
    resumed = _race(colour_dataset, ranked, tmp_path / "killed", k=3, epochs=14, on_progress=resumed_events.append)
    trained = [e for e in resumed_events if e["kind"] == "epoch"]
    assert len(trained) == 14 - 5  # nothing trained twice
    columns = ["model", "score", "rank", "race_round", "race_epochs"]
    assert resumed[columns].equals(whole[columns])
    for key in ("validation", "winner", "rounds"):
        assert resumed.attrs["race"][key] == whole.attrs["race"][key]
    assert sorted(whole["race_epochs"]) == [2, 6, 6]


def test_validation_rows_come_from_the_ranked_split_only(ranked, colour_dataset, tmp_path, monkeypatch):
    import numpy as np

    opened, seen = [], []
    real_load, real_train = racing.load_image_dataset, racing.train_grid_point

    def load(source, **options):
        opened.append(options.get("split", "train"))
        return real_load(source, **options)

    def train(build, dim, classes, train_set, test_set, *args, **kwargs):
        seen.append((list(train_set.indices), list(test_set.indices), kwargs.get("validation_set")))
        return real_train(build, dim, classes, train_set, test_set, *args, **kwargs)

    monkeypatch.setattr(racing, "load_image_dataset", load)
    monkeypatch.setattr(racing, "train_grid_point", train)
    _race(colour_dataset, ranked, tmp_path, k=2)
    assert opened == ["train"]  # the test split is never read
    fit, validation, extra = seen[0]
    assert extra is None and not set(fit) & set(validation)
    assert sorted(fit + validation) == list(range(36))  # the whole ranked sample, nothing else
    labels = np.array(real_load(str(colour_dataset), split="train").labels)
    assert sorted(np.bincount(labels[validation]).tolist()) == [2, 3, 3]  # stratified, 20 % rounded up
    assert all(s[:2] == seen[0][:2] for s in seen)  # every model sees the same split


def test_a_test_split_is_refused(fake_torch_models, colour_dataset, tmp_path, capsys):
    zoo, _ = fake_torch_models
    code = main(["rank", str(colour_dataset), "--split", "test", "--zoo", str(zoo), "--metrics", "logme",
                 "--confirm", "2"])
    assert code == 2 and "rank a training split" in capsys.readouterr().err


def test_one_candidate_means_nothing_to_race(fake_torch_models, colour_dataset, tmp_path, capsys):
    zoo, _ = fake_torch_models
    assert main(["rank", str(colour_dataset), "--zoo", str(zoo), "--metrics", "logme", "--n-boot", "0",
                 "--confirm", "1"]) == 0
    assert "race: nothing to race (--confirm 1 races one model); the answer stands." in capsys.readouterr().out
    single = write_zoo(tmp_path / "single.yaml", ["alpha"])
    assert main(["rank", str(colour_dataset), "--zoo", str(single), "--metrics", "logme", "--n-boot", "0",
                 "--confirm"]) == 0
    assert "race: nothing to race (only 1 model(s) got a score)" in capsys.readouterr().out


def test_the_budget_bounds_the_race(ranked, colour_dataset, tmp_path):
    by_epochs = _race(colour_dataset, ranked, tmp_path / "epochs", k=3, epochs=13)
    assert by_epochs.attrs["race"]["rounds"][0]["epochs"] == 1  # 2 epochs per model would need 14
    assert sum(by_epochs.attrs["race"]["seconds"].values()) > 0
    timed = _race(colour_dataset, ranked, tmp_path / "seconds", k=3, seconds=1e-3)
    outcome = timed.attrs["race"]
    assert len(outcome["validation"]) == 1 and outcome["stopped"].startswith("stopped before round 2 of 2")
    assert outcome["winner"] == max(outcome["validation"][0], key=outcome["validation"][0].get)
    assert "The race stopped before round 2" in outcome["line"]
    none_left = _race(colour_dataset, ranked, tmp_path / "none", k=3, seconds=-5)
    assert none_left.attrs["race"]["line"].startswith("race: no time is left") and none_left["score"].isna().all()


def test_rank_confirm_prints_the_winner_and_writes_race_records(fake_torch_models, colour_dataset, tmp_path, capsys):
    from hf_tsel.results import read_results

    zoo, _ = fake_torch_models
    out = tmp_path / "results.json"
    assert main(["rank", str(colour_dataset), "--zoo", str(zoo), "--metrics", "logme", "--n-boot", "0",
                 "--confirm", "3", "--budget", "7ep", "-o", str(out)]) == 0
    printed = capsys.readouterr()
    assert "race round 1/2: 3 models" in printed.err and "race round 2/2: 2 models" in printed.err
    assert "1 more epoch each" in printed.err and "2 more epochs each" in printed.err  # per model, as the rows count
    line = next(line for line in printed.out.splitlines() if line.startswith("race: "))
    df, run = read_results(out)
    rows = df[df["metric"] == "race"].set_index("model")
    winner = run["race"]["winner"]
    accuracy = rows.loc[winner, "score"]
    assert line.startswith(f"race: {winner} wins with validation accuracy {accuracy:.3f} after 3 epochs")
    assert rows.loc[winner, "rank"] == 1 and rows.loc[winner, "race_round"] == 2 and rows.loc[winner, "race_epochs"] == 3
    assert sorted(rows["race_round"].tolist()) == [1, 2, 2]
    pick = df[df["metric"] == "consensus"].sort_values("rank")["model"].iloc[0]
    assert ("the same as the metrics' pick" in line) == (pick == winner)
    assert (f"differs from the metrics' pick, {pick}" in line) == (pick != winner)


def test_a_model_that_cannot_be_trained_is_named_and_the_others_race(ranked, colour_dataset, tmp_path, monkeypatch):
    real = racing.trainable_backbone

    def only_some(entry, **options):
        if entry.name == "beta":
            raise UserError("beta: the onnx loader gives no trainable PyTorch module")
        return real(entry, **options)

    monkeypatch.setattr(racing, "trainable_backbone", only_some)
    df = _race(colour_dataset, ranked, tmp_path, k=3)
    beta = df.set_index("model").loc["beta"]
    assert beta["note"].startswith("not applicable: beta: the onnx loader") and beta["score"] != beta["score"]
    assert set(df.attrs["race"]["validation"][0]) == {"alpha", "gamma"}


def test_the_answer_line_names_the_winner_and_says_when_it_is_too_close_to_call():
    from hf_tsel.racing import RaceOutcome, race_line

    rounds = halving_schedule(3)
    outcome = RaceOutcome(["a", "b", "c"], rounds, [{"a": 0.5, "b": 0.7, "c": 0.9}, {"b": 0.8, "c": 0.95}],
                          winner="c", validation_images=100)
    line = race_line(outcome, "a")
    assert line.startswith("race: c wins with validation accuracy 0.950 after 3 epochs (3 models, 2 rounds, "
                           "7 epochs in total); it differs from the metrics' pick, a, which was eliminated in round 1")
    assert "too close to call" not in line  # 0.15 apart, standard error 0.022
    outcome.validation[-1]["b"] = 0.94
    assert "too close to call" in race_line(outcome, "c") and "the same as the metrics' pick" in race_line(outcome, "c")
    outcome.classes, outcome.validation_images, outcome.validation[-1] = 10, 20, {"b": 0.1, "c": 0.15}
    assert "within one standard error (0.080 on 20 validation images) of chance (1/10)" in race_line(outcome, "c")


def test_race_rows_round_trip_through_a_results_file_and_show_in_the_space(ranked, colour_dataset, tmp_path):
    import pandas as pd

    from hf_tsel.publish.leaderboard import MEAN_RANK, leaderboard_view, target_label
    from hf_tsel.results import read_results, write_results

    zoo, df = ranked
    raced = _race(colour_dataset, ranked, tmp_path, k=3)
    merged = pd.concat([df, raced], ignore_index=True)
    write_results(merged, tmp_path / "results.parquet")
    table, _ = read_results(tmp_path / "results.parquet")
    target = target_label(*table[["dataset", "config", "split"]].iloc[0])
    view = leaderboard_view(table, target, "race")
    winner = raced.attrs["race"]["winner"]
    first = view[view["rank"] == 1].set_index("model")  # a tie on validation accuracy shares the rank
    assert winner in first.index and first.loc[winner, "race_round"] == 2 and first.loc[winner, "race_epochs"] == 3
    assert view["race_round"].tolist() == sorted(view["race_round"], reverse=True)
    mean_rank = leaderboard_view(table, target, MEAN_RANK)
    assert set(mean_rank["metrics"]) == {3}  # logme, etran_lda (the answer's) and consensus: not the race


def test_a_race_for_a_linear_probe_is_refused_before_any_work(fake_torch_models, colour_dataset, capsys):
    zoo, loads = fake_torch_models
    code = main(["rank", str(colour_dataset), "--zoo", str(zoo), "--metrics", "logme", "--goal", "linear-probe",
                 "--confirm", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "--goal linear-probe" in err and "drop --confirm" in err and loads == []


@pytest.mark.parametrize("command", ["rank", "extract"])
def test_an_epoch_budget_without_a_race_is_refused_before_any_work(fake_torch_models, colour_dataset, capsys, command):
    zoo, loads = fake_torch_models
    code = main([command, str(colour_dataset), "--zoo", str(zoo), "--budget", "6ep"])
    err = capsys.readouterr().err
    assert code == 2 and "--budget 6ep counts fine-tuning epochs of a --confirm race" in err and loads == []


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_a_race_on_cuda_matches_its_own_resume(ranked, colour_dataset, tmp_path):
    raced = _race(colour_dataset, ranked, tmp_path, k=3, device="cuda")
    assert raced.attrs["race"]["winner"] in {"alpha", "beta", "gamma"}
    again = _race(colour_dataset, ranked, tmp_path, k=3, device="cuda")  # served from race.json
    assert again.attrs["race"]["validation"] == raced.attrs["race"]["validation"]

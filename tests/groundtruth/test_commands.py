"""``hf-tsel finetune``, ``evaluate`` and ``benchmark paper`` end to end on tiny fake models and data."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest

from hf_tsel.cli import main


def test_finetune_linear_probe_then_full_with_resume(fake_torch_models, colour_dataset, tmp_path, capsys):
    zoo, loads = fake_torch_models
    gt_path = tmp_path / "gt.csv"
    assert main(["finetune", str(colour_dataset), "--zoo", str(zoo), "--output", str(gt_path)]) == 0
    gt = pd.read_csv(gt_path)
    assert sorted(gt["model"]) == ["alpha", "beta", "gamma"] and set(gt["protocol"]) == {"linear-probe"}
    assert gt["accuracy"].between(0, 1).all() and (gt["num_test"] == 24).all()

    full = ["finetune", str(colour_dataset), "--zoo", str(zoo), "--model", "alpha", "--protocol", "full",
            "--lr", "0.1", "0.01", "--weight-decay", "0", "--epochs", "2", "--batch-size", "8",
            "--work-dir", str(tmp_path / "runs"), "--output", str(gt_path)]
    loads.clear()
    assert main(full) == 0
    assert loads == ["alpha"] * 3  # one probe load, then a fresh pretrained model per grid point
    assert len(list((tmp_path / "runs").rglob("result.json"))) == 2
    gt = pd.read_csv(gt_path)
    assert len(gt) == 4 and gt.set_index("protocol").loc["full", "hyperparameters"].startswith("sgd:lr=")
    loads.clear()
    capsys.readouterr()
    assert main(full) == 0
    assert loads == ["alpha"]  # finished grid points are read back, not retrained
    assert "epoch" not in capsys.readouterr().out


@pytest.mark.parametrize("protocol", ["linear-probe", "full"])
def test_finetune_refuses_a_bad_output_or_test_split_before_any_work(fake_torch_models, colour_dataset, tmp_path,
                                                                      capsys, protocol):
    zoo, loads = fake_torch_models
    foreign = tmp_path / "notes.csv"
    foreign.write_text("a,b\n1,2\n")
    base = ["finetune", str(colour_dataset), "--zoo", str(zoo), "--protocol", protocol, "--epochs", "1",
            "--work-dir", str(tmp_path / "runs")]
    assert main([*base, "--output", str(foreign)]) == 2
    assert "lacks the column 'accuracy'" in capsys.readouterr().err and loads == []
    assert foreign.read_text() == "a,b\n1,2\n"
    assert main([*base, "--output", str(tmp_path / "gt.csv"), "--test-split", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "no split 'nosuch'" in err and "with --test-split" in err and loads == []


def test_evaluate_table_csv_and_plot(tmp_path, capsys):
    from hf_tsel.evaluation import evaluate_ranking

    scores = pd.DataFrame([{"dataset": "d", "model": m, "metric": metric, "score": s}
                           for metric, values in (("logme", (3.0, 2.0, 1.0, 0.0)), ("gbc", (0.0, 1.0, 3.0, 2.0)))
                           for m, s in zip("abcd", values)])
    gt = pd.DataFrame([{"dataset": "d", "model": m, "protocol": "full", "accuracy": a}
                       for m, a in zip("abcd", (0.9, 0.8, 0.85, 0.5))])
    scores.to_csv(tmp_path / "scores.csv", index=False)
    gt.to_csv(tmp_path / "gt.csv", index=False)
    plot = tmp_path / "plot.png"
    assert main(["evaluate", str(tmp_path / "scores.csv"), "--ground-truth", str(tmp_path / "gt.csv"),
                 "--format", "csv", "--plot", str(plot), "--output", str(tmp_path / "eval.csv")]) == 0
    printed = pd.read_csv(io.StringIO(capsys.readouterr().out.split("plot:")[0])).set_index("metric")
    expected = evaluate_ranking(dict(zip("abcd", (0.0, 1.0, 3.0, 2.0))), dict(zip("abcd", (0.9, 0.8, 0.85, 0.5))))
    for measure in ("weighted_kendall_tau", "kendall_tau", "spearman_rho", "rel@1", "rel@3", "top1_regret"):
        assert printed.loc["gbc", measure] == pytest.approx(expected[measure], abs=1e-4)
    assert printed.loc["logme", "rel@1"] == 1.0 and printed.loc["logme", "top1_regret"] == 0.0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["evaluate", str(tmp_path / "scores.csv"), "--ground-truth", str(tmp_path / "gt.csv")]) == 0
    assert "Rel@3" in capsys.readouterr().out


def test_evaluate_reports_mismatched_datasets(tmp_path, capsys):
    pd.DataFrame([{"dataset": "x", "model": "a", "metric": "logme", "score": 1.0}]).to_csv(tmp_path / "s.csv", index=False)
    pd.DataFrame([{"dataset": "y", "model": "a", "protocol": "full", "accuracy": 0.5}]).to_csv(tmp_path / "g.csv", index=False)
    assert main(["evaluate", str(tmp_path / "s.csv"), "--ground-truth", str(tmp_path / "g.csv")]) == 2
    assert "names must match" in capsys.readouterr().err


def _paper_results(folder, accuracies: dict[str, float]):
    """A paper-results override: benchmark 'tiny' with injected accuracies and published taus."""
    folder.mkdir()
    pd.DataFrame([{"model": f"Paper-{m}", "colours": a} for m, a in accuracies.items()] +
                 [{"model": "Paper-missing", "colours": 99.0}]).to_csv(folder / "acc.csv", index=False)
    pd.DataFrame([{"quantity": "weighted_tau", "method": "LogME", "colours": 0.25, "average": 0.25},
                  {"quantity": "weighted_tau", "method": "GBC", "colours": 0.5, "average": 0.5}]
                 ).to_csv(folder / "tau.csv", index=False)
    models = "".join(f"      Paper-{m}: {m}\n" for m in accuracies) + "      Paper-missing: null\n"
    (folder / "benchmarks.yaml").write_text(
        "benchmarks:\n  tiny:\n    paper: Tiny paper\n    accuracy_file: acc.csv\n    tau_file: tau.csv\n"
        f"    models:\n{models}    methods:\n      LogME: logme\n      GBC: null\ndatasets: {{}}\n")


@pytest.mark.slow  # ~3 s: a zoo ranking (fast-lane budget)
def test_benchmark_paper_prints_our_tau_next_to_the_papers(fake_torch_models, colour_dataset, tmp_path, capsys):
    from hf_tsel.ranking import rank

    zoo, _ = fake_torch_models
    logme = rank(str(colour_dataset), zoo=zoo, metrics=["logme"]).set_index("model")["score"]
    # Inject accuracies in LogME's order, so our weighted tau must be exactly 1.
    ordered = logme.sort_values().index.tolist()
    _paper_results(tmp_path / "paper", {m: 60.0 + 10 * i for i, m in enumerate(ordered)})
    out_csv = tmp_path / "comparison.csv"
    assert main(["benchmark", "paper", "--zoo", str(zoo), "--dataset", "colours", "--dataset-source",
                 str(colour_dataset), "--paper-results", str(tmp_path / "paper"), "--output", str(out_csv)]) == 0
    printed = capsys.readouterr().out
    assert "Paper-missing" in printed  # the gap is reported
    row = next(line for line in printed.splitlines() if "LogME" in line)
    assert "0.250" in row and "1.000" in row and "+0.750" in row
    table = pd.read_csv(out_csv).set_index("method")
    assert table.loc["LogME", "our_weighted_tau"] == pytest.approx(1.0)
    assert math.isnan(table.loc["GBC", "our_weighted_tau"]) and table.loc["GBC", "paper_weighted_tau"] == 0.5


def test_rank_results_get_ground_truth_attached_and_evaluated(fake_torch_models, colour_dataset, tmp_path, capsys):
    from hf_tsel.results import read_results

    zoo, _ = fake_torch_models
    results = tmp_path / "results.csv"
    assert main(["rank", str(colour_dataset), "--zoo", str(zoo), "--metrics", "logme,gbc", "--quiet",
                 "--output", str(results)]) == 0
    assert main(["finetune", str(colour_dataset), "--zoo", str(zoo), "--output", str(tmp_path / "gt.csv"),
                 "--attach-to", str(results)]) == 0
    df, _ = read_results(results)
    assert df["ground_truth_accuracy"].notna().all() and set(df["ground_truth_protocol"]) == {"linear-probe"}
    capsys.readouterr()
    assert main(["evaluate", str(results), "--format", "csv"]) == 0  # ground truth read from the results file
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert sorted(table["metric"]) == ["consensus", "etran_lda", "gbc", "logme"] and (table["num_models"] == 3).all()

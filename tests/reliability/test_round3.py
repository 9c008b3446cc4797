"""Reliability round 3 (issue 23): one bad model, stale cache entries, silent wrong inputs, culprit-naming messages.

Each test feeds one of the issue's cases to the CLI (in-process) or the API and checks the exit code,
that the message names the culprit, and that nothing healthy was lost.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hf_tsel.errors import EXIT_PARTIAL_FAILURE, EXIT_USER_ERROR

from tests.helpers.data import RELIABILITY_DATASET as DATASET


@pytest.fixture
def nan_model(monkeypatch, tmp_path):
    """Fake backbones (tests/helpers/models.py); the model named ``broken`` emits NaN features."""
    from tests.helpers.data import image_dataset
    from tests.helpers.models import FakeBackbone, route_model_loading, write_zoo

    def load(entry, *, device="cpu", **options):
        backbone = FakeBackbone(entry, device)
        if entry.name == "broken":
            healthy = backbone.embed
            backbone.embed = lambda batch: tuple(t * float("nan") for t in healthy(batch))
        return backbone

    route_model_loading(monkeypatch, load)
    image_dataset(per_class=6).save_to_disk(str(tmp_path / "ds"))
    return tmp_path / "ds", write_zoo(tmp_path / "zoo.yaml", ["alpha", "broken", "beta"])


# item 1: one broken model must not erase the answer for the whole zoo
def test_nan_feature_model_is_dropped_and_the_others_are_ranked(nan_model, cli, tmp_path):
    dataset, zoo = nan_model
    code, out, err = cli(["rank", dataset, "--zoo", zoo, "--metrics", "logme,etran", "--n-boot", "5",
                          "--cache-dir", tmp_path / "c", "-o", tmp_path / "r.json"])
    assert code == EXIT_PARTIAL_FAILURE, out + err
    results = json.loads((tmp_path / "r.json").read_text())
    models = {m["name"]: m for m in results["run"]["models"]}
    assert models["broken"]["status"] == "failed" and "NaN or infinite values in 18 of 18" in models["broken"]["error"]
    scores = {(r["model"], r["metric"]): r["score"] for r in results["records"]}
    for model in ("alpha", "beta"):  # the healthy models keep their model-set and consensus scores
        assert scores[(model, "etran")] is not None and scores[(model, "consensus")] is not None
    assert scores.get(("broken", "consensus")) is None and scores[("broken", "logme")] is None
    assert "Fine-tune" in out and "broken" in err  # a recommendation among the others; the dropped model named
    assert "broken: its features contain NaN" in out


def test_score_models_leaves_a_nan_model_out_of_model_set_metrics():
    from types import SimpleNamespace

    from hf_tsel.features import CachedFeatures
    from hf_tsel.scoring import resolve_metrics, score_models

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 10)

    def outcome(name, features):
        entry = SimpleNamespace(name=name, metadata={})
        return SimpleNamespace(entry=entry, features=CachedFeatures(features, np.arange(30)))

    good = [outcome(n, torch.from_numpy(rng.normal(size=(30, 4)) + np.eye(4)[labels % 4])) for n in ("a", "b")]
    bad = torch.full((30, 4), float("inf"))
    records = score_models(resolve_metrics(["etran"]), [*good, outcome("bad", bad)], labels)
    by_model = {r["model"]: r for r in records}
    assert np.isfinite(by_model["a"]["score"]) and np.isfinite(by_model["b"]["score"])
    assert np.isnan(by_model["bad"]["score"]) and "NaN or infinite" in by_model["bad"]["note"]


# item 2: a full disk while safetensors writes (it raises SafetensorError, not OSError) must not fail any model
def test_full_disk_in_safetensors_finishes_from_memory(nan_model, cli, tmp_path, monkeypatch):
    import safetensors.torch
    from safetensors import SafetensorError

    def disk_full(*args, **kwargs):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                              '"No space left on device" })')

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    dataset, _ = nan_model
    from tests.helpers.models import write_zoo

    zoo = write_zoo(tmp_path / "healthy.yaml", ["alpha", "beta"])
    code, out, err = cli(["rank", dataset, "--zoo", zoo, "--metrics", "logme", "--n-boot", "0",
                          "--cache-dir", tmp_path / "c"])
    assert code == 0, out + err
    assert err.count("the disk is full") == 1 and "goes on without caching" in err
    assert "failed" not in out


# item 3: the cache must never serve stale or mismatched features
def test_local_model_rewritten_in_place_is_extracted_again(hub, cli, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file


    folder = tmp_path / "my-resnet"
    repo = hub.hub_dir / f"models--{hub.ids['timm_cnn'].replace('/', '--')}"
    shutil.copytree(repo / "snapshots" / hub.revisions["timm_cnn"], folder)
    args = ["rank", DATASET, "--model", folder, "--model", hub.ids["timm_vit"], "--loader", "timm", "--metrics",
            "logme", "--n-boot", "0", "--cache-dir", tmp_path / "c", "-o", tmp_path / "r.json", "--overwrite"]

    def statuses() -> dict[str, dict]:
        return {m["model_id"]: m for m in json.loads((tmp_path / "r.json").read_text())["run"]["models"]}

    assert cli(args)[0] == 0
    first = statuses()[str(folder)]
    weights = load_file(str(folder / "model.safetensors"))
    save_file({k: v * 0.5 if v.is_floating_point() else v for k, v in weights.items()}, str(folder / "model.safetensors"))
    assert cli(args)[0] == 0
    second = statuses()[str(folder)]
    assert first["status"] == "extracted" and second["status"] == "extracted"  # not "cached": the weights changed
    assert second["cache_key"] != first["cache_key"] and statuses()[hub.ids["timm_vit"]]["status"] == "cached"


def test_changing_precision_extracts_again_and_is_recorded(nan_model, cli, tmp_path):
    from tests.helpers.models import write_zoo

    dataset, _ = nan_model
    zoo = write_zoo(tmp_path / "healthy.yaml", ["alpha", "beta"])
    runs = {}
    for precision in ("bf16", "fp32", "bf16"):
        code, out, err = cli(["rank", dataset, "--zoo", zoo, "--metrics", "logme", "--n-boot", "0", "--device", "cpu",
                              "--precision", precision, "--cache-dir", tmp_path / "c", "-o", tmp_path / "r.json",
                              "--overwrite"])
        assert code == 0, out + err
        runs.setdefault(precision, []).append(json.loads((tmp_path / "r.json").read_text())["run"]["models"][0])
    (bf16, bf16_again), (fp32,) = runs["bf16"], runs["fp32"]
    assert bf16["status"] == "extracted" and fp32["status"] == "extracted" and bf16_again["status"] == "cached"
    assert (bf16["precision"], fp32["precision"]) == ("bf16", "fp32") and bf16["cache_key"] != fp32["cache_key"]


def test_fp16_on_cpu_is_refused_up_front(nan_model, cli, tmp_path):
    dataset, zoo = nan_model
    code, _, err = cli(["rank", dataset, "--zoo", zoo, "--device", "cpu", "--precision", "fp16",
                        "--cache-dir", tmp_path / "c"])
    assert code == EXIT_USER_ERROR and "fp16 needs a CUDA device" in err and "--precision bf16 or fp32" in err
    assert not list((tmp_path / "c").glob("*/manifest.json"))


# item 6: `cache clear` deletes only what this tool wrote
def test_cache_clear_keeps_a_folder_with_a_foreign_manifest(cli, tmp_path):
    own = "a" * 32
    (tmp_path / own).mkdir()
    (tmp_path / own / "manifest.json").write_text(json.dumps({"key": own, "model": "m"}))
    foreign = tmp_path / ("b" * 32)
    foreign.mkdir()
    (foreign / "manifest.json").write_text(json.dumps({"name": "my project", "version": 3}))
    code, out, _ = cli(["cache", "--cache-dir", tmp_path, "clear"])
    assert code == 0 and "removed 1 cache entry" in out and "b" * 32 in out
    assert (foreign / "manifest.json").is_file() and not (tmp_path / own).exists()


# item 8: every option is validated before any work; a closed pipe is not a bug
@pytest.mark.parametrize("command", [["rank", "DATASET"], ["extract", "DATASET"], ["demo"],
                                     ["finetune", "DATASET"]])
def test_seed_too_large_is_refused_before_any_work(cli, tmp_path, command, capsys):
    args = [a if a != "DATASET" else str(tmp_path / "no-such-dataset") for a in command]
    with pytest.raises(SystemExit) as stop:
        cli([*args, "--seed", str(2**63)])
    assert stop.value.code == EXIT_USER_ERROR and "--seed" in capsys.readouterr().err


def test_seed_too_large_is_refused_by_the_api(nan_model, tmp_path):
    import hf_tsel
    from hf_tsel.errors import UserError

    dataset, zoo = nan_model
    with pytest.raises(UserError, match=r"seed 9223372036854775808 is not a whole number from 0 to 4294967295"):
        hf_tsel.extract(dataset, zoo=zoo, seed=2**63, cache_dir=tmp_path / "c")
    assert not list((tmp_path / "c").glob("*/manifest.json"))  # refused before any work


def test_closed_stdout_pipe_exits_quietly(tmp_path):
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line (`| head -0`)
    try:
        done = subprocess.run([sys.executable, "-m", "hf_tsel.cli", "zoo", "list"], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120,
                              env={**os.environ, "HF_TSEL_HOME": str(tmp_path)})
    finally:
        os.close(write)
    assert done.returncode == 0 and done.stderr == "", done.stderr


# item 4: silent wrong inputs
def _jpeg_with_orientation(orientation: int) -> bytes:
    import io

    from PIL import Image

    image = Image.new("RGB", (32, 16), (200, 30, 30))  # landscape as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def test_exif_rotated_jpeg_reaches_the_model_upright():
    import datasets

    from hf_tsel.data import load_image_dataset

    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": _jpeg_with_orientation(o), "path": None} for o in (6, 6, 1, 1)], "label": [0, 0, 1, 1]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])}))
    data = load_image_dataset(ds)
    sizes = [data.load_image(i).size for i in range(data.num_samples)]
    assert sorted(sizes) == [(16, 32), (16, 32), (32, 16), (32, 16)]  # orientation 6: turned a quarter, portrait


def test_negative_integer_label_is_a_class_and_only_minus_one_is_skipped():
    import datasets

    from hf_tsel.data import load_image_dataset
    from tests.helpers.data import class_images

    images, _ = class_images(num_classes=3, per_class=4)
    labels = [0] * 4 + [1] * 4 + [-5] * 4
    ds = datasets.Dataset.from_dict({"image": images + images[:2], "label": labels + [-1, -1]},
                                    features=datasets.Features({"image": datasets.Image(),
                                                                "label": datasets.Value("int64")}))
    with pytest.warns(UserWarning, match=r"2 rows labelled -1 \(no label\) are skipped"):
        data = load_image_dataset(ds)
    assert data.num_samples == 12 and sorted(data.class_names) == ["-5", "0", "1"]


def test_negative_std_in_a_zoo_entry_is_refused(hub, cli, tmp_path):
    import yaml

    zoo = tmp_path / "zoo.yaml"
    zoo.write_text(yaml.safe_dump({"name": "z", "models": [
        {"name": "good", "hub_id": hub.ids["timm_cnn"], "loader": "timm"},
        {"name": "flipped", "hub_id": hub.ids["timm_vit"], "loader": "timm", "preprocessing": {"std": [0.5, -0.5, 0.5]}}]}))
    code, _, err = cli(["rank", DATASET, "--zoo", zoo, "--cache-dir", tmp_path / "c"])
    assert code == EXIT_USER_ERROR and "positive" in err and "entry 2 (flipped)" in err


# item 7: one sample per class is not "no labelled samples"
def test_one_sample_per_class_says_so():
    from hf_tsel.data import load_image_dataset
    from hf_tsel.errors import DataError
    from tests.helpers.data import image_dataset

    with pytest.raises(DataError, match="a single sample in each of its 3 class"), pytest.warns(UserWarning):
        load_image_dataset(image_dataset(per_class=4), samples_per_class=1)


# item 5: evaluate questions what it used to accept
def _tables(tmp_path, scores: list[tuple], truth: list[tuple]):
    import pandas as pd

    pd.DataFrame(scores, columns=["dataset", "model", "metric", "score"]).to_csv(tmp_path / "s.csv", index=False)
    pd.DataFrame(truth, columns=["dataset", "model", "protocol", "accuracy"]).to_csv(tmp_path / "gt.csv", index=False)
    return ["evaluate", tmp_path / "s.csv", "--ground-truth", tmp_path / "gt.csv"]


def test_evaluate_with_no_model_in_common_is_an_error(cli, tmp_path):
    args = _tables(tmp_path, [("d", "a", "logme", 1.0), ("d", "b", "logme", 2.0)],
                   [("d", "A", "full", 0.5), ("d", "B", "full", 0.6)])
    code, _, err = cli(args)
    assert code == EXIT_USER_ERROR and "no model of dataset 'd'" in err and "'A'" in err and "'a'" in err


def test_evaluate_names_the_models_a_partial_match_leaves_out(cli, tmp_path):
    args = _tables(tmp_path, [("d", m, "logme", s) for m, s in zip("abcx", (3.0, 2.0, 1.0, 0.0))],
                   [("d", m, "full", a) for m, a in zip("abcy", (0.9, 0.8, 0.7, 0.6))])
    code, out, err = cli(args)
    assert code == 0 and "1 model(s) without an accuracy in the ground truth are left out: x" in err
    assert "1 model(s) without a score are left out: y" in err


@pytest.mark.parametrize("scores, message", [
    ([("d", "a", "logme", 1.0), ("d", "a", "logme", 2.0), ("d", "b", "logme", 0.0)], "2 rows for one"),
    ([("d", "a", "logme", float("inf")), ("d", "b", "logme", 0.0)], "is inf"),
])
def test_evaluate_refuses_duplicate_and_infinite_scores(cli, tmp_path, scores, message):
    code, _, err = cli(_tables(tmp_path, scores, [("d", "a", "full", 0.9), ("d", "b", "full", 0.8)]))
    assert code == EXIT_USER_ERROR and message in err and "'a'" in err and "Fix:" in err


def test_evaluate_nan_accuracy_is_a_plain_message(cli, tmp_path):
    args = _tables(tmp_path, [("d", "a", "logme", 1.0), ("d", "b", "logme", 0.0)],
                   [("d", "a", "full", float("nan")), ("d", "b", "full", 0.8)])
    code, _, err = cli(args)
    assert code == EXIT_USER_ERROR and "missing or not a number" in err
    assert "np.float64" not in err and "divide percentages" not in err


# item 7: messages name the culprit and say the right thing
def test_undecodable_image_is_named_and_not_counted(nan_model, cli, tmp_path):
    from tests.helpers.data import write_imagefolder
    from tests.helpers.models import write_zoo

    root = write_imagefolder(tmp_path / "imgs", per_class=4)
    (root / "train" / "c1" / "5.png").write_bytes(b"not a png at all")
    zoo = write_zoo(tmp_path / "healthy.yaml", ["alpha", "beta"])
    code, out, err = cli(["rank", root, "--zoo", zoo, "--metrics", "logme", "--n-boot", "0",
                          "--cache-dir", tmp_path / "c"])
    assert code == 0, out + err
    assert "5.png" in err and "-v" in err and "1 of 12 images could not be decoded" in err
    assert "11 of 12 samples used" in " ".join(out.split())  # the table title may wrap


def test_metadata_prior_that_no_model_records_is_refused_up_front(nan_model, cli, tmp_path):
    dataset, zoo = nan_model
    code, _, err = cli(["rank", dataset, "--zoo", zoo, "--metrics", "prior:params", "--cache-dir", tmp_path / "c"])
    assert code == EXIT_USER_ERROR and "prior:params" in err and "metadata" in err and "none of the 3" in err
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").glob("*/manifest.json"))


def test_metadata_prior_scores_the_models_that_record_it(nan_model, cli, tmp_path):
    dataset, _ = nan_model
    (tmp_path / "z.yaml").write_text("name: z\nmodels:\n" + "".join(
        f"  - name: {n}\n    hub_id: fake/{n}\n    loader: timm\n" + (f"    metadata: {{params: {p}}}\n" if p else "")
        for n, p in (("alpha", 5000000), ("beta", 9000000), ("gamma", None))))
    code, out, err = cli(["rank", dataset, "--zoo", tmp_path / "z.yaml", "--metrics", "prior:params,logme",
                          "--n-boot", "0", "--cache-dir", tmp_path / "c", "-o", tmp_path / "r.json"])
    assert code == 0, out + err
    scores = {(r["model"], r["metric"]): r for r in json.loads((tmp_path / "r.json").read_text())["records"]}
    assert scores[("alpha", "prior:params")]["score"] is not None and scores[("beta", "prior:params")]["score"]
    assert scores[("gamma", "prior:params")]["score"] is None
    assert "'gamma' has no published params" in scores[("gamma", "prior:params")]["note"]


def test_recommend_names_the_model_with_nan_features():
    from hf_tsel.errors import MetricInputError
    from hf_tsel.recommendation import recommend

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    good, broken = rng.normal(size=(60, 8)) + y[:, None], rng.normal(size=(60, 8))
    broken[3, 2] = np.nan
    with pytest.raises(MetricInputError, match="model 'broken'.*NaN"):
        recommend({"good": good, "broken": broken}, y, n_boot=2)


def test_huge_features_give_the_package_error_not_linalg():
    from hf_tsel.errors import MetricInputError
    from hf_tsel.metrics import score

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = rng.normal(size=(60, 8)) + y[:, None]
    for metric in ("logme", "hscore", "gbc"):
        with pytest.raises(MetricInputError, match=r"\[.*\] feature values reach .* rescale"):
            score(metric, x * 1e200, y)


def test_demo_split_is_refused_for_digits(cli):
    code, _, err = cli(["demo", "--split", "train"])
    assert code == EXIT_USER_ERROR and "--split" in err and "digits" in err and "fashion-mnist" in err


def test_progress_on_a_pipe_leaves_no_blank_lines(nan_model, cli, tmp_path):
    from tests.helpers.models import write_zoo

    dataset, _ = nan_model
    zoo = write_zoo(tmp_path / "healthy.yaml", ["alpha", "beta"])
    code, _, err = cli(["rank", dataset, "--zoo", zoo, "--metrics", "logme", "--n-boot", "0",
                        "--cache-dir", tmp_path / "c"])
    lines = err.splitlines()
    assert code == 0 and any("extracting features" in line for line in lines)
    assert all(line.strip() for line in lines), lines


def test_a_model_set_failure_is_not_pinned_on_one_model(nan_model, cli, tmp_path, monkeypatch):
    import hf_tsel.scoring
    from hf_tsel.errors import MetricInputError
    from tests.helpers.models import write_zoo

    def fails(name, *args, **kwargs):
        raise MetricInputError(name, "the set cannot be scored.", "try another metric.")

    monkeypatch.setattr(hf_tsel.scoring, "score_zoo", fails)  # the model-set metrics' entry point, as scoring uses it
    dataset, _ = nan_model
    zoo = write_zoo(tmp_path / "healthy.yaml", ["alpha", "beta"])
    code, out, err = cli(["rank", dataset, "--zoo", zoo, "--metrics", "logme,etran", "--n-boot", "0",
                          "--cache-dir", tmp_path / "c"])
    text = " ".join(out.split())
    assert "2 models (alpha, beta) / etran: failed: [etran] the set cannot be scored." in text, out
    assert "alpha / etran" not in text


def test_real_model_with_infinite_weights_is_dropped_with_its_reason(hub, cli, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "inf-resnet"
    repo = hub.hub_dir / f"models--{hub.ids['timm_cnn'].replace('/', '--')}"
    shutil.copytree(repo / "snapshots" / hub.revisions["timm_cnn"], folder)
    weights = load_file(str(folder / "model.safetensors"))
    save_file({k: torch.full_like(v, float("inf")) if v.is_floating_point() else v for k, v in weights.items()},
              str(folder / "model.safetensors"))
    code, out, err = cli(["rank", DATASET, "--model", folder, "--model", hub.ids["timm_cnn"], "--model",
                          hub.ids["timm_vit"], "--loader", "timm", "--n-boot", "10", "--cache-dir", tmp_path / "c",
                          "-o", tmp_path / "r.json"])
    assert code == EXIT_PARTIAL_FAILURE, out + err
    run = json.loads((tmp_path / "r.json").read_text())["run"]
    dropped = {m["model_id"]: m for m in run["models"]}[str(folder)]
    assert dropped["status"] == "failed" and "NaN or infinite values" in dropped["error"]
    assert run["recommendation"]["line"].startswith("Fine-tune ") and "inf-resnet" not in run["recommendation"]["line"]
    assert "1 of 3 models failed (inf-resnet)" in err

"""Every bad input gives a clear message (no traceback) and loses nothing.

The CLI runs in-process here (``hf_tsel.cli.main``), offline, against tiny models and datasets in a
real HF cache layout; the subprocess paths (kill, Ctrl-C) are in ``tests/e2e/test_cli_runs.py`` and the
full disk in ``tests/extraction/test_extract_models.py``.
"""

from __future__ import annotations

import json

import pytest

from hf_tsel.cli import main
from tests.helpers.data import image_dataset
from tests.helpers.models import write_tiny_zoo

from tests.helpers.data import RELIABILITY_DATASET as DATASET


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def _save(dataset, tmp_path, name: str) -> str:
    dataset.save_to_disk(str(tmp_path / name))
    return str(tmp_path / name)


def test_unknown_dataset_id_and_path(hub, capsys, tmp_path):
    code, _, err = _run(["rank", "hf-tsel-test/no-such-dataset", "--model", hub.ids["timm_cnn"], "--loader", "timm"], capsys)
    assert code == 2 and "not in the local Hugging Face cache" in err and "HF_HUB_OFFLINE" in err
    code, _, err = _run(["rank", str(tmp_path / "missing" / "..x"), "--model", hub.ids["timm_cnn"], "--loader", "timm"], capsys)
    assert code == 2 and "does not exist" in err and "typos" in err


def test_split_that_does_not_exist(hub, capsys):
    code, _, err = _run(["rank", DATASET, "--split", "validation", "--model", hub.ids["timm_cnn"], "--loader", "timm"], capsys)
    assert code == 2 and "no split 'validation'" in err and "train" in err and "--split" in err


@pytest.mark.parametrize("columns, message", [
    ({"label": "int"}, "no image column found"),
    ({"image": "image"}, "no label column found"),
    ({"image": "image", "label": "float"}, "holds floats"),
    ({"image": "image", "classes": "multi"}, "multi-label"),
])
def test_unusable_columns(hub, capsys, tmp_path, columns, message):
    import datasets

    base = image_dataset(per_class=3)
    types = {"int": datasets.Value("int64"), "float": datasets.Value("float32"), "image": datasets.Image(),
             "multi": datasets.List(datasets.Value("int64"))}
    values = {"int": base["label"][:], "float": [0.5] * len(base), "image": base["image"][:],
              "multi": [[0, 1]] * len(base)}
    ds = datasets.Dataset.from_dict({name: values[kind] for name, kind in columns.items()},
                                    features=datasets.Features({name: types[kind] for name, kind in columns.items()}))
    code, _, err = _run(["rank", _save(ds, tmp_path, "ds"), "--model", hub.ids["timm_cnn"], "--loader", "timm"], capsys)
    assert code == 2 and message in err


def test_explicit_column_that_does_not_exist(hub, capsys):
    code, _, err = _run(["rank", DATASET, "--label-column", "kind", "--model", hub.ids["timm_cnn"], "--loader", "timm"], capsys)
    assert code == 2 and "label column 'kind' does not exist" in err and "'label'" in err


def test_one_class_only(hub, capsys, tmp_path):
    ds = image_dataset(per_class=3).filter(lambda row: row["label"] == 1)
    code, _, err = _run(["rank", _save(ds, tmp_path, "one"), "--model", hub.ids["timm_cnn"], "--loader", "timm"], capsys)
    assert code == 2 and "only class 'c1'" in err and "at least 2 classes" in err


def test_fewer_samples_than_requested_warns_and_runs(hub, capsys, tmp_path):
    code, out, err = _run(["rank", DATASET, "--samples-per-class", "50", "--model", hub.ids["timm_cnn"], "--loader", "timm",
                           "--metrics", "logme", "-o", str(tmp_path / "r.json")], capsys)
    assert code == 0, out + err
    assert "fewer than the 50 samples per class requested" in err
    assert json.loads((tmp_path / "r.json").read_text())["run"]["num_samples"] == 12


def test_missing_model_is_reported_and_skipped(hub, capsys, tmp_path):
    zoo = write_tiny_zoo(tmp_path / "zoo.yaml", hub, ["timm_cnn", "missing"])
    code, out, err = _run(["rank", DATASET, "--zoo", str(zoo), "--metrics", "logme",
                           "-o", str(tmp_path / "r.csv")], capsys)
    assert code == 3 and "failed" in out and "not_found" in out and "1 of 2 models failed" in err
    from hf_tsel.results import read_results

    df, _ = read_results(tmp_path / "r.csv")
    assert df.set_index("model")["score"].notna().to_dict() == {"timm-cnn": True, "missing": False}


def test_pickle_only_checkpoint_needs_opt_in(hub, capsys, tmp_path):
    args = ["rank", DATASET, "--model", hub.ids["pickle_only"], "--loader", "timm", "--metrics", "logme",
            "--cache-dir", str(tmp_path / "c")]
    code, out, err = _run(args, capsys)
    assert code == 2 and "pickle_only" in out and "--allow-pickle" in out and "no model got a score" in err
    code, out, _ = _run([*args, "--allow-pickle"], capsys)
    assert code == 0 and "extracted" in out


def test_unknown_metric_fails_before_extraction(hub, capsys, tmp_path):
    code, _, err = _run(["rank", DATASET, "--model", hub.ids["timm_cnn"], "--loader", "timm", "--metrics", "logme,leap",
                         "--cache-dir", str(tmp_path / "c")], capsys)
    assert code == 2 and "unknown metric 'leap'" in err and "hf-tsel metrics" in err
    assert not (tmp_path / "c").exists()


def test_unwritable_cache_dir(hub, capsys, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    code, _, err = _run(["rank", DATASET, "--model", hub.ids["timm_cnn"], "--loader", "timm", "--cache-dir", str(tmp_path / "a-file" / "c")],
                        capsys)
    assert code == 2 and "cannot write the feature cache" in err and "--cache-dir" in err


def test_bad_output_suffix(hub, capsys, tmp_path):
    code, _, err = _run(["rank", DATASET, "--model", hub.ids["timm_cnn"], "--loader", "timm", "-o", str(tmp_path / "r.xlsx")], capsys)
    assert code == 2 and ".csv, .json or .parquet" in err


def test_unwritable_output_path_fails_before_any_work(hub, capsys, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    code, _, err = _run(["rank", DATASET, "--model", hub.ids["timm_cnn"], "--loader", "timm",
                         "-o", str(tmp_path / "a-file" / "r.json")], capsys)
    assert code == 2 and "cannot write --output" in err

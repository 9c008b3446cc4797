"""Inputs that used to give a plausible but wrong result with exit code 0."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hf_tsel.errors import EXIT_USER_ERROR
from hf_tsel.metrics.consensus import ANSWERS
from tests.helpers.data import image_dataset

pytestmark = pytest.mark.usefixtures("fake_models")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG" if image.mode == "I;16" else "TIFF")
    return buffer.getvalue()


@pytest.mark.parametrize("mode, levels, expected", [
    ("I;16", [4000, 30000, 61000], [4000 / 257, 30000 / 257, 61000 / 257]),
    ("I", [4000, 30000, 61000], [4000 / 257, 30000 / 257, 61000 / 257]),
    ("F", [0.1, 0.5, 0.9], [25.5, 127.5, 229.5]),
])
def test_high_bit_depth_greyscale_is_scaled_not_clipped(mode, levels, expected):
    import datasets

    from hf_tsel.data import load_image_dataset

    images, labels = [], []
    for label, level in enumerate(levels):
        for _ in range(3):
            array = np.full((8, 8), level, dtype=np.float32 if mode == "F" else np.int32)
            image = Image.fromarray(array.astype(np.uint16) if mode == "I;16" else array)
            assert image.mode == mode
            images.append({"bytes": _png(image), "path": None})
            labels.append(label)
    ds = datasets.Dataset.from_dict({"image": images, "label": labels},
                                    features=datasets.Features({"image": datasets.Image(),
                                                                "label": datasets.ClassLabel(names=["a", "b", "c"])}))
    data = load_image_dataset(ds)
    means = [np.asarray(data.load_image(i)).mean() for i in range(0, data.num_samples, 3)]
    assert means == pytest.approx(expected, abs=1.0)


def _with_corrupt_images(per_class: int, corrupt: dict[int, int]):
    """The test images, with the first ``corrupt[c]`` images of class ``c`` replaced by garbage bytes."""
    import datasets

    base = image_dataset(per_class=per_class)
    images = [{"bytes": _png(img), "path": None} for img in base["image"]]
    for label, count in corrupt.items():
        for row in [i for i, y in enumerate(base["label"]) if y == label][:count]:
            images[row] = {"bytes": b"this is not an image", "path": None}
    return datasets.Dataset.from_dict({"image": images, "label": base["label"]}, features=base.features)


@pytest.mark.parametrize("corrupt, message", [
    ({2: 4}, "class 'c2' lost all its images"),
    ({2: 3}, "class 'c2' has 1 readable image"),
])
def test_corrupt_images_that_empty_a_class(cli, fake_models, tmp_path, corrupt, message):
    zoo, _ = fake_models
    _with_corrupt_images(4, corrupt).save_to_disk(str(tmp_path / "ds"))
    code, out, err = cli(["rank", tmp_path / "ds", "--zoo", zoo, "--metrics", "logme,hscore", "--no-cache",
                          "-o", tmp_path / "r.json"])
    assert code == 0, err
    assert message in err and "2 remaining classes" in err
    assert len([line for line in err.splitlines() if "remaining classes" in line]) == 1  # said once, not per model
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["run"]["num_classes"] == 2
    assert {r["num_classes"] for r in results["records"]} == {2}
    assert all(r["score"] is not None for r in results["records"] if r["metric"] == "logme")


def test_split_on_a_saved_dataset_without_splits(cli, fake_models, tmp_path):
    zoo, _ = fake_models
    image_dataset(per_class=3).save_to_disk(str(tmp_path / "single"))
    code, _, err = cli(["rank", tmp_path / "single", "--split", "test", "--zoo", zoo, "--no-cache"])
    assert code == EXIT_USER_ERROR and "has no splits" in err and "--split" in err


def test_empty_metric_list(cli, fake_models, tmp_path):
    zoo, _ = fake_models
    code, _, err = cli(["rank", tmp_path, "--zoo", zoo, "--metrics", ""])
    assert code == EXIT_USER_ERROR and "--metrics" in err and "hf-tsel metrics" in err


def test_output_onto_an_existing_file(cli, fake_models, tmp_path):
    zoo, _ = fake_models
    image_dataset(per_class=3).save_to_disk(str(tmp_path / "ds"))
    precious = tmp_path / "results.json"
    precious.write_text('{"keep": "me"}')
    args = ["rank", tmp_path / "ds", "--zoo", zoo, "--metrics", "logme", "--no-cache", "-o", precious]
    code, _, err = cli(args)
    assert code == EXIT_USER_ERROR and "already exists" in err and "--overwrite" in err
    assert precious.read_text() == '{"keep": "me"}'
    code, _, err = cli([*args, "--overwrite"])
    assert code == 0 and json.loads(precious.read_text())["records"]


def test_output_csv_does_not_replace_a_run_file_beside_it(cli, fake_models, tmp_path):
    zoo, loads = fake_models
    image_dataset(per_class=3).save_to_disk(str(tmp_path / "ds"))
    precious = tmp_path / "results.run.json"  # where a .csv output's run metadata would go
    precious.write_text('{"keep": "me"}')
    args = ["rank", tmp_path / "ds", "--zoo", zoo, "--metrics", "logme", "--no-cache", "-o", tmp_path / "results.csv"]
    code, _, err = cli(args)
    assert code == EXIT_USER_ERROR and "results.run.json' already exists" in err and "--overwrite" in err
    assert precious.read_text() == '{"keep": "me"}' and not (tmp_path / "results.csv").exists() and not loads
    code, _, err = cli([*args, "--overwrite"])
    assert code == 0 and json.loads(precious.read_text())["dataset"]


def test_output_path_that_is_a_folder_is_refused_before_the_run(cli, fake_models, tmp_path):
    zoo, loads = fake_models
    (tmp_path / "out.csv").mkdir()
    code, _, err = cli(["rank", tmp_path / "nowhere", "--zoo", zoo, "-o", tmp_path / "out.csv"])
    assert code == EXIT_USER_ERROR and "is a folder" in err and not loads


def test_no_finite_score_is_an_error(cli, fake_models, tmp_path):
    from tests.helpers.models import write_zoo

    image_dataset(per_class=3).save_to_disk(str(tmp_path / "ds"))
    zoo = write_zoo(tmp_path / "missing.yaml", ["missing"])  # the fake loader fails every "missing*" model
    code, _, err = cli(["rank", tmp_path / "ds", "--zoo", zoo, "--metrics", "leep", "--no-cache"])
    assert code == EXIT_USER_ERROR and "no model got a score" in err


def test_a_metric_that_applies_to_no_model_is_shown_beside_the_answers_own(cli, fake_models, tmp_path):
    zoo, _ = fake_models
    image_dataset(per_class=3).save_to_disk(str(tmp_path / "ds"))
    code, _, _ = cli(["rank", tmp_path / "ds", "--zoo", zoo, "--model", "headless", "--metrics", "leep",
                      "--no-cache", "-o", tmp_path / "r.json"])
    table = pd.DataFrame(json.loads((tmp_path / "r.json").read_text())["records"]).set_index("metric")
    assert code == 0 and table.loc["leep", "note"].startswith("not applicable")  # no source head to read
    assert math.isfinite(table.loc[ANSWERS["finetune"].members[0], "score"])  # the answer's metric is always scored


@pytest.mark.parametrize("option, value", [("--config", "small"), ("--revision", "v2")])
def test_hub_only_options_on_a_local_dataset(cli, fake_models, tmp_path, option, value):
    zoo, loads = fake_models
    image_dataset(per_class=3).save_to_disk(str(tmp_path / "ds"))
    code, _, err = cli(["rank", tmp_path / "ds", option, value, "--zoo", zoo, "--no-cache"])
    assert code == EXIT_USER_ERROR and f"{option} {value!r}" in err and not loads

"""Results files: a ranking written as csv/json/parquet reads back with its run metadata; validation names the problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hf_tsel
from hf_tsel.errors import ResultsError
from hf_tsel.results import read_results, validate_results, write_results
from tests.helpers.data import image_dataset


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_results_files_roundtrip_with_run_metadata(tmp_path, fake_models, suffix):
    zoo, _ = fake_models
    df = hf_tsel.rank(image_dataset(per_class=4), zoo=str(zoo), metrics=["logme", "leep"], cache_dir=tmp_path)
    path = write_results(df, tmp_path / f"results{suffix}", df.attrs["run"])
    back, run = read_results(path)
    assert run["run_id"] == df.attrs["run"]["run_id"] and run["models"][0]["name"] == "alpha"
    pd.testing.assert_frame_equal(back[["model", "metric", "rank"]], df[["model", "metric", "rank"]])
    np.testing.assert_allclose(back["score"], df["score"])
    assert back["note"].isna().sum() == df["note"].isna().sum()


def test_results_validation_names_the_problem():
    with pytest.raises(ResultsError, match=r"required column\(s\) \[.*'metric'"):
        validate_results(pd.DataFrame({"model": ["m"]}))
    good = hf_tsel.results.empty_record(dataset="d", split="s", model="m", metric="x", score=1.0)
    with pytest.raises(ResultsError, match="unknown column"):
        validate_results(pd.DataFrame([{**good, "colour": "red"}]))
    with pytest.raises(ResultsError, match="'num_samples' must hold int"):
        validate_results(pd.DataFrame([{**good, "num_samples": "many"}]))

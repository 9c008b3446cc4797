"""``hf_tsel.extract``: the public extraction step, its progress events and its users (rank, ground truth); the
feature cache across runs (reuse, resume after an interrupt, a moved revision, a full disk, ``--from-cache``)."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import hf_tsel
from hf_tsel.data import load_image_dataset
from hf_tsel.extraction import MissingFeaturesError
from hf_tsel.features import CachedFeatures, FeatureCache
from hf_tsel.zoo import ZooEntry

from tests.helpers.data import image_dataset, write_imagefolder


def test_extract_returns_features_labels_and_status(tmp_path, fake_models):
    zoo, loads = fake_models
    events = []
    result = hf_tsel.extract(image_dataset(per_class=5), zoo=str(zoo), cache_dir=tmp_path, on_event=events.append)
    assert list(result) == ["alpha", "beta", "headless"] and result.parallel == "images"
    alpha = result["alpha"]
    assert alpha.status == "extracted" and alpha.features.features.shape == (15, 6)
    np.testing.assert_array_equal(alpha.labels, result.data.labels[alpha.features.positions])
    assert alpha.features.source_logits is not None and result["headless"].features.source_logits is None
    kinds = [e.kind for e in events]
    assert kinds[0] == "dataset" and kinds.count("extracting") == 3 and kinds.count("extracted") == 3
    assert sum(e.advance for e in events if e.model == "alpha") == 15
    again = hf_tsel.extract(image_dataset(per_class=5), zoo=str(zoo), cache_dir=tmp_path, from_cache=True)
    assert {o.status for o in again.values()} == {"cached"} and len(loads) == 3


def test_ground_truth_features_come_from_extract_reading_the_dataset_once(tmp_path, fake_models, monkeypatch):
    import hf_tsel.extraction.extract_models as extraction
    from hf_tsel.groundtruth.features import zoo_features

    zoo, _ = fake_models
    reads = []
    load = extraction.load_image_dataset
    monkeypatch.setattr(extraction, "load_image_dataset", lambda *a, **k: reads.append(a) or load(*a, **k))
    result = zoo_features(image_dataset(per_class=4), str(zoo), cache_dir=tmp_path)
    assert len(reads) == 1 and set(result.features) == {"alpha", "beta", "headless"} and not result.failures
    keys = result.feature_keys()
    assert all(keys.values()) and len(set(keys.values())) == 3  # fresh extractions carry their cache key


def test_the_library_prints_nothing():
    """Terminal output (rich, tqdm, print) belongs to the CLI layer, hf_tsel/cli.py and hf_tsel/commands/."""
    package = Path(hf_tsel.__file__).parent
    for path in package.rglob("*.py"):
        if path.name == "cli.py" or "commands" in path.relative_to(package).parts:
            continue
        code = path.read_text(encoding="utf-8")
        for needle in ("import rich", "from rich", "tqdm", "print(", "sys.stdout", "sys.stderr"):
            offending = [line for line in code.splitlines() if needle in line and not line.strip().startswith(("#", '"', "``"))
                         and "print(list_metrics())" not in line]
            assert not offending, f"{path.relative_to(package)}: {offending}"


def test_second_run_and_other_metrics_load_no_model(tmp_path, fake_models):
    zoo, loads = fake_models
    ds = image_dataset(per_class=6)
    first = hf_tsel.rank(ds, zoo=str(zoo), metrics=["logme"], cache_dir=tmp_path / "c")
    assert [m["status"] for m in first.attrs["run"]["models"]] == ["extracted"] * 3
    assert sorted(loads) == ["alpha", "beta", "headless"]
    again = hf_tsel.rank(ds, zoo=str(zoo), metrics=["hscore", "leep"], cache_dir=tmp_path / "c")
    assert [m["status"] for m in again.attrs["run"]["models"]] == ["cached"] * 3
    assert len(loads) == 3  # no model was loaded the second time
    # every run adds the consensus rows and the scores of the answer's metric (etran_lda for fine-tuning)
    assert set(again["metric"]) == {"hscore", "leep", "etran_lda", "consensus"}
    leep = again[again.metric == "leep"].set_index("model")
    assert leep.loc["alpha", "score"] < 0 and np.isnan(leep.loc["headless", "score"])  # LEEP is a log-likelihood


def test_resume_after_interrupt_reuses_finished_chunks(tmp_path, fake_models, monkeypatch):
    zoo, loads = fake_models
    ds = image_dataset(per_class=8)
    import hf_tsel.extraction.extract_models as extraction

    original = extraction.extract_features
    calls = {"chunks": 0}

    def interrupted(*args, on_chunk=None, **kwargs):
        def checkpoint_then_stop(*chunk):
            on_chunk(*chunk)
            calls["chunks"] += 1
            if calls["chunks"] == 2:
                raise KeyboardInterrupt
        return original(*args, on_chunk=checkpoint_then_stop, **kwargs)

    monkeypatch.setattr(extraction, "extract_features", interrupted)
    with pytest.raises(KeyboardInterrupt):
        hf_tsel.rank(ds, zoo=str(zoo), metrics=["logme"], cache_dir=tmp_path / "c", chunk_size=5)
    assert FeatureCache(tmp_path / "c").partial_entries()  # alpha's 2 chunks are checkpointed
    monkeypatch.setattr(extraction, "extract_features", original)
    resumed = hf_tsel.rank(ds, zoo=str(zoo), metrics=["logme"], cache_dir=tmp_path / "c", chunk_size=5)
    statuses = {m["name"]: m["status"] for m in resumed.attrs["run"]["models"]}
    assert statuses == {"alpha": "resumed", "beta": "extracted", "headless": "extracted"}
    fresh = hf_tsel.rank(ds, zoo=str(zoo), metrics=["logme"], use_cache=False)
    pd_scores = resumed.set_index("model")["score"]
    np.testing.assert_allclose(pd_scores.loc[["alpha", "beta"]], fresh.set_index("model")["score"].loc[["alpha", "beta"]])


@pytest.mark.slow  # ~4 s: two extractions (fast-lane budget)
def test_changed_model_revision_invalidates_the_entry(tmp_path, fake_models, monkeypatch):
    zoo, loads = fake_models
    ds = image_dataset(per_class=4)
    hf_tsel.rank(ds, zoo=str(zoo), metrics=["logme"], cache_dir=tmp_path / "c")
    import hf_tsel.extraction.extract_models as extraction

    monkeypatch.setattr(extraction, "current_commit", lambda hub_id, revision: "0" * 40)  # the branch moved
    again = hf_tsel.rank(ds, zoo=str(zoo), metrics=["logme"], cache_dir=tmp_path / "c")
    assert {m["status"] for m in again.attrs["run"]["models"]} == {"extracted"}


def test_full_disk_warns_and_loses_nothing(tmp_path, fake_models, monkeypatch):
    zoo, loads = fake_models
    import safetensors.torch

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.warns(UserWarning, match="disk is full"):
        df = hf_tsel.rank(image_dataset(per_class=4), zoo=str(zoo), metrics=["logme"], cache_dir=tmp_path / "c")
    assert df["score"].notna().all() and "disk is full" in df.attrs["run"]["cache_error"]
    assert not list((tmp_path / "c").rglob("*.tmp"))


@pytest.mark.parametrize("is_main_process", [True, False])
def test_only_the_deciding_process_asks_the_hub_for_the_revision(tmp_path, monkeypatch, is_main_process):
    """In an image-parallel run the main process decides on the cache alone: the other processes must not
    each send the Hub a request per model (8 GPUs would ask 8 times)."""
    from types import SimpleNamespace

    from hf_tsel.extraction import coordination, extract_models
    from hf_tsel.extraction.cache_writes import CacheWrites

    data = load_image_dataset(image_dataset(per_class=2))
    entry, cache = ZooEntry(name="alpha", hub_id="fake/alpha", loader="timm"), FeatureCache(tmp_path)
    accelerator = SimpleNamespace(num_processes=2, is_main_process=is_main_process, process_index=int(not is_main_process))
    run = coordination.Run(data, cache, CacheWrites(cache), accelerator, {}, 4, 0, 8, None, split_images=True)
    cache.save(run.key(entry), CachedFeatures(torch.randn(data.num_samples, 3), np.arange(data.num_samples), None,
                                              {"model": entry.name, "model_revision": "a" * 40}))
    asked = []
    monkeypatch.setattr(extract_models, "current_commit", lambda hub_id, revision: asked.append(hub_id) or "a" * 40)

    def broadcast(box):  # stands in for the collective: every process gets the main one's decision (reuse)
        box[0] = box[0] if is_main_process else True

    monkeypatch.setattr(coordination, "broadcast_object_list", broadcast)
    outcome = extract_models._features_for(entry, run)
    assert outcome.status == "cached"
    assert asked == ([entry.hub_id] if is_main_process else [])


def test_from_cache_names_the_missing_models_and_how_to_extract_them(tmp_path, fake_models, capsys):
    from hf_tsel.cli import main

    zoo, loads = fake_models
    data = write_imagefolder(tmp_path / "images")
    hf_tsel.extract(str(data), zoo=str(zoo), models=["alpha"], cache_dir=tmp_path / "c", samples_per_class=4)
    with pytest.raises(MissingFeaturesError, match="2 model.*beta, headless") as error:
        hf_tsel.rank(str(data), zoo=str(zoo), cache_dir=tmp_path / "c", samples_per_class=4, from_cache=True)
    assert error.value.missing == ["beta", "headless"] and loads == ["alpha"]
    args = ["rank", str(data), "--zoo", str(zoo), "--samples-per-class", "4", "--cache-dir", str(tmp_path / "c")]
    assert main([*args, "--from-cache", "-q"]) == 2
    message = capsys.readouterr().err
    assert "beta, headless" in message and "Traceback" not in message
    command = re.search(r"extract them first with: (.*)$", message.strip()).group(1)
    assert command.startswith("hf-tsel extract ") and "--model beta --model headless" in command
    assert main(command.split()[1:] + ["-q"]) == 0  # the advice works as printed
    assert main([*args, "--from-cache", "-q"]) == 0 and sorted(loads) == ["alpha", "beta", "headless"]

"""Feature extraction (order, corrupt images, OOM fallback) and the feature cache (reuse, resume, atomicity)."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import torch

import hf_tsel
from hf_tsel.data import load_image_dataset
from hf_tsel.features import CachedFeatures, FeatureCache, extract_features
from hf_tsel.zoo import ZooEntry

from .data_fixtures import FakeBackbone, fake_models, image_dataset, png_bytes  # noqa: F401 (fixture)


def _entry(name: str = "alpha") -> ZooEntry:
    return ZooEntry(name=name, hub_id=f"fake/{name}", loader="timm")


def _reference_features(data, backbone) -> torch.Tensor:
    batch = torch.stack([backbone.transform(data.load_image(i)) for i in range(data.num_samples)])
    return backbone.embed(batch)[0]


def test_extraction_keeps_dataset_order_across_chunks_and_batches():
    data = load_image_dataset(image_dataset(per_class=7))
    backbone = FakeBackbone(_entry())
    result = extract_features(backbone, data, batch_size=4, chunk_size=10)
    assert result.positions.tolist() == list(range(data.num_samples))
    torch.testing.assert_close(result.features, _reference_features(data, backbone))
    assert result.source_logits.shape == (data.num_samples, 5) and result.num_corrupt == 0


def test_accelerator_settings_can_change_between_runs():
    from hf_tsel.features import make_accelerator

    assert make_accelerator("cpu", "bf16").mixed_precision == "bf16"
    accelerator = make_accelerator("cpu")
    assert accelerator.mixed_precision == "no" and accelerator.device.type == "cpu"


def test_dataloader_workers_give_the_same_features():
    data = load_image_dataset(image_dataset(per_class=3))
    backbone = FakeBackbone(_entry())
    result = extract_features(backbone, data, batch_size=4, num_workers=2)
    torch.testing.assert_close(result.features, _reference_features(data, backbone))


def test_corrupt_images_are_counted_and_skipped():
    import datasets

    ds = image_dataset(per_class=4)
    images = [{"bytes": png_bytes(ds[i]["image"]), "path": None} for i in range(len(ds))]
    images[5] = {"bytes": b"\x89PNG broken", "path": None}
    ds = datasets.Dataset.from_dict({"image": images, "label": ds["label"][:]},
                                    features=datasets.Features({"image": datasets.Image(), "label": ds.features["label"]}))
    result = extract_features(FakeBackbone(_entry()), load_image_dataset(ds), batch_size=3, chunk_size=5)
    assert result.num_corrupt == 1 and 5 not in result.positions and len(result.features) == 11


def test_cuda_oom_halves_the_batch_and_continues():
    data = load_image_dataset(image_dataset(per_class=4))
    backbone = FakeBackbone(_entry())
    embed = backbone.embed
    sizes = []

    def embed_with_small_memory(batch):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return embed(batch)

    backbone.embed = embed_with_small_memory
    result = extract_features(backbone, data, batch_size=8)
    torch.testing.assert_close(result.features, _reference_features(data, FakeBackbone(_entry())))
    assert sizes[:3] == [8, 4, 2] and max(sizes[3:]) == 2  # the smaller size sticks


def test_cache_roundtrip_is_atomic_and_listable(tmp_path):
    cache = FeatureCache(tmp_path)
    k1, k2 = "1" * 32, "2" * 32  # clear() deletes only folders named like cache keys
    features = CachedFeatures(torch.randn(5, 3), np.arange(5), torch.randn(5, 2), {"model": "m", "dataset": "d"})
    cache.save(k1, features)
    loaded = cache.load(k1)
    torch.testing.assert_close(loaded.features, features.features)
    torch.testing.assert_close(loaded.source_logits, features.source_logits)
    assert loaded.manifest["feature_dim"] == 3 and not list(tmp_path.rglob("*.tmp"))
    cache.save_chunk(k2, 0, torch.ones(2, 3), np.arange(2), None, revision="r1")
    assert cache.partial_entries() == [k2] and cache.load(k2) is None
    assert list(cache.load_chunks(k2, revision="r1")) == [0] and cache.load_chunks(k2, revision="r2") == {}
    assert [e["model"] for e in cache.entries()] == ["m"]
    # a kill between an entry's manifest and the removal of its chunks leaves them behind: loading cleans up
    cache.save_chunk(k1, 0, torch.ones(2, 3), np.arange(2), None, revision="r1")
    assert cache.load(k1) is not None and not (tmp_path / k1 / "chunks").exists()
    assert cache.clear(model="other") == 0 and cache.clear(model="m") == 1 and cache.load(k1) is None


def test_second_run_and_other_metrics_load_no_model(tmp_path, fake_models):
    zoo, loads = fake_models
    ds = image_dataset(per_class=6)
    first = hf_tsel.rank(ds, zoo=str(zoo), metrics=["logme"], cache_dir=tmp_path / "c")
    assert [m["status"] for m in first.attrs["run"]["models"]] == ["extracted"] * 3
    assert sorted(loads) == ["alpha", "beta", "headless"]
    again = hf_tsel.rank(ds, zoo=str(zoo), metrics=["hscore", "leep"], cache_dir=tmp_path / "c")
    assert [m["status"] for m in again.attrs["run"]["models"]] == ["cached"] * 3
    assert len(loads) == 3  # no model was loaded the second time
    assert set(again["metric"]) == {"hscore", "leep", "consensus"}  # every run adds the consensus rows
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
    entry, cache = _entry(), FeatureCache(tmp_path)
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

"""The feature cache on disk: atomic saves, chunk checkpoints of a partial entry, listing and clearing."""

from __future__ import annotations

import numpy as np
import torch

from hf_tsel.features import CachedFeatures, FeatureCache


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

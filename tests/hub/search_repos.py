"""Hub stand-ins for zoo searches: model repos with model cards, the skip cases, a mini-imagenet stand-in, and a
1,000-model listing for the scale test."""

from __future__ import annotations

import json

import numpy as np
import yaml

from . import repos
from .server import HubServer, safetensors_header_only

DATASET = "test-org/tiny-images"
CLASSES = ["circle", "square", "star", "cross"]
# Classes of the mini-imagenet stand-in: WordNet ids of ImageNet-1k (house finch, robin, triceratops)
MINI_IMAGENET_WNIDS = ["n01532829", "n01558993", "n01704323"]
MINI_IMAGENET_INDICES = [12, 15, 51]  # their ImageNet-1k class indices (timm's table)


def card(library: str, *, license: str = "apache-2.0", tags: tuple[str, ...] = (), datasets: tuple[str, ...] = (),
         top1: float | None = None, pipeline_tag: str = "image-classification") -> bytes:
    """A README.md whose YAML header is what the Hub reads: library, licence, tags, datasets, model-index."""
    header: dict = {"library_name": library, "license": license, "pipeline_tag": pipeline_tag,
                    "tags": [pipeline_tag, library, *tags]}
    if datasets:
        header["datasets"] = list(datasets)
    if top1 is not None:
        header["model-index"] = [{"name": "model", "results": [{
            "task": {"type": "image-classification"}, "dataset": {"type": "imagenet-1k", "name": "ImageNet"},
            "metrics": [{"type": "accuracy", "value": top1, "name": "Top 1 Accuracy"}]}]}]
    return f"---\n{yaml.safe_dump(header, sort_keys=False)}---\n# test model\n".encode()


def _timm(architecture: str, seed: int, model_card: bytes, **model_args) -> dict[str, bytes]:
    return {**repos.timm_repo(architecture, seed=seed, **model_args), "README.md": model_card}


def seed_search_hub(hub: HubServer) -> dict[str, str]:
    """Loadable models with cards, every skip case and the reference set; returns ``{repo: why it is there}``."""
    vit_args = {"num_classes": 0, "img_size": repos.IMAGE_SIZE}
    hub.add_repo("search-org/tiny-resnet.tv_in1k", _timm("test_resnet", 0, card(
        "timm", license="bsd-3-clause", datasets=("imagenet-1k",), top1=0.7215), num_classes=10), downloads=900)
    hub.add_repo("search-org/tiny-vit.dino", _timm("test_vit", 1, card("timm", tags=("dino",)), **vit_args),
                 downloads=800)
    hub.add_repo("search-org/tiny-effnet", _timm("test_efficientnet", 2, card("timm", license="mit"), num_classes=0),
                 downloads=700)
    hub.add_repo("search-org/gated-vit", _timm("test_vit", 3, card("timm"), **vit_args), gated=True, downloads=600)
    pickle_only = {k: v for k, v in repos.timm_repo("test_resnet", seed=4, num_classes=0).items()
                   if not k.endswith(".safetensors")}
    hub.add_repo("search-org/pickle-resnet", {**pickle_only, "pytorch_model.bin": b"\x80\x02fake pickle\x00",
                                              "README.md": card("timm")}, downloads=500)
    hub.add_repo("search-org/custom-net", {"config.json": json.dumps({"architecture": "resnet18", "auto_map": {
        "AutoModel": "modeling.Net"}}).encode(), "model.safetensors": safetensors_header_only(1000),
        "README.md": card("timm")}, downloads=400)
    hub.add_repo("search-org/odd-arch", {"config.json": json.dumps({"architecture": "no_such_net"}).encode(),
                                         "model.safetensors": safetensors_header_only(1000),
                                         "README.md": card("timm")}, downloads=300)
    hub.add_repo("search-org/huge-vit", {"config.json": json.dumps({"architecture": "vit_large_patch16_224"}).encode(),
                                         "model.safetensors": safetensors_header_only(304_000_000),
                                         "README.md": card("timm")}, downloads=200)
    hub.add_repo("search-org/tiny-hf-vit", {**repos.transformers_vit_repo(seed=5), "README.md": card(
        "transformers", pipeline_tag="image-feature-extraction")}, downloads=100)
    hub.add_repo(DATASET, repos.image_dataset_repo(CLASSES, per_class=6, seed=1), repo_type="dataset")
    hub.add_repo("timm/mini-imagenet", mini_imagenet_repo(per_class=6), repo_type="dataset")
    return {"search-org/gated-vit": "gated", "search-org/pickle-resnet": "no safetensors",
            "search-org/custom-net": "custom code", "search-org/odd-arch": "unsupported architecture"}


def mini_imagenet_repo(*, per_class: int) -> dict[str, bytes]:
    """A small stand-in of ``timm/mini-imagenet``: split ``test``, a ClassLabel of WordNet ids."""
    files = repos.image_dataset_repo(MINI_IMAGENET_WNIDS, per_class=per_class, seed=7)
    readme = ("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: test\n"
              "    path: data/test-*\n---\n# mini-imagenet stand-in\n")
    return {"README.md": readme.encode(), "data/test-00000-of-00001.parquet": files["data/train-00000-of-00001.parquet"]}


def seed_scale_hub(hub: HubServer, count: int = 1000, seed: int = 0) -> None:
    """``count`` timm repos known by their metadata only (header-only safetensors of 1M to 300M parameters)."""
    rng = np.random.default_rng(seed)
    architectures = ["resnet18", "resnet50", "vit_small_patch16_224", "efficientnet_b0", "convnext_tiny"]
    licenses = ["apache-2.0", "mit", "bsd-3-clause", "cc-by-nc-4.0"]
    for i in range(count):
        arch = architectures[i % len(architectures)]
        size, side = int(rng.integers(1_000_000, 300_000_000)), int(rng.choice([160, 224, 288, 384]))
        files = {"config.json": json.dumps({"architecture": arch,
                                            "pretrained_cfg": {"input_size": [3, side, side]}}).encode(),
                 "model.safetensors": safetensors_header_only(size),
                 "README.md": card("timm", license=licenses[i % len(licenses)],
                                   top1=round(float(rng.uniform(0.6, 0.85)), 4) if i % 3 else None)}
        hub.add_repo(f"scale-org/{arch}.m{i:04d}", files, downloads=int(rng.integers(0, 100_000)))

"""The Hub stand-in of this session, seeded with tiny model and dataset repos (built once, ~10 s)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from . import repos
from .repos import CLASSES, DATASET
from .server import HubServer



@dataclass
class SeededHub:
    """The running server and the commits tests pin to."""

    server: HubServer
    resnet_v1: str  # first commit of test-org/tiny-resnet (main has other weights)
    dataset_v1: str  # first commit of the dataset: 3 classes (main has 4)


@pytest.fixture(scope="session")
def seeded_hub():
    """Repos:

    ====================== ======================================================================
    test-org/tiny-resnet   timm ``test_resnet`` with a 10-class head; two commits
    test-org/tiny-vit      timm ``test_vit``, no head
    test-org/tiny-hf-vit   transformers ``ViTModel`` + ``preprocessor_config.json``
    test-org/gated-vit     timm ``test_vit`` in a gated repo (files answer 401/403 ``GatedRepo``)
    test-org/cut-resnet    timm ``test_resnet``; tests may cut its weight download half-way
    test-org/tiny-images   parquet image dataset; v1: 3 classes x 8 images, main: 4 classes x 6
    test-org/gated-images  the v1 dataset in a gated repo
    test-org/text-only     dataset with a text column instead of images
    test-org/no-labels     dataset with images and captions but no label column
    ====================== ======================================================================
    """
    with HubServer() as hub:
        resnet_v1 = hub.add_repo("test-org/tiny-resnet", repos.timm_repo("test_resnet", seed=0, num_classes=10))
        hub.commit("test-org/tiny-resnet", repos.timm_repo("test_resnet", seed=1, num_classes=10))
        vit = repos.timm_repo("test_vit", seed=2, num_classes=0, img_size=repos.IMAGE_SIZE)
        hub.add_repo("test-org/tiny-vit", vit)
        hub.add_repo("test-org/gated-vit", vit, gated=True)
        hub.add_repo("test-org/tiny-hf-vit", repos.transformers_vit_repo(seed=3))
        hub.add_repo("test-org/cut-resnet", repos.timm_repo("test_resnet", seed=4, num_classes=10))
        first_images = repos.image_dataset_repo(CLASSES[:3], per_class=8, seed=0)
        dataset_v1 = hub.add_repo(DATASET, first_images, repo_type="dataset")
        hub.add_repo("test-org/gated-images", first_images, repo_type="dataset", gated=True)
        hub.commit(DATASET, repos.image_dataset_repo(CLASSES, per_class=6, seed=1), repo_type="dataset")
        hub.add_repo("test-org/text-only", repos.image_dataset_repo(CLASSES, per_class=4, seed=0, image=False),
                     repo_type="dataset")
        hub.add_repo("test-org/no-labels", repos.image_dataset_repo(CLASSES, per_class=4, seed=0, label=False),
                     repo_type="dataset")
        yield SeededHub(hub, resnet_v1, dataset_v1)

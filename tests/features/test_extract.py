"""Feature extraction of one model: dataset order across chunks and batches, workers, corrupt images, OOM fallback."""

from __future__ import annotations

import torch

from hf_tsel.data import load_image_dataset
from hf_tsel.features import extract_features
from hf_tsel.zoo import ZooEntry

from tests.helpers.data import image_dataset, with_corrupt_image
from tests.helpers.models import FakeBackbone


def _entry(name: str = "alpha") -> ZooEntry:
    return ZooEntry(name=name, hub_id=f"fake/{name}", loader="timm")


def _reference_features(data, backbone) -> torch.Tensor:
    batch = torch.stack([backbone.transform(data.load_image(i)) for i in range(data.num_samples)])
    return backbone.embed(batch)[0]


def test_extraction_keeps_dataset_order_across_chunks_and_batches():
    data = load_image_dataset(image_dataset(per_class=7))
    backbone = FakeBackbone(_entry())
    result = extract_features(backbone, data, batch_size=4, chunk_size=10)
    assert result.positions.tolist() == list(range(data.num_samples))
    torch.testing.assert_close(result.features, _reference_features(data, backbone))
    assert result.source_logits.shape == (data.num_samples, 5) and result.num_corrupt == 0


def test_accelerator_settings_can_change_between_runs():
    from hf_tsel.features import make_accelerator

    assert make_accelerator("cpu", "bf16").mixed_precision == "bf16"
    accelerator = make_accelerator("cpu")
    assert accelerator.mixed_precision == "no" and accelerator.device.type == "cpu"


def test_dataloader_workers_give_the_same_features():
    data = load_image_dataset(image_dataset(per_class=3))
    backbone = FakeBackbone(_entry())
    result = extract_features(backbone, data, batch_size=4, num_workers=2)
    torch.testing.assert_close(result.features, _reference_features(data, backbone))


def test_corrupt_images_are_counted_and_skipped():
    ds = with_corrupt_image(per_class=4, row=5, payload=b"\x89PNG broken")
    result = extract_features(FakeBackbone(_entry()), load_image_dataset(ds), batch_size=3, chunk_size=5)
    assert result.num_corrupt == 1 and 5 not in result.positions and len(result.features) == 11


def test_cuda_oom_halves_the_batch_and_continues():
    data = load_image_dataset(image_dataset(per_class=4))
    backbone = FakeBackbone(_entry())
    embed = backbone.embed
    sizes = []

    def embed_with_small_memory(batch):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return embed(batch)

    backbone.embed = embed_with_small_memory
    result = extract_features(backbone, data, batch_size=8)
    torch.testing.assert_close(result.features, _reference_features(data, FakeBackbone(_entry())))
    assert sizes[:3] == [8, 4, 2] and max(sizes[3:]) == 2  # the smaller size sticks

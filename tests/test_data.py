"""Dataset loading (memory, imagefolder, save_to_disk, Hub-cache snapshot offline), column detection, sampling."""

from __future__ import annotations

import numpy as np
import pytest

from hf_tsel.data import CorruptImageError, DataError, load_image_dataset, stratified_sample

from tests.helpers.data import DATASET_SHA, image_dataset, with_corrupt_image, write_hub_dataset, write_imagefolder


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """Keep the datasets builder cache (imagefolder/parquet preparation) inside the test's folder."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache")


def test_in_memory_dataset_columns_sampling_and_rgb():
    data = load_image_dataset(image_dataset(per_class=8), samples_per_class=5, seed=1)
    assert (data.image_column, data.label_column) == ("image", "label")
    assert data.class_names == ["c0", "c1", "c2"]
    assert np.bincount(data.labels).tolist() == [5, 5, 5]
    assert (np.diff(data.indices) > 0).all()  # dataset order
    modes = {data.load_image(i).mode for i in range(data.num_samples)}
    assert modes == {"RGB"}
    whole = load_image_dataset(image_dataset(per_class=8))
    assert whole.load_image(1).mode == "RGB" and whole.load_image(2).mode == "RGB"  # were L and RGBA


def test_sampling_is_seeded_and_stratified():
    labels = np.repeat([0, 1, 2], [10, 20, 30])
    first, again = stratified_sample(labels, max_samples=30, seed=3), stratified_sample(labels, max_samples=30, seed=3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, stratified_sample(labels, max_samples=30, seed=4))
    assert np.bincount(labels[first]).tolist() == [5, 10, 15]
    both = stratified_sample(labels, samples_per_class=10, max_samples=20, seed=0)
    assert np.bincount(labels[both]).tolist() == [7, 7, 6]  # equal remainders: the first classes get the extra


def test_fewer_samples_than_requested_warns_and_keeps_all():
    labels = np.repeat([0, 1], [3, 10])
    with pytest.warns(UserWarning, match="fewer than the 5 samples per class"):
        chosen = stratified_sample(labels, samples_per_class=5)
    assert np.bincount(labels[chosen]).tolist() == [3, 5]
    with pytest.warns(UserWarning, match="only 13 are available"):
        assert len(stratified_sample(labels, max_samples=100)) == 13


def test_imagefolder_and_save_to_disk(tmp_path):
    folder = write_imagefolder(tmp_path / "folder", per_class=4)
    data = load_image_dataset(str(folder), split="train")
    assert data.num_samples == 12 and data.class_names == ["c0", "c1", "c2"]
    assert data.load_image(0).size == (16, 16)

    import datasets

    image_dataset(per_class=4).save_to_disk(str(tmp_path / "single"))
    assert load_image_dataset(str(tmp_path / "single")).num_samples == 12
    datasets.DatasetDict({"test": image_dataset(per_class=3)}).save_to_disk(str(tmp_path / "dict"))
    assert load_image_dataset(str(tmp_path / "dict"), split="test").num_samples == 9
    with pytest.raises(DataError, match=r"no split 'train'.*\['test'\]"):
        load_image_dataset(str(tmp_path / "dict"), split="train")


def test_hub_dataset_loads_offline_from_the_hub_cache(offline_hub):
    write_hub_dataset(offline_hub.hub_dir, "hf-tsel-test/tiny-images",
                      {"train": image_dataset(per_class=6), "test": image_dataset(per_class=2)})
    data = load_image_dataset("hf-tsel-test/tiny-images", split="test")
    assert data.num_samples == 6 and data.revision == DATASET_SHA
    assert data.fingerprint == f"hub:hf-tsel-test/tiny-images@{DATASET_SHA}"
    train = load_image_dataset("hf-tsel-test/tiny-images", split="train", samples_per_class=4)
    assert train.num_samples == 12 and train.sample_key != data.sample_key


def test_label_detection_prefers_classlabel_and_accepts_overrides():
    import datasets

    n = 24
    data = load_image_dataset(image_dataset(per_class=8, weight=([0.5] * n, datasets.Value("float32")),
                                            animal=(["cat", "dog"] * (n // 2), datasets.Value("string"))))
    assert data.label_column == "label"
    by_string = load_image_dataset(image_dataset(per_class=8, animal=(["cat", "dog"] * (n // 2), datasets.Value("string"))),
                                   label_column="animal")
    assert by_string.class_names == ["cat", "dog"] and np.bincount(by_string.labels).tolist() == [12, 12]


def test_unlabelled_rows_are_skipped():
    import datasets

    ds = image_dataset(per_class=4)
    labels = ds["label"][:]
    labels[0] = -1
    ds = ds.cast_column("label", datasets.Value("int64")).remove_columns("label").add_column("label", labels)
    with pytest.warns(UserWarning, match=r"1 rows labelled -1 \(no label\) are skipped"):
        data = load_image_dataset(ds)
    assert data.num_samples == 11 and 0 not in data.indices


def test_corrupt_image_raises_a_countable_error():
    ds = with_corrupt_image(per_class=3, row=4, payload=b"not an image")
    data = load_image_dataset(ds)
    assert data.load_image(3).mode == "RGB"
    with pytest.raises(CorruptImageError, match="row 4"):
        data.load_image(4)


def test_fingerprint_is_stable_and_sample_dependent():
    a = load_image_dataset(image_dataset(per_class=8), samples_per_class=4, seed=0)
    b = load_image_dataset(image_dataset(per_class=8), samples_per_class=4, seed=0)
    c = load_image_dataset(image_dataset(per_class=8), samples_per_class=4, seed=1)
    assert a.sample_key == b.sample_key != c.sample_key


def test_script_based_hub_dataset_falls_back_to_the_parquet_branch(monkeypatch):
    """Online path, with the two Hub calls replaced: a loading-script error triggers refs/convert/parquet."""
    import datasets
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    calls = []

    def load_dataset(repo_id, config=None, *, split, revision=None):
        calls.append(revision)
        if revision is None:
            raise RuntimeError("Dataset scripts are no longer supported, but found cars.py")
        return image_dataset(per_class=3)

    class Info:
        sha = "e" * 40

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", lambda self, repo_id, revision=None: Info())
    monkeypatch.setattr("hf_tsel.data.require_hub", lambda what: None)  # no network here
    data = load_image_dataset("someone/cars", split="train")
    assert calls == [None, "refs/convert/parquet"]
    assert data.revision == "e" * 40 and data.fingerprint == f"hub:someone/cars@{'e' * 40}"


def test_packaged_demo_datasets():
    from hf_tsel.commands.demo import demo_dataset
    from hf_tsel.offline.packaged_data import FASHION_MNIST_DIR

    digits = load_image_dataset(demo_dataset("digits", samples_per_class=3))
    assert digits.num_samples == 30 and digits.class_names == [str(d) for d in range(10)]
    assert digits.load_image(0).size == (8, 8) and digits.load_image(0).mode == "RGB"
    if not FASHION_MNIST_DIR.is_dir():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist; .ci/run installs it)")
    fashion = load_image_dataset(demo_dataset("fashion-mnist", split="test", samples_per_class=2))
    assert fashion.num_samples == 20 and fashion.class_names[9] == "boot"
    assert fashion.load_image(0).size == (28, 28)

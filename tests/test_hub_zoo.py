"""Hub search zoos without the network: query syntax, facts read from Hub metadata, skip reasons, the written YAML,
and the ImageNet source references of the bundled zoos (issue 19)."""

from __future__ import annotations

import numpy as np
import pytest
from huggingface_hub.hf_api import ModelInfo

from hf_tsel.errors import UserError, ZooError
from hf_tsel.hub_facts import entry_or_reason, family_and_pretraining, imagenet_top1, input_size
from hf_tsel.hub_zoo import HubQuery, HubSearch, parse_count, write_zoo
from hf_tsel.source_reference import IMAGENET_REFERENCE, SourceReference
from hf_tsel.zoo import load_zoo, zoo_metadata

SHA = "a" * 40


def info(repo_id: str = "timm/resnet50.tv_in1k", *, library: str = "timm", tags=(), config=None, params=25_557_032,
         card=None, gated=False, files=("model.safetensors",), sha=SHA) -> ModelInfo:
    """A ModelInfo as ``list_models(expand=...)`` returns it."""
    return ModelInfo(id=repo_id, sha=sha, library_name=library, tags=[library, *tags], gated=gated,
                     config=config if config is not None else {}, cardData=card or {"license": "apache-2.0"},
                     safetensors={"parameters": {"F32": params}, "total": params} if params else None,
                     siblings=[{"rfilename": f} for f in files], downloads=10)


@pytest.mark.parametrize("text, expected", [
    ("library=timm&max-params=30M&limit=50", "library=timm&max-params=30M&sort=downloads&limit=50"),
    ("resnet&library=timm,transformers&license=mit,apache-2.0&min_downloads=1k&sort=likes",
     "search=resnet&library=timm,transformers&license=mit,apache-2.0&min-downloads=1k&sort=likes&limit=50"),
    ("hub:tags=dino&author=facebook&pipeline-tag=image-feature-extraction",
     "library=timm&pipeline-tag=image-feature-extraction&tags=dino&author=facebook&sort=downloads&limit=50"),
])
def test_query_round_trips(text, expected):
    query = HubQuery.parse(text)
    assert str(query) == expected and HubQuery.parse(str(query)) == query


@pytest.mark.parametrize("text, message", [
    ("libary=timm", "unknown Hub search key 'libary'"),
    ("library=keras", "library keras is not supported"),
    ("max-params=lots", "expected a count such as 800k, 30M or 1.5B"),
    ("sort=stars", "unknown sort 'stars'"),
])
def test_query_mistakes_are_named(text, message):
    with pytest.raises(ZooError, match=message):
        HubQuery.parse(text)


def test_counts():
    assert [parse_count(t) for t in ("800k", "30M", "1.5B", "12")] == [800_000, 30_000_000, 1_500_000_000, 12]
    with pytest.raises(UserError):
        HubQuery(limit=0)


@pytest.mark.parametrize("repo_id, tags, expected", [
    ("timm/vit_small_patch14_dinov2.lvd142m", ["dino"], ("dinov2", "self-supervised")),
    ("timm/vit_base_patch16_224.mae", [], ("mae", "self-supervised")),
    ("timm/vit_base_patch16_clip_224.openai", [], ("clip", "language-supervised")),
    ("timm/vit_base_patch16_clip_224.openai_ft_in1k", [], ("clip", "supervised")),  # fine-tuned on ImageNet
    ("timm/densenet121.tv_in1k", [], ("supervised-cnn", "supervised")),
    ("timm/vit_base_patch16_224.augreg_in21k", [], ("vit-supervised", "supervised")),
    ("someone/dino-clip-hybrid", [], ("unknown", "unknown")),  # two families: ambiguous
    ("someone/my-backbone", [], ("unknown", "unknown")),
])
def test_family_only_where_unambiguous(repo_id, tags, expected):
    assert family_and_pretraining(repo_id, tags) == expected


def test_imagenet_top1_from_the_model_index_only():
    def card(dataset: str, metric: str, value) -> dict:
        return {"model-index": [{"results": [{"dataset": {"type": dataset}, "metrics": [{"type": metric,
                                                                                           "value": value}]}]}]}

    assert imagenet_top1(card("imagenet-1k", "accuracy", 0.8012)) == 80.12
    assert imagenet_top1(card("ILSVRC/imagenet-1k", "top-1", 76.1)) == 76.1
    assert imagenet_top1(card("imagenet-1k", "top-5", 95.0)) is None
    assert imagenet_top1(card("cifar10", "accuracy", 0.99)) is None and imagenet_top1({}) is None


def test_input_size_from_config_or_name():
    assert input_size("timm/x", {"pretrained_cfg": {"input_size": [3, 288, 288]}}) == 288
    assert input_size("google/vit-base-patch16-384", {"image_size": 384}) == 384
    assert input_size("timm/vit_base_patch16_384.augreg_in21k", {}) == 384
    assert input_size("org/model", {}) is None


def test_entries_are_pinned_and_read_the_facts():
    entry = entry_or_reason(info(card={"license": "bsd-3-clause", "datasets": ["imagenet-1k"]}), has_token=False)
    assert entry.revision == SHA and entry.loader == "timm" and entry.license == "bsd-3-clause"
    assert entry.metadata["params"] == 25_557_032 and entry.metadata["pretraining_data"] == "imagenet-1k"
    assert entry.source_reference["dataset"] == IMAGENET_REFERENCE["dataset"]
    plain = entry_or_reason(info("org/model", library="transformers", config={"model_type": "vit"}), has_token=True)
    assert plain.loader == "transformers" and plain.source_reference is None and plain.family == "unknown"


@pytest.mark.parametrize("kwargs, has_token, reason", [
    ({"library": "diffusers"}, False, "library 'diffusers' is not supported"),
    ({"tags": ["custom_code"]}, False, "custom code"),
    ({"gated": "auto"}, False, "gated: accept its conditions"),
    ({"params": None, "files": ("pytorch_model.bin",)}, False, "no safetensors weights"),
    ({"repo_id": "timm/not_a_net.x"}, False, "unsupported architecture 'not_a_net'"),
    ({"library": "transformers", "config": {"model_type": "no-such-type"}}, False, "unsupported architecture"),
    ({"sha": None}, False, "no commit sha"),
])
def test_repos_that_cannot_be_entries_say_why(kwargs, has_token, reason):
    assert reason in entry_or_reason(info(**kwargs), has_token=has_token)


def test_a_gated_repo_is_kept_with_a_token():
    assert entry_or_reason(info(gated="manual"), has_token=True).name == "resnet50.tv_in1k"


def test_the_written_zoo_is_valid_and_records_the_query(tmp_path):
    query = HubQuery.parse("library=timm&limit=5")
    entry = entry_or_reason(info(card={"license": "mit", "datasets": ["imagenet-1k"]}), has_token=False)
    search = HubSearch(query, [entry], [{"model": "org/bad", "reason": "no safetensors weights"}], {"license": 2}, 4)
    path = write_zoo(search, tmp_path / "z.yaml")
    assert load_zoo(path) == [entry]
    metadata = zoo_metadata(path)
    assert metadata["query"] == str(query) and metadata["gaps"] == search.skipped
    assert "2 by license" in metadata["description"]


def test_imagenet_entries_of_the_bundled_zoos_name_mini_imagenet():
    for zoo in ("default", "supervised-cnn", "foundation"):
        for entry in load_zoo(zoo):
            named = entry.source_reference
            if entry.name in ("clip-vitb16-openai", "dinov2-vits14-224"):  # not pre-trained on ImageNet-1k
                assert named is None
            else:
                assert {k: v for k, v in named.items() if k in IMAGENET_REFERENCE} == IMAGENET_REFERENCE, entry.name


def test_wordnet_labels_map_to_imagenet_indices():
    reference = SourceReference.parse(IMAGENET_REFERENCE)
    assert reference.source_classes(["n01440764", "n01532829", "n15075141"]).tolist() == [0, 12, 999]
    assert SourceReference("x/y").source_classes(["a", "b"]).tolist() == [0, 1]
    with pytest.raises(ZooError, match="not ImageNet-1k WordNet ids"):
        reference.source_classes(["cat", "n01440764"])
    with pytest.raises(ZooError, match="unknown source_reference label_space"):
        SourceReference.parse({"dataset": "x/y", "label_space": "imagenet-21k"})
    assert np.array_equal(reference.source_classes(["n01532829"])[np.array([0, 0])], [12, 12])


def test_a_refused_search_is_one_user_error(monkeypatch):
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    import hf_tsel.hub_zoo as hub_zoo

    def refuse(*args, **kwargs):
        request = httpx2.Request("GET", "http://hub.invalid/api/models")
        raise HfHubHTTPError("400 Bad Request: invalid filter", response=httpx2.Response(400, request=request))

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_zoo, "_listing", refuse)
    monkeypatch.setattr(hub_zoo, "require_hub", lambda what: None)
    with pytest.raises(UserError, match="the Hub refused the model search library=timm&tags=x"):
        hub_zoo.search_hub("tags=x&limit=3", token=False)

"""kill -9 at a random chunk of an extraction, then the same run again: same scores, nothing finished recomputed.

The end-to-end variant with real tiny models (killed after the first finished model) is
``tests/e2e/test_cli_runs.py::test_kill_then_resume_does_not_recompute_finished_models``.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import hf_tsel
from tests.helpers.data import image_dataset
from tests.helpers.models import write_zoo

CHUNK, PER_CLASS, MODELS = 4, 8, ["alpha", "beta", "gamma"]
CHUNKS_PER_MODEL = 3 * PER_CLASS // CHUNK

# The run to kill: fake backbones, slowed down so that a chunk takes long enough to be interrupted.
RUN = textwrap.dedent("""
    import sys, time
    from hf_tsel import backbones
    from tests.helpers.models import FakeBackbone

    class Slow(FakeBackbone):
        def embed(self, batch):
            time.sleep(0.1)
            return super().embed(batch)

    backbones.load_backbone = lambda entry, device="cpu", **options: Slow(entry, device)
    import hf_tsel
    hf_tsel.rank(sys.argv[1], zoo=sys.argv[2], metrics=["logme"], cache_dir=sys.argv[3], chunk_size=%d, batch_size=%d)
""" % (CHUNK, CHUNK))


def _unfinished_chunks(cache_dir: Path) -> list[Path]:
    """Checkpointed chunks of entries without a manifest (a kill between a manifest and the removal of its
    chunks leaves the chunks of a finished entry behind; those are not progress of an unfinished one)."""
    return [p for p in cache_dir.glob("*/chunks/*.safetensors") if not (p.parents[1] / "manifest.json").is_file()]


def _chunks_done(cache_dir: Path) -> int:
    return CHUNKS_PER_MODEL * len(list(cache_dir.glob("*/manifest.json"))) + len(_unfinished_chunks(cache_dir))


def _manifest_times(cache_dir: Path) -> dict[str, int]:
    return {json.loads(p.read_text())["model"]: p.stat().st_mtime_ns for p in cache_dir.glob("*/manifest.json")}


@pytest.mark.slow
def test_kill_at_a_random_chunk_then_resume(fake_models, tmp_path):
    _, loads = fake_models
    zoo = write_zoo(tmp_path / "zoo.yaml", MODELS)
    image_dataset(per_class=PER_CLASS).save_to_disk(str(tmp_path / "ds"))
    cache_dir = tmp_path / "cache"
    seed = random.randrange(10**6)
    kill_after = random.Random(seed).randrange(1, CHUNKS_PER_MODEL * len(MODELS) - 1)
    process = subprocess.Popen([sys.executable, "-c", RUN, str(tmp_path / "ds"), str(zoo), str(cache_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _chunks_done(cache_dir) < kill_after and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, f"finished before chunk {kill_after} (seed {seed})"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    finished = _manifest_times(cache_dir)
    checkpointed = len(_unfinished_chunks(cache_dir))
    assert not list(cache_dir.rglob("*.corrupt"))  # the atomic writes left no torn file

    resumed = hf_tsel.rank(str(tmp_path / "ds"), zoo=str(zoo), metrics=["logme"], cache_dir=cache_dir, chunk_size=CHUNK,
                           batch_size=CHUNK)
    statuses = {m["name"]: m["status"] for m in resumed.attrs["run"]["models"]}
    assert all(statuses[name] == "cached" for name in finished), (seed, statuses)
    assert ("resumed" in statuses.values()) == (checkpointed > 0), (seed, statuses)
    assert not set(loads) & set(finished), (seed, loads)  # no finished model was loaded again
    assert {_manifest_times(cache_dir)[name] for name in finished} == set(finished.values())
    fresh = hf_tsel.rank(str(tmp_path / "ds"), zoo=str(zoo), metrics=["logme"], use_cache=False)
    np.testing.assert_allclose(resumed.set_index("model")["score"].loc[MODELS],
                               fresh.set_index("model")["score"].loc[MODELS], rtol=1e-6, err_msg=f"seed {seed}")

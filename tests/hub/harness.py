"""Clients of the Hub stand-in: a fresh client environment and the ``hf-tsel`` CLI in a subprocess.

``huggingface_hub`` and ``datasets`` read ``HF_ENDPOINT``, ``HF_HOME`` and the offline flags when they
are imported, so the CLI runs in a subprocess whose environment points at the stand-in (never at
huggingface.co) and at caches under a test folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TEST_TOKEN = "hf_fakeSecretToken0123456789abcdefXYZ"
REPO_ROOT = Path(__file__).resolve().parents[2]

# like the installed `hf-tsel` script (`python -m hf_tsel.cli` would give a second copy of the cli module)
_CLI = [sys.executable, "-c", "import sys; from hf_tsel.cli import main; sys.exit(main(sys.argv[1:]))"]


def client_env(endpoint: str, home: Path, **extra: str) -> dict[str, str]:
    """The stand-in as ``HF_ENDPOINT``, every cache under ``home``, a token, and no offline flag."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE", "TRANSFORMERS_OFFLINE"))}
    env.update(HF_ENDPOINT=endpoint, HF_HUB_DISABLE_XET="1", HF_TOKEN=TEST_TOKEN, HF_HOME=str(home / "hf_home"),
               HF_TSEL_HOME=str(home / "hf_tsel_home"), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", NO_PROXY="127.0.0.1,localhost", PYTHONPATH=str(REPO_ROOT))
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*_CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)


def start_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([*_CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO_ROOT)


def assert_no_token_anywhere(folder: Path, *outputs: str) -> None:
    """The test token is in none of ``outputs`` and in no file under ``folder``."""
    for output in outputs:
        assert TEST_TOKEN not in output
    holders = [p for p in folder.rglob("*") if p.is_file() and TEST_TOKEN.encode() in p.read_bytes()]
    assert not holders, holders

"""The zoos and the Space app are package data, found the same way in a checkout and after `pip install .`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from hf_tsel.paths import package_data
from hf_tsel.publish.space import default_app_dir
from hf_tsel.zoo import list_zoos

REPO_ROOT = Path(__file__).resolve().parent.parent


def _setuptools_config() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_every_package_is_listed_in_pyproject():
    code_dirs = {p.parent for p in (REPO_ROOT / "hf_tsel").rglob("*.py") if "__pycache__" not in p.parts}
    assert not [d for d in code_dirs if not (d / "__init__.py").is_file()], "a code folder lacks __init__.py"
    found = {".".join(p.parent.relative_to(REPO_ROOT).parts) for p in (REPO_ROOT / "hf_tsel").rglob("__init__.py")}
    mapped = {name for name, folder in _setuptools_config()["package-dir"].items()
              if (REPO_ROOT / folder / "__init__.py").is_file()}
    assert found | mapped == set(_setuptools_config()["packages"]), "update [tool.setuptools] packages"
    assert mapped == {"hf_tsel.model_zoos", "hf_tsel.spaces_app"}


def test_checkout_finds_the_zoos_and_the_app():
    assert {"default", "offline", "offline-benchmark"} <= set(list_zoos())
    assert (package_data("model_zoos") / "default.yaml").is_file()
    assert (default_app_dir() / "app.py").is_file() and (default_app_dir() / "README.md").is_file()


_PROBE = """
import json
import hf_tsel, hf_tsel.zoo, hf_tsel.publish.space as space
assert hf_tsel.__file__.startswith(TARGET), hf_tsel.__file__
assert str(hf_tsel.zoo.zoo_path("offline")).startswith(TARGET)
app = space.default_app_dir()
assert str(app).startswith(TARGET) and (app / "app.py").is_file() and (app / "requirements.txt").is_file()
print(json.dumps(hf_tsel.zoo.list_zoos()))
"""


@pytest.mark.slow
def test_wheel_ships_the_zoos_and_the_app(tmp_path):
    """Build a real wheel, install it into a folder and read the zoos and the app from there."""
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheel_dir),
             str(REPO_ROOT)]
    subprocess.run(build, check=True, capture_output=True, timeout=600)
    wheel = next(wheel_dir.glob("hf_tsel-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    env = {**os.environ, "PYTHONPATH": str(target)}  # the installed copy, not this checkout
    done = subprocess.run([sys.executable, "-c", f"TARGET = {str(target)!r}\n" + _PROBE], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == list_zoos()


def test_the_version_has_one_home():
    """pyproject.toml holds the version; the package reads it from the installed metadata."""
    import hf_tsel

    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert hf_tsel.__version__ == pyproject["project"]["version"]
    package = REPO_ROOT / "hf_tsel"
    assert not [p for p in package.rglob("*.py") if p.name not in ("__init__.py", "cli.py", "_version.py")
                and ("from . import __version__" in p.read_text() or "from .. import __version__" in p.read_text())]

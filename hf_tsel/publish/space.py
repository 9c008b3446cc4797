"""Deploy the leaderboard app (``spaces_app/``) as a Gradio Space.

The Space gets the app files plus a copy of the ``hf_tsel`` package (with the bundled zoos as
``hf_tsel/model_zoos``, where :func:`hf_tsel.paths.package_data` finds them), so it runs the same
code that produced the results; ``requirements.txt`` installs the package's dependencies.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import yaml

from ..paths import package_data
from .hub import PushError
from .leaderboard import RESULTS_REPO_ENV

__all__ = ["default_app_dir", "stage_space", "deploy_space"]

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def default_app_dir() -> Path:
    """The bundled Space app (``spaces_app/``, installed as ``hf_tsel.spaces_app``)."""
    return package_data("spaces_app")


def _with_dataset(readme: str, results_repo: str) -> str:
    """The Space README with ``results_repo`` listed under ``datasets:`` in its front matter."""
    match = re.match(r"^---\n(.*?)\n---\n", readme, flags=re.S)
    if match is None:
        raise PushError("spaces_app/README.md has no YAML front matter (--- ... ---); the Space needs it")
    metadata = yaml.safe_load(match.group(1)) or {}
    metadata["datasets"] = sorted(set(metadata.get("datasets") or []) | {results_repo})
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n" + readme[match.end():]


def stage_space(target: Path, *, app_dir: Path | None = None, results_repo: str | None = None) -> Path:
    """Write the files of the Space into ``target``: the app, and ``hf_tsel/`` with ``hf_tsel/model_zoos/``."""
    app_dir = Path(app_dir) if app_dir is not None else default_app_dir()
    if not (app_dir / "app.py").is_file() or not (app_dir / "README.md").is_file():
        raise PushError(f"no Space app found in {app_dir} (expected app.py and README.md); pass --app-dir "
                        "pointing at the spaces_app/ folder of an hf-tsel checkout")
    shutil.copytree(app_dir, target, ignore=shutil.ignore_patterns("__init__.py", "__pycache__", "*.pyc", ".*"),
                    dirs_exist_ok=True)
    # (an installed hf_tsel holds the app as hf_tsel/spaces_app: the app is already at the top)
    shutil.copytree(_PACKAGE_ROOT, target / "hf_tsel", ignore=shutil.ignore_patterns("spaces_app", "__pycache__", "*.pyc", ".*"),
                    dirs_exist_ok=True)
    shutil.copytree(package_data("model_zoos"), target / "hf_tsel" / "model_zoos", ignore=_IGNORE,
                    dirs_exist_ok=True)
    if results_repo:
        readme = target / "README.md"
        readme.write_text(_with_dataset(readme.read_text(encoding="utf-8"), results_repo), encoding="utf-8")
    return target


def deploy_space(repo_id: str, *, results_repo: str | None = None, app_dir: str | Path | None = None,
                 private: bool | None = None, token: str | None = None, endpoint: str | None = None) -> str:
    """Create (if needed) and update the Gradio Space ``repo_id``; returns the commit URL.

    With ``results_repo`` the Space variable ``HF_TSEL_RESULTS_REPO`` is set so the app reads that dataset.

    Example:
        >>> deploy_space("my-org/backbone-leaderboard", results_repo="my-org/backbone-rankings")  # doctest: +SKIP
    """
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    with tempfile.TemporaryDirectory(prefix="hf-tsel-space-") as staging:
        stage_space(Path(staging), app_dir=Path(app_dir) if app_dir else None, results_repo=results_repo)
        try:
            api.create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=True, private=private)
            commit = api.upload_folder(folder_path=staging, repo_id=repo_id, repo_type="space",
                                       commit_message="Deploy the hf-tsel leaderboard",
                                       delete_patterns=["hf_tsel/**", "model_zoos/**"])  # drop stale package files
            if results_repo:
                api.add_space_variable(repo_id, RESULTS_REPO_ENV, results_repo,
                                       description="Hub dataset repo with the results pushed by hf-tsel")
        except Exception as err:
            raise PushError(f"deploying the Space {repo_id} failed: {type(err).__name__}: "
                            f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}. Check HF_TOKEN / "
                            f"`hf auth login` and run `hf-tsel space deploy --repo {repo_id}` again.") from err
    return str(commit)

"""Every hf_tsel module imports on its own, and the modules import each other without cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "hf_tsel"


def module_names(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Dotted name -> file of every module of a package (default: hf_tsel)."""
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Names an import statement may import: the module itself and, for ``from X import y``, ``X.y``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module
    # `from . import x` only imports the submodule x (its package is already being imported)
    return ([base] if node.module else []) + [f"{base}.{alias.name}" for alias in node.names]


def _with_packages(module: str, names: list[str]) -> list[str]:
    """``names`` plus the packages Python runs first: importing ``a.b.c`` executes ``a/__init__`` and ``a/b/__init__``.

    The importer's own packages are left out: they are already being imported when its body runs.
    """
    own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    parents = {".".join(name.split(".")[:i]) for name in names for i in range(1, name.count(".") + 1)}
    return names + sorted(parents - own)


def import_graph(*, top_level_only: bool, package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Module -> modules of the package it imports (at module level, or anywhere when ``top_level_only`` is False).

    An import of a submodule counts as an import of every package above it (their ``__init__`` runs first).
    """
    modules = module_names(package_dir)
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if top_level_only:  # statements run at import time: the module body and its if/try blocks
            nodes = [n for stmt in tree.body for n in ast.walk(stmt)
                     if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        else:
            nodes = list(ast.walk(tree))
        graph[module] = {name for node in nodes if isinstance(node, (ast.Import, ast.ImportFrom))
                         for name in _with_packages(module, _imported(module, path, node))
                         if name in modules and name != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or None."""
    state: dict[str, str] = {}  # "open" while on the DFS path, "done" after

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return path[path.index(target):] + [node, target] if target in path else [node, target]
            if target not in state:
                cycle = visit(target, path + [node])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [])
            if cycle:
                return cycle
    return None


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("top_level_only", [True, False], ids=["module-level", "including-function-level"])
def test_no_import_cycles(top_level_only):
    # Function-level imports are checked too, so that none of them merely hides a cycle.
    cycle = find_cycle(import_graph(top_level_only=top_level_only))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_an_import_through_a_package_init_is_a_cycle(tmp_path):
    """``zoo`` importing ``backbones.preprocess`` runs ``backbones/__init__``, which imports ``zoo``: a cycle,
    though no module names the other's module directly."""
    package = tmp_path / "pkg"
    for name, text in {"__init__.py": "", "zoo.py": "from .backbones.preprocess import T\nZ = 1\n",
                       "backbones/__init__.py": "from ..zoo import Z\nfrom .preprocess import T\n",
                       "backbones/preprocess.py": "T = 1\n", "backbones/base.py": "from .preprocess import T\n"}.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text, encoding="utf-8")
    graph = import_graph(top_level_only=True, package_dir=package)
    assert graph["pkg.backbones.base"] == {"pkg.backbones.preprocess"}  # its own package is already running
    assert find_cycle(graph) in (["pkg.backbones", "pkg.zoo", "pkg.backbones"], ["pkg.zoo", "pkg.backbones", "pkg.zoo"])


def test_graph_sees_the_package_imports():  # guards the test above against an empty graph
    graph = import_graph(top_level_only=True)
    assert "hf_tsel.zoo" in graph["hf_tsel.backbones.base"]
    assert "hf_tsel.backbones" in graph["hf_tsel.groundtruth.trainable"]  # `from .. import backbones`


_IMPORT_EACH = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "hf_tsel" or m.startswith("hf_tsel.")]:
        del sys.modules[loaded]  # each module starts from a fresh hf_tsel, as in a new interpreter
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=-3))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_on_its_own():
    """Each module is imported with no hf_tsel module loaded before it, as in a fresh interpreter.

    One subprocess for all modules: third-party libraries stay imported between them (one interpreter
    per module took 13 minutes on the loaded 2-core machine, for the same check of hf_tsel's own imports).
    """
    names = sorted(module_names())
    done = subprocess.run([sys.executable, "-c", _IMPORT_EACH, *names], capture_output=True, text=True, timeout=600,
                          cwd=PACKAGE_DIR.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_zoo_and_loaders_know_no_model_source_by_name():
    """``<scheme>:<name>`` sources are plug-ins (hf_tsel.sources): the zoo, the loaders and the plug-in registry
    itself never name one (an installed plug-in is found through its entry point)."""
    files = [PACKAGE_DIR / "zoo.py", PACKAGE_DIR / "sources.py", *sorted((PACKAGE_DIR / "backbones").glob("*.py"))]
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "offline:" not in text and "hf_tsel.offline" not in text and ".offline" not in text, path

"""``hf-tsel --help`` starts fast: building the parser loads no heavy library (docs/architecture.md, lazy imports)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

# Libraries that take tenths of a second to seconds to import: none may load just to print the help.
HEAVY = ("torch", "numpy", "pandas", "PIL", "transformers", "datasets", "timm", "accelerate", "huggingface_hub",
         "gradio", "sklearn", "scipy", "rich", "onnxruntime")
_LOADED = """
import sys
from hf_tsel.cli import build_parser
build_parser()
print(" ".join(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:]))))
"""


def test_building_the_parser_imports_no_heavy_library():
    """The deterministic half of the start-up check: it does not depend on how loaded the machine is."""
    done = subprocess.run([sys.executable, "-c", _LOADED, *HEAVY], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.split()
    assert not loaded, (f"`hf-tsel --help` imports {loaded}: a command's register() (or a module it imports at "
                        "module level) pulls them in; import them inside the command's run function instead "
                        "(python -X importtime -c 'from hf_tsel.cli import build_parser; build_parser()' shows who)")


def _best_seconds(command: list[str], runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        tick = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, timeout=120)
        best = min(best, time.perf_counter() - tick)
    return best


def test_help_takes_under_a_second():
    """Best of five runs, so a busy machine (other processes, a cold disk cache) slows one run, not the verdict."""
    script = Path(sys.executable).with_name("hf-tsel")
    command = [str(script), "--help"] if script.exists() else [sys.executable, "-m", "hf_tsel.cli", "--help"]
    seconds = _best_seconds(command)
    interpreter = _best_seconds([sys.executable, "-c", "pass"], runs=3)
    assert seconds < 1.0, f"hf-tsel --help took {seconds:.2f} s at best (a bare interpreter: {interpreter:.2f} s)"

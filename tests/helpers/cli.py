"""Running the ``hf-tsel`` CLI in subprocesses: one process, or a 2-process CPU launch (torchrun).

Not a test module; the ``cli_setup`` fixture (offline cache, tiny zoo and dataset) is in ``tests/conftest.py``.
"""

from __future__ import annotations

import subprocess
import sys


def run_cli(args: list[str], env: dict, timeout: float = 240):
    """Run ``hf-tsel ARGS`` in a subprocess; returns the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, "-m", "hf_tsel.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def launch_two_cpu_processes(port: int, program: tuple[str, ...] = ("-m", "hf_tsel.cli")) -> list[str]:
    """``torchrun`` of ``hf_tsel.cli`` (or another ``program``) as 2 CPU processes (gloo) rendezvousing on ``port``;
    append the CLI arguments.

    ``accelerate launch --cpu --num_processes 2`` would start a single process: without MPI,
    accelerate's simple launcher does not spawn CPU workers. torchrun sets the ``torch.distributed``
    environment that ``Accelerator(cpu=True)`` turns into a 2-process gloo group.
    """
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(port), *program]

"""A one-line description of the machine a run used (stored with every result)."""

from __future__ import annotations

import os
import platform

import torch

__all__ = ["describe_hardware"]


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_hardware(device: str | torch.device | None = None, num_processes: int = 1) -> str:
    """E.g. ``"cpu: AMD EPYC 7B13 x2"`` or ``"cuda: NVIDIA H100 80GB HBM3 x4"`` (processes for GPUs)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(device)} x{num_processes}"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"cpu: {_cpu_name()} x{cores}"

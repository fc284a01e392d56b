"""What machine and software a benchmark ran on (shared by the bench_*.py scripts)."""

from __future__ import annotations

import os
import platform

import numpy as np


def cpu_name() -> str:
    """CPU model from /proc/cpuinfo (Linux), or 'unknown CPU'."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine_line() -> str:
    """One line: architecture, CPU, cores, Python, numpy and numba versions."""
    try:
        import numba

        numba_version = numba.__version__
    except ImportError:
        numba_version = "not installed"
    return (f"machine: {platform.machine()}, {cpu_name()}, {os.cpu_count()} cores; Python "
            f"{platform.python_version()}; numpy {np.__version__}; numba {numba_version}")

"""The BLAS inside FAISS's CPU wheel, pointed at the kernels this CPU runs.

faiss-cpu carries its own OpenBLAS (0.3.15, from 2021), which picks its kernels by CPU model. A model newer than it
knows, a Sapphire or Emerald Rapids Xeon or an Alder Lake, is taken for a Prescott (SSE3), and every product FAISS
hands to BLAS runs at a fraction of the machine's rate: on an Emerald Rapids Xeon its flat search of 1,000 queries
ran at 61 GFLOP/s and training a 256-list IVF on 60,000 vectors took 4.2 s; with the AVX-512 kernels, 261 GFLOP/s
and 1.1 s (`benchmarks/README.md`, "A CPU without bf16 units"). Single queries do not use BLAS.

OpenBLAS reads `OPENBLAS_CORETYPE` once, when it is loaded, so `indexes` sets it on import, before FAISS is
imported, to the widest kernels the CPU's flags allow. A value already in the environment is left alone.
"""

from __future__ import annotations

import os
import platform

__all__ = ["openblas_core", "pick_openblas_core"]

_AVX512 = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})  # what SkylakeX kernels use
_CPUINFO = "/proc/cpuinfo"


def openblas_core(flags: set[str] | frozenset[str]) -> str | None:
    """OpenBLAS's name for the widest kernels a CPU with these /proc/cpuinfo flags runs; None: leave it to OpenBLAS."""
    if _AVX512 <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def pick_openblas_core() -> str | None:
    """Set OPENBLAS_CORETYPE for this process and its children unless it is set; returns the value in force."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return os.environ["OPENBLAS_CORETYPE"]
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    core = openblas_core(_cpu_flags())
    if core is not None:
        os.environ["OPENBLAS_CORETYPE"] = core
    return core


def _cpu_flags() -> frozenset[str]:
    """The first processor's flags (Linux); empty where there is no /proc/cpuinfo."""
    try:
        with open(_CPUINFO, encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()

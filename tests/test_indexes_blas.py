"""`indexes.blas`: the OpenBLAS inside FAISS's wheel runs the widest kernels the CPU has, whatever model it is."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from indexes import blas

SKX = {"sse4_2", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}


def test_the_core_is_the_widest_the_flags_allow():
    assert blas.openblas_core(SKX) == "SkylakeX"
    assert blas.openblas_core(SKX - {"avx512bw"}) == "Haswell"  # Xeon Phi: AVX-512F but not the SkylakeX subset
    assert blas.openblas_core({"sse4_2", "avx", "avx2", "fma"}) == "Haswell"
    assert blas.openblas_core({"sse4_2", "avx"}) is None  # older: OpenBLAS knows those models itself
    assert blas.openblas_core(set()) is None


def test_a_value_in_the_environment_is_left_alone(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: " + " ".join(sorted(SKX)) + "\n")
    monkeypatch.setattr(blas, "_CPUINFO", str(cpuinfo))
    monkeypatch.setattr(blas.platform, "machine", lambda: "x86_64")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")
    assert blas.pick_openblas_core() == "Zen" and os.environ["OPENBLAS_CORETYPE"] == "Zen"
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert blas.pick_openblas_core() == "SkylakeX" and os.environ["OPENBLAS_CORETYPE"] == "SkylakeX"
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    monkeypatch.setattr(blas.platform, "machine", lambda: "aarch64")
    assert blas.pick_openblas_core() is None and "OPENBLAS_CORETYPE" not in os.environ


_CORE_OF_FAISS = """
import ctypes
import indexes, faiss
lib = next(line.split()[-1] for line in open("/proc/self/maps") if "/libopenblas" in line and "faiss" in line)
corename = ctypes.CDLL(lib).openblas_get_corename
corename.restype = ctypes.c_char_p
print(corename().decode())
"""


@pytest.mark.skipif(platform.machine() != "x86_64" or not Path("/proc/self/maps").exists(), reason="Linux x86-64")
def test_faiss_openblas_runs_the_kernels_picked_for_this_cpu():
    expected = blas.openblas_core(blas._cpu_flags())
    if expected is None:
        pytest.skip("a CPU without AVX2: OpenBLAS's own detection stands")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    found = subprocess.run([sys.executable, "-c", _CORE_OF_FAISS], env=env, capture_output=True, text=True,
                           cwd=Path(__file__).parents[1])
    if "StopIteration" in found.stderr:
        pytest.skip("this FAISS build links no OpenBLAS of its own")
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == expected  # the wheel's own detection said Prescott on an Emerald Rapids Xeon

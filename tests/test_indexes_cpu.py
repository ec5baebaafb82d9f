"""`indexes.cpu`: bf16 units read off the CPU, and FAISS's BLAS running the widest kernels an Intel CPU has."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from indexes import cpu

SKX = {"sse4_2", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}


def test_bf16_units_are_read_off_the_cpu(cpu_probes, monkeypatch, tmp_path):
    for avx512_bf16, amx, expected in [(False, False, False), (True, False, True), (False, True, True)]:
        cpu_probes("x86_64", avx512_bf16, amx)
        assert cpu.cpu_runs_bf16() is expected
    assert "AVX512-BF16" in cpu.no_bf16_units()
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(cpu, "_CPUINFO", str(cpuinfo))
    for features, expected in [("fp asimd sve svebf16", False), ("fp asimd sve bf16 i8mm", True)]:
        cpuinfo.write_text(f"processor\t: 0\nFeatures\t: {features}\n")
        cpu_probes("aarch64")
        assert cpu.cpu_runs_bf16() is expected
    assert "BF16 extension" in cpu.no_bf16_units()
    monkeypatch.setattr(cpu, "_CPUINFO", str(tmp_path / "none"))  # macOS: no /proc
    cpu_probes("arm64")
    assert cpu.cpu_runs_bf16() is None
    cpu_probes("riscv64")
    assert cpu.cpu_runs_bf16() is None


def test_the_core_is_the_widest_the_flags_allow():
    assert cpu.openblas_core(SKX) == "SkylakeX"
    assert cpu.openblas_core(SKX - {"avx512bw"}) == "Haswell"  # Xeon Phi: AVX-512F but not the SkylakeX subset
    assert cpu.openblas_core({"sse4_2", "avx", "avx2", "fma"}) == "Haswell"
    assert cpu.openblas_core({"sse4_2", "avx"}) is None  # older: OpenBLAS knows those models itself
    assert cpu.openblas_core(set()) is None
    assert cpu.openblas_core(SKX, "AuthenticAMD") == "SkylakeX"  # Zen 4, 5: 0.3.15 took a Zen 5 for a Barcelona
    assert cpu.openblas_core({"sse4_2", "avx", "avx2", "fma"}, "AuthenticAMD") is None  # Zen 1-3: known to OpenBLAS
    assert cpu.openblas_core(SKX, "CentaurHauls") is None


def test_the_core_is_set_for_intel_and_amd_cpus_unless_the_environment_has_one(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(cpu, "_CPUINFO", str(cpuinfo))
    monkeypatch.setattr(cpu.platform, "machine", lambda: "x86_64")
    flags = " ".join(sorted(SKX))
    cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: {flags}\n")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")
    assert cpu.pick_openblas_core() == "Zen" and os.environ["OPENBLAS_CORETYPE"] == "Zen"
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert cpu.pick_openblas_core() == "SkylakeX" and os.environ["OPENBLAS_CORETYPE"] == "SkylakeX"
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: {flags}\n")
    assert cpu.pick_openblas_core() == "SkylakeX" and os.environ["OPENBLAS_CORETYPE"] == "SkylakeX"
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: avx avx2 fma\n")  # a Zen 3
    assert cpu.pick_openblas_core() is None and "OPENBLAS_CORETYPE" not in os.environ
    monkeypatch.setattr(cpu.platform, "machine", lambda: "aarch64")
    assert cpu.pick_openblas_core() is None and "OPENBLAS_CORETYPE" not in os.environ


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
    expected = cpu.openblas_core(cpu._cpuinfo_field("flags") or frozenset(), cpu.cpu_vendor())
    if expected is None:
        pytest.skip("a CPU whose kernels OpenBLAS picks itself (no AVX2, an older AMD, another vendor)")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    found = subprocess.run([sys.executable, "-c", _CORE_OF_FAISS], env=env, capture_output=True, text=True,
                           cwd=Path(__file__).parents[1])
    if "StopIteration" in found.stderr:
        pytest.skip("this FAISS build links no OpenBLAS of its own")
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == expected  # the wheel said Prescott on an Emerald Rapids Xeon, Barcelona on a Zen 5

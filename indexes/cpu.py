"""What this CPU multiplies fast: whether it has bf16 matrix units, and which kernels FAISS's BLAS should run.

Both are read in this, the lowest layer, because `indexes` (exact search, FAISS) and the model towers above it
choose their arithmetic by them.

**bf16.** Without AVX512-BF16 or AMX (x86), or Arm's BF16 extension, oneDNN converts bf16 to fp32 and back around
every product: on an Emerald Rapids Xeon whose virtual CPU showed neither, bf16 products ran at 0.22x the fp32 rate
and a ViT-L/14 image tower at 0.23x, where an EPYC with AVX512-BF16 ran that tower at 1.9x
(`benchmarks/cpu_features.py`, `benchmarks/cpu_towers.py`).

**FAISS's BLAS.** faiss-cpu carries its own OpenBLAS (0.3.15, from 2021), which picks its kernels by CPU model and
takes an Intel model newer than itself (Sapphire or Emerald Rapids, Alder Lake) for a Prescott (SSE3). On that
Xeon FAISS's batched flat search then ran at 62 GFLOP/s and IVF training took 4.1 s; with the AVX-512 kernels,
270 GFLOP/s and 1.1 s. Single queries do not use BLAS. OpenBLAS reads `OPENBLAS_CORETYPE` once, when it is loaded,
so importing `indexes` sets it, before FAISS is imported, to the widest kernels an Intel CPU's flags allow. AMD is
the same story one generation later: OpenBLAS 0.3.15 knows Zen 1 to 3 (AVX2), but takes a Zen 5 EPYC (family 26)
for a Barcelona (SSE); there the SkylakeX kernels ran FAISS's batched search 4.1x faster. An AMD CPU with AVX-512
(Zen 4 and later, which newer OpenBLAS also gives the SkylakeX kernels) is set to SkylakeX, an older one is left
to OpenBLAS. A value already in the environment is kept; FAISS imported before `indexes` keeps the wheel's choice.
"""

from __future__ import annotations

import functools
import os
import platform

__all__ = ["cpu_has_amx", "cpu_has_avx512", "cpu_runs_bf16", "cpu_vendor", "no_bf16_units", "openblas_core",
           "pick_openblas_core"]

_AVX512 = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})  # what SkylakeX kernels use
_CPUINFO = "/proc/cpuinfo"
_X86 = ("x86_64", "amd64", "i386", "i686")
_ARM = ("aarch64", "arm64")


@functools.cache
def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles that torch can use (x86; False elsewhere or where torch cannot tell)."""
    if platform.machine().lower() not in _X86:
        return False
    import torch  # here, not at the top: importing `indexes` stays light

    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe is not None and probe())


@functools.cache
def cpu_runs_bf16() -> bool | None:
    """Whether this CPU multiplies bf16 matrices in hardware; None where that cannot be told (macOS, other CPUs)."""
    machine = platform.machine().lower()
    if machine in _X86:
        import torch  # here, not at the top: importing `indexes` stays light

        probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return None if None in probes else any(probe() for probe in probes)
    if machine in _ARM:
        features = _cpuinfo_field("Features")
        return None if features is None else "bf16" in features
    return None


def no_bf16_units() -> str:
    """The start of a warning that this CPU lacks bf16 matrix units, naming the ones its kind would have."""
    units = "no BF16 extension" if platform.machine().lower() in _ARM else "neither AVX512-BF16 nor AMX"
    return f"this CPU has no bf16 matrix units ({units})"


def openblas_core(flags: set[str] | frozenset[str], vendor: str = "GenuineIntel") -> str | None:
    """OpenBLAS's name for the widest kernels a CPU with these /proc/cpuinfo flags runs; None: leave it to OpenBLAS.

    Intel: SkylakeX or Haswell by the flags. AMD: SkylakeX from AVX-512 on (Zen 4, 5); OpenBLAS knows the older Zens.
    Other vendors are left alone.
    """
    if vendor not in ("GenuineIntel", "AuthenticAMD"):
        return None
    if _AVX512 <= flags:
        return "SkylakeX"
    if vendor == "GenuineIntel" and {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def pick_openblas_core() -> str | None:
    """Set OPENBLAS_CORETYPE for this process and its children unless it is set; returns the value in force."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return os.environ["OPENBLAS_CORETYPE"]
    if platform.machine().lower() not in _X86:
        return None
    core = openblas_core(_cpuinfo_field("flags") or frozenset(), cpu_vendor())
    if core is not None:
        os.environ["OPENBLAS_CORETYPE"] = core
    return core


def cpu_has_avx512() -> bool:
    """Whether this CPU's flags hold the AVX-512 subset SkylakeX kernels use (/proc/cpuinfo; False without it)."""
    return _AVX512 <= (_cpuinfo_field("flags") or frozenset())


def cpu_vendor() -> str:
    """The first processor's vendor_id ("GenuineIntel", "AuthenticAMD"); "" where /proc/cpuinfo does not say."""
    return " ".join(sorted(_cpuinfo_field("vendor_id") or ()))


def _cpuinfo_field(name: str) -> frozenset[str] | None:
    """The words of the first processor's `name` line in /proc/cpuinfo; None without such a line or file."""
    try:
        with open(_CPUINFO, encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return frozenset(value.split())
    except OSError:
        pass
    return None

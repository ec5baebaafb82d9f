"""Shared fixtures: media generated in tmp_path (no downloads, no ffmpeg) and the tiny random model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import indexes  # noqa: F401  before any test imports FAISS: it picks the kernels of FAISS's BLAS (indexes/cpu.py)
from bindsearch.media.writers import write_audio, write_depth_png, write_image, write_video


def make_media(directory: Path, seed: int = 0) -> dict[str, Path]:
    """One small file per modality: a 4-frame mp4, a sine-wave wav, a 16-bit depth png, RGB and IR pngs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:64]
    rgb = np.stack([xx * (4 + seed), yy * 5, (xx + yy) * 2 + 30 * seed], axis=-1).astype(np.uint8)
    frames = np.stack([np.roll(rgb, (6 + seed) * i, axis=1) for i in range(4)])
    t = np.arange(16000 * 2) / 16000
    return {
        "image": write_image(directory / "photo.png", rgb),
        "infrared": write_image(directory / "ir" / "frame.png", (xx * (3 + seed) + yy).astype(np.uint8)),
        "depth": write_depth_png(directory / "depth" / "room.png", 500 + (60 + 20 * seed) * xx + 40 * yy),
        "audio": write_audio(directory / "tone.wav", 0.3 * np.sin(2 * np.pi * (300 + 200 * seed) * t)
                             + 0.01 * rng.standard_normal(t.shape), 16000),
        "video": write_video(directory / "clip.mp4", frames, fps=4),
    }


@pytest.fixture(scope="module")
def one_faiss_thread():
    """FAISS on one thread for a module: small problems gain nothing from threads, and OpenMP spin-waits cost
    seconds on a shared 2-core box."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.fixture
def media_files(tmp_path: Path) -> dict[str, Path]:
    return make_media(tmp_path)


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run the `bindsearch` console entry point in-process: (exit code, stdout, stderr)."""
    from cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr("sys.argv", ["bindsearch", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def tiny_model():
    from bindsearch import load_model

    return load_model("random:tiny", device="cpu")


@pytest.fixture
def cpu_probes(monkeypatch):
    """`set_cpu(machine, avx512_bf16=False, amx=False)`: the CPU `indexes.cpu.cpu_runs_bf16` sees from then on."""
    import torch

    from bindsearch.models import tower
    from indexes import cpu

    def set_cpu(machine: str, avx512_bf16: bool = False, amx: bool = False) -> None:
        monkeypatch.setattr(cpu.platform, "machine", lambda: machine)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
        for probe in (cpu.cpu_runs_bf16, cpu.cpu_has_amx, tower._products_beat_sdpa):
            probe.cache_clear()

    yield set_cpu
    for probe in (cpu.cpu_runs_bf16, cpu.cpu_has_amx, tower._products_beat_sdpa):
        probe.cache_clear()

"""The CUDA code paths, on a GPU: towers in bf16/fp16 (eager and compiled) against fp32, and GemmSearch.

Skipped where torch sees no CUDA device (CI). On a GPU machine without the media libraries these run alone:
`python -m pytest --noconftest -m gpu tests/test_gpu.py` (they need torch and numpy only).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from closeness import assert_same_vectors

from bindsearch.models.builtin import random_model, tiny_configs
from indexes.gemm import GemmSearch, grouped_topk

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def unit(n: int, dim: int = 96, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries.astype(np.float64) @ vectors.T.astype(np.float64)), axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
@pytest.mark.parametrize("exact_on_device", [False, True])
def test_gemm_search_on_gpu_is_exact(precision, exact_on_device):
    vectors, queries = unit(300_000), unit(300, seed=1)  # 300,000 = one full 262,144 block and a partial one
    searcher = GemmSearch(vectors, precision=precision, device="cuda", exact_on_device=exact_on_device)
    scores, positions = searcher.search(queries, 10)
    want = brute_force(vectors, queries, 10)
    assert (positions == want).mean() > 0.999  # fp32 on the GPU may swap two scores equal to 1e-7
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ vectors.T, positions, 1), atol=1e-5)


def test_grouped_topk_on_gpu_matches_topk():
    scores = torch.randn(512, 128 * 300, device="cuda", dtype=torch.bfloat16)
    values, columns = grouped_topk(scores, 42, 128)
    want = scores.topk(42, dim=1).values
    assert torch.equal(values.sort(dim=1, descending=True).values, want)
    assert torch.equal(scores.gather(1, columns), values)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("modality", ["image", "video", "audio"])
def test_towers_in_half_precision_match_fp32(dtype, modality):
    config = [c for c in tiny_configs() if c.modality == modality]
    exact = random_model(config).eval()
    cfg = exact.vision_models[modality].config
    shape = (3, 3, cfg.num_frames, *cfg.input_size) if cfg.num_frames > 1 else (3, 3, *cfg.input_size)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    want = exact.embed(modality, x)
    fast = random_model(config).to("cuda", dtype).eval()
    got = fast.embed(modality, x)
    assert got.device.type == "cpu" and got.dtype == torch.float32
    assert_same_vectors(got, want, share=0.25)  # random towers: cosine 0.99 would hold for any input


def test_compiled_towers_match_eager():
    """`compile_towers` (Inductor, freezing; video has temporal attention) gives the eager vectors, short and
    long batches included (padded to, and split at, the compiled batch size)."""
    model = random_model([c for c in tiny_configs() if c.modality == "video"]).to("cuda", torch.bfloat16).eval()
    x = torch.randn(5, 3, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    eager = model.embed("video", x)
    model.compile_towers(["video"], batch_size=4)
    compiled = model.embed("video", x)
    assert compiled.shape == eager.shape
    assert_same_vectors(compiled, eager, share=0.25)  # each row its own item's: rows mixed up would fail


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(2, 8, 4112, 64), (3, 5, 37, 24), (1, 1, 9, 64)])
def test_temporal_attention_kernel_matches_sdpa(dtype, shape):
    from bindsearch.models import temporal

    g = torch.Generator(device="cuda").manual_seed(0)
    qkv = torch.randn(*shape[:-1], 3, shape[-1], device="cuda", generator=g).to(dtype)
    q, k, v = qkv.unbind(-2)  # strided views, as a fused projection would give
    with torch.inference_mode():
        got = temporal.temporal_attention(q, k, v)
        want = torch.nn.functional.scaled_dot_product_attention(
            *(x.float().transpose(1, 2) for x in (q, k, v))).transpose(1, 2)
    assert got.shape == q.shape and got.dtype == dtype
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got.float(), want, atol=tolerance, rtol=0)


def test_video_tower_with_the_kernel_matches_sdpa():
    from bindsearch.models import temporal

    model = random_model([c for c in tiny_configs() if c.modality == "video"]).cuda().eval()
    x = torch.randn(3, 3, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    with_kernel = model.embed("video", x)
    temporal.TEMPORAL_KERNEL = False
    try:
        with_sdpa = model.embed("video", x)
    finally:
        temporal.TEMPORAL_KERNEL = True
    torch.testing.assert_close(with_kernel, with_sdpa, atol=1e-5, rtol=0)

"""The temporal attention of video towers: the Triton kernel (run by Triton's interpreter on the CPU) against SDPA.

On a GPU, tests/test_gpu.py runs the kernel itself; here its code is exercised on the CPU, odd shapes included
(frames and head widths that are not powers of two, positions that do not fill a block, strided inputs).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from bindsearch.models.temporal import temporal_attention

ROOT = Path(__file__).resolve().parents[1]

CHECK = textwrap.dedent("""
    import torch
    from bindsearch.models import temporal

    torch.manual_seed(0)
    for b, t, m, dh, block in [(2, 8, 37, 64, 8), (1, 3, 5, 24, 4), (2, 1, 16, 16, 16), (1, 6, 33, 40, 16)]:
        qkv = torch.randn(b, t, m, 3, dh)
        q, k, v = qkv.unbind(-2)
        out = torch.empty(b, t, m, dh)
        temporal.launch_kernel(q, k, v, out, block_m=block, num_warps=1)
        want = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
        error = (out - want).abs().max().item()
        assert error < 1e-5, (b, t, m, dh, error)
    print("ok")
""")


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed (CPU build of torch)")
def test_kernel_matches_sdpa_in_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_fallback_is_attention_across_frames():
    """Position j of frame i attends to position j of every frame, and to nothing else."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 6, 8) for _ in range(3))
    got = temporal_attention(q, k, v)
    scores = torch.einsum("bimd,bjmd->bmij", q, k) / 8 ** 0.5
    want = torch.einsum("bmij,bjmd->bimd", scores.softmax(-1), v)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    v2 = v.clone()
    v2[:, :, 3] += 1.0  # another position's values change nothing here
    torch.testing.assert_close(temporal_attention(q, k, v2)[:, :, :3], got[:, :, :3])


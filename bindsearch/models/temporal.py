"""Attention across a video's frames, for the temporal blocks of LanguageBind's video tower.

Every token position attends to itself in each of the t frames (t = 8 in the published towers): millions of
8-token problems per batch. `F.scaled_dot_product_attention` runs each as its own problem, which on a GPU keeps
most of a flash tile empty: on an H100 the temporal blocks took 45% of the video tower's time for a quarter of
its FLOPs. On CUDA, inference therefore runs a small Triton kernel instead. It reads q, k and v once, straight
from the projections' frame-major layout (no transposes), and keeps the t x t scores of a few positions in
registers, so its cost is the memory traffic of q, k, v and the output: 0.35 ms against SDPA's 2.1 ms at the
video tower's batch of 32 (`benchmarks/gpu.py`), which took the tower from 186 to 236 videos/s. Elsewhere (CPU,
training, no Triton) it is SDPA over a strided view of the same layout, so both agree on inputs and outputs.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F

__all__ = ["temporal_attention", "triton_available"]

# Triton ships with CUDA builds of torch; CPU builds do without it. Without a GPU (or Triton's interpreter, which
# the tests use) the kernel cannot run, and importing Triton would cost every command a second and a half.
triton = None
if torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
    try:
        import triton
        import triton.language as tl
    except ImportError:  # pragma: no cover - depends on the torch build
        triton = None

TEMPORAL_KERNEL = True
"""Use the Triton kernel where it can run; False forces SDPA (benchmarks/gpu.py compares both)."""


def triton_available() -> bool:
    """True when the Triton kernel can run: Triton is installed, and there is a GPU (or Triton's interpreter)."""
    return triton is not None


def temporal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Attention over frames. q, k, v: (b, t, m, dh), m = token positions x heads -> (b, t, m, dh).

    Position j of frame i attends to position j of every frame of the same item.
    """
    if TEMPORAL_KERNEL and q.is_cuda and triton is not None and not torch.is_grad_enabled():
        return torch.ops.bindsearch.temporal_attention(q, k, v)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


if triton is not None:

    @triton.jit
    def _temporal_attention_kernel(
        q_ptr, k_ptr, v_ptr, o_ptr, positions, scale,
        stride_qb, stride_qt, stride_qm, stride_kb, stride_kt, stride_km,
        stride_vb, stride_vt, stride_vm, stride_ob, stride_ot, stride_om,
        FRAMES: tl.constexpr, FRAMES_P2: tl.constexpr, HEAD_DIM: tl.constexpr, HEAD_DIM_P2: tl.constexpr,
        BLOCK_M: tl.constexpr,
    ):
        # One program: BLOCK_M positions of one item, all frames. Scores stay (frames, BLOCK_M) in registers,
        # and the softmax runs online over the key frames (as in flash attention, with t keys in all).
        item = tl.program_id(1)
        frame = tl.arange(0, FRAMES_P2)
        position = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        channel = tl.arange(0, HEAD_DIM_P2)
        row_ok = (position < positions)[:, None] & (channel < HEAD_DIM)[None, :]
        ok = (frame < FRAMES)[:, None, None] & row_ok[None, :, :]

        q_offsets = frame[:, None, None] * stride_qt + position[None, :, None] * stride_qm + channel[None, None, :]
        q = tl.load(q_ptr + item * stride_qb + q_offsets, mask=ok, other=0.0).to(tl.float32) * scale
        best = tl.full((FRAMES_P2, BLOCK_M), float("-inf"), tl.float32)
        total = tl.zeros((FRAMES_P2, BLOCK_M), tl.float32)
        acc = tl.zeros((FRAMES_P2, BLOCK_M, HEAD_DIM_P2), tl.float32)
        k_rows = k_ptr + item * stride_kb + position[:, None] * stride_km + channel[None, :]
        v_rows = v_ptr + item * stride_vb + position[:, None] * stride_vm + channel[None, :]
        for key in tl.static_range(FRAMES):
            k = tl.load(k_rows + key * stride_kt, mask=row_ok, other=0.0).to(tl.float32)
            v = tl.load(v_rows + key * stride_vt, mask=row_ok, other=0.0).to(tl.float32)
            score = tl.sum(q * k[None, :, :], axis=2)
            new_best = tl.maximum(best, score)
            rescale = tl.exp(best - new_best)
            p = tl.exp(score - new_best)
            total = total * rescale + p
            acc = acc * rescale[:, :, None] + p[:, :, None] * v[None, :, :]
            best = new_best
        out = acc / total[:, :, None]
        o_offsets = frame[:, None, None] * stride_ot + position[None, :, None] * stride_om + channel[None, None, :]
        tl.store(o_ptr + item * stride_ob + o_offsets, out.to(o_ptr.dtype.element_ty), mask=ok)

    # Positions per program and warps: the fastest of benchmarks/gpu.py's sweep on an H100 (53% of the copy
    # bandwidth at the video tower's shape; 16 positions with 4 warps ran 0.44 ms against 0.35 ms).
    BLOCK_M = 4
    NUM_WARPS = 2

    def launch_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                      block_m: int | None = None, num_warps: int | None = None, launcher=None) -> None:
        """Run the kernel into `out` (b, t, m, dh); every tensor's last dimension contiguous."""
        b, t, m, dh = q.shape
        for name, x in (("q", q), ("k", k), ("v", v), ("out", out)):
            if x.shape != q.shape or x.stride(-1) != 1:
                raise ValueError(f"temporal attention: {name} must be {tuple(q.shape)} with a contiguous last "
                                 f"dimension, got {tuple(x.shape)} with strides {x.stride()}")
        block_m = block_m or BLOCK_M
        grid = (triton.cdiv(m, block_m), b)
        kernel = launcher(_temporal_attention_kernel) if launcher else _temporal_attention_kernel
        kernel[grid](
            q, k, v, out, m, 1.0 / math.sqrt(dh),
            q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
            v.stride(0), v.stride(1), v.stride(2), out.stride(0), out.stride(1), out.stride(2),
            FRAMES=t, FRAMES_P2=triton.next_power_of_2(t), HEAD_DIM=dh, HEAD_DIM_P2=triton.next_power_of_2(dh),
            BLOCK_M=block_m, num_warps=num_warps or NUM_WARPS,
        )

    # A custom op, so that torch.compile (compile_towers) keeps the kernel inside its graph.
    @torch.library.triton_op("bindsearch::temporal_attention", mutates_args=())
    def _temporal_attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
        launch_kernel(q, k, v, out, launcher=torch.library.wrap_triton)
        return out

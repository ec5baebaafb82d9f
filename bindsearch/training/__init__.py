"""Training: fit a modality tower to the frozen text anchor from `path,caption` pairs; the mini recipe."""

from bindsearch.training.data import Pairs, PairSet, decode_inputs, embed_captions, read_pairs
from bindsearch.training.trainer import (
    LoRALinear,
    TrainConfig,
    TrainResult,
    add_lora,
    contrastive_loss,
    evaluate,
    tower_config,
    train,
)

__all__ = [
    "LoRALinear",
    "PairSet",
    "Pairs",
    "TrainConfig",
    "TrainResult",
    "add_lora",
    "contrastive_loss",
    "decode_inputs",
    "embed_captions",
    "evaluate",
    "read_pairs",
    "tower_config",
    "train",
]

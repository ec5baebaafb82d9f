"""Models: one ViT tower for every modality, the CLIP text tower, configs and checkpoint loading."""

from bindsearch.models.base import EmbeddingModel, EncoderIdentity, UnsupportedModalityError
from bindsearch.models.config import MODALITIES, ModelConfig, Preprocess, TextConfig, TowerConfig
from bindsearch.models.languagebind import LanguageBindModel
from bindsearch.models.loading import ALIASES, ModelLoadError, load_model

__all__ = [
    "ALIASES",
    "MODALITIES",
    "EmbeddingModel",
    "EncoderIdentity",
    "LanguageBindModel",
    "ModelConfig",
    "ModelLoadError",
    "Preprocess",
    "TextConfig",
    "TowerConfig",
    "UnsupportedModalityError",
    "load_model",
]

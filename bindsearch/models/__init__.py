"""Models: one ViT tower for every modality, the CLIP text tower, configs and checkpoint loading.

Names are imported on first use, so `bindsearch.models.specs` (model names, the default model) is read
without importing torch.
"""

from importlib import import_module

_EXPORTS = {
    "ALIASES": "bindsearch.models.specs",
    "MODALITIES": "bindsearch.models.config",
    "EmbeddingModel": "bindsearch.models.base",
    "EncoderIdentity": "bindsearch.models.base",
    "LanguageBindModel": "bindsearch.models.languagebind",
    "ModelConfig": "bindsearch.models.config",
    "ModelLoadError": "bindsearch.models.loading",
    "Preprocess": "bindsearch.models.config",
    "TextConfig": "bindsearch.models.config",
    "TowerConfig": "bindsearch.models.config",
    "UnsupportedModalityError": "bindsearch.models.base",
    "load_model": "bindsearch.models.loading",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bindsearch.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

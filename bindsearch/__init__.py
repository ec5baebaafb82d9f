"""bindsearch: find anything by anything in one language-anchored vector space (LanguageBind).

Names are imported on first use, so `import bindsearch.models` does not pull in the index layer
(LanceDB, FAISS) and a CLI command pays only for what it touches.
"""

from importlib import import_module

__version__ = "0.3.1"

_EXPORTS = {
    "CatalogError": "indexes.catalog",
    "Collection": "bindsearch.collection",
    "CollectionError": "bindsearch.collection",
    "EncoderMismatchError": "indexes.catalog",
    "Hit": "bindsearch.collection",
    "IngestReport": "bindsearch.collection",
    "LockTimeout": "indexes.lock",
    "classify": "bindsearch.labels",
    "EmbeddingModel": "bindsearch.models",
    "MediaError": "bindsearch.media",
    "ModelLoadError": "bindsearch.models",
    "UnsupportedModalityError": "bindsearch.models",
    "load_model": "bindsearch.models",
}

__all__ = [*_EXPORTS, "__version__", "media"]


def __getattr__(name: str):
    if name == "media":
        return import_module("bindsearch.media")
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bindsearch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

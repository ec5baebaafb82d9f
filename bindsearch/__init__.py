"""bindsearch: find anything by anything in one language-anchored vector space (LanguageBind)."""

from bindsearch import media
from bindsearch.classify import classify
from bindsearch.collection import Collection, CollectionError, Hit, IngestReport
from bindsearch.media import MediaError
from bindsearch.models import EmbeddingModel, ModelLoadError, UnsupportedModalityError, load_model

__version__ = "0.1.0"

__all__ = [
    "Collection",
    "CollectionError",
    "Hit",
    "IngestReport",
    "classify",
    "EmbeddingModel",
    "MediaError",
    "ModelLoadError",
    "UnsupportedModalityError",
    "__version__",
    "load_model",
    "media",
]

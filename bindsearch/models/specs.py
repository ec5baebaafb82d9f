"""Model names, and which one commands use when none is named; no torch here, so `bindsearch --help` is quick.

`load_model` (`models.loading`) turns these names into models.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["ALIASES", "LANGUAGEBIND_ALL", "MINI", "MINI_DIR", "MODEL_TYPE", "default_model", "hub_cache",
           "is_builtin", "is_mini_checkpoint"]

ALIASES = {
    "languagebind:video": "LanguageBind/LanguageBind_Video",
    "languagebind:video_ft": "LanguageBind/LanguageBind_Video_FT",
    "languagebind:video_v1.5_ft": "LanguageBind/LanguageBind_Video_V1.5_FT",
    "languagebind:video_huge_v1.5_ft": "LanguageBind/LanguageBind_Video_Huge_V1.5_FT",
    "languagebind:audio": "LanguageBind/LanguageBind_Audio",
    "languagebind:audio_ft": "LanguageBind/LanguageBind_Audio_FT",
    "languagebind:depth": "LanguageBind/LanguageBind_Depth",
    "languagebind:thermal": "LanguageBind/LanguageBind_Thermal",
    "languagebind:infrared": "LanguageBind/LanguageBind_Thermal",
    "languagebind:image": "LanguageBind/LanguageBind_Image",
}
# Checkpoints that share one 768-d space and one frozen text tower: the default "everything" model.
LANGUAGEBIND_ALL = ("languagebind:video_ft", "languagebind:audio_ft", "languagebind:depth",
                    "languagebind:thermal", "languagebind:image")

MINI = "bindsearch-mini"
MINI_DIR = Path(__file__).resolve().parent / "weights" / "bindsearch-mini"
MODEL_TYPE = "bindsearch-mini"  # config.json's model_type in a MiniLM-anchored checkpoint
RANDOM = ("random:tiny",)  # seeded random weights (`models.builtin`), for tests and demos


def is_builtin(spec: str) -> bool:
    """A model that ships with bindsearch: a `random:` one, or `bindsearch-mini`."""
    return spec.lower() in RANDOM or spec.lower() == MINI


def is_mini_checkpoint(spec: str | Path) -> bool:
    """True for a directory whose config.json says `"model_type": "bindsearch-mini"`."""
    config = Path(spec).expanduser() / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("model_type") == MODEL_TYPE
    except (ValueError, OSError, AttributeError):  # not JSON, not UTF-8 (a config.json of other bytes), unreadable
        return False


def hub_cache() -> Path:
    """The Hugging Face hub cache as huggingface_hub finds it (HF_HUB_CACHE, else HF_HOME/hub, else
    $XDG_CACHE_HOME/huggingface/hub), read from the environment now, so a variable set after import counts."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("HF_HOME") or cache_home / "huggingface").expanduser() / "hub"


def default_model() -> str:
    """The model commands use when none is named: the five LanguageBind checkpoints when all are in the
    Hugging Face cache, else the shipped `bindsearch-mini`, else `random:tiny` (a source tree without weights)."""

    def cached(repo: str) -> bool:
        root = hub_cache() / f"models--{repo.replace('/', '--')}"
        try:  # what loading reads offline: the snapshot refs/main names (a download pinned to a revision has none)
            snapshot = root / "snapshots" / (root / "refs" / "main").read_text().strip()
        except (OSError, ValueError):
            return False
        return (snapshot / "config.json").is_file()

    if all(cached(ALIASES[name]) for name in LANGUAGEBIND_ALL):
        return "languagebind"
    return MINI if (MINI_DIR / "model.safetensors").is_file() else "random:tiny"

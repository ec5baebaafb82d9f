"""Typed architecture and preprocessing configs; read from published LanguageBind `config.json` files.

A tiny config (a few layers, a few dims) is just another config: the tests use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from bindsearch.modalities import CLIP_MEAN, CLIP_STD, MODALITIES, Preprocess, canonical_modality

__all__ = [
    "MODALITIES",
    "CLIP_MEAN",
    "CLIP_STD",
    "EncoderConfig",
    "ModelConfig",
    "Preprocess",
    "TextConfig",
    "TowerConfig",
    "canonical_modality",
    "from_languagebind_config",
]

@dataclass(frozen=True)
class EncoderConfig:
    """One transformer stack: the shape shared by the text tower and every modality tower."""

    width: int
    layers: int
    heads: int
    mlp_width: int
    act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5


@dataclass(frozen=True)
class TextConfig:
    """CLIP text tower: causal transformer over BPE ids, pooled at the end-of-text token."""

    encoder: EncoderConfig
    vocab_size: int = 49408
    context_length: int = 77


@dataclass(frozen=True)
class TowerConfig:
    """The one ViT tower every modality uses; switches select video/audio behaviour.

    `input_size` is (height, width): (224, 224) for pixels, (mel bins, frames) for audio.
    `num_frames > 1` with `temporal_attention` adds a temporal block before each spatial block;
    `frame_class_embedding` gives each frame its own class token (LanguageBind's `vl_new`).
    """

    encoder: EncoderConfig
    input_size: tuple[int, int] = (224, 224)
    patch_size: int = 14
    channels: int = 3
    num_frames: int = 1
    temporal_attention: bool = False
    frame_class_embedding: bool = False

    @property
    def grid(self) -> tuple[int, int]:
        return self.input_size[0] // self.patch_size, self.input_size[1] // self.patch_size


@dataclass(frozen=True)
class ModelConfig:
    """A modality tower plus its projection into the shared space, and the text tower it was trained with."""

    modality: str
    tower: TowerConfig
    text: TextConfig
    projection_dim: int
    preprocess: Preprocess = field(default_factory=Preprocess)
    logit_scale_init: float = 2.6592


# LanguageBind's CLIPVisionConfig / CLIPTextConfig defaults: a published config.json may omit any of these.
_VISION_DEFAULTS = dict(
    hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, num_channels=3,
    image_size=224, patch_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5, add_time_attn=False,
    num_frames=1, lora_r=2, lora_alpha=16, num_mel_bins=0, target_length=0,
)
_TEXT_DEFAULTS = dict(
    vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
)
_MODEL_TYPES = {
    "LanguageBindImage": "image", "LanguageBindVideo": "video", "LanguageBindAudio": "audio",
    "LanguageBindDepth": "depth", "LanguageBindThermal": "infrared",
}


def _merged(cfg: dict[str, Any], name: str, defaults: dict[str, Any]) -> dict[str, Any]:
    # Older transformers saved both `text_config` and `text_config_dict`; the *_dict one wins, as there.
    sections = [cfg[key] for key in (name, f"{name}_dict") if cfg.get(key) is not None]
    if not sections:  # the defaults are CLIP ViT-B/32's: a checkpoint's weights would not fit them
        raise ValueError(f"{name} is missing (the tower's shape: layers, widths, input size); restore it, or "
                         "download the checkpoint again")
    out = dict(defaults)
    for section in sections:
        if not isinstance(section, dict):
            raise ValueError(f"{name} is a JSON {type(section).__name__}, not an object")
        out.update(section)
    return out


def _number(kind: type[int] | type[float], values: dict[str, Any], key: str, where: str = "") -> Any:
    """values[key] as an int or float, or a ValueError naming the key (`where`: its section) and its value."""
    value = values[key]
    try:
        if isinstance(value, bool):
            raise TypeError
        return kind(value)
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{where}{key} must be {what}, not {value!r}") from None


def _modality_of(cfg: dict[str, Any], vision: dict[str, Any]) -> str:
    if cfg.get("model_type") in _MODEL_TYPES:
        return _MODEL_TYPES[cfg["model_type"]]
    if vision.get("add_time_attn"):
        return "video"
    if vision.get("num_mel_bins") and vision.get("target_length"):
        return "audio"
    if "max_depth" in vision:
        return "depth"
    raise ValueError("config.json does not say which modality it encodes (no LanguageBind model_type)")


def from_languagebind_config(cfg: dict[str, Any]) -> tuple[ModelConfig, dict[str, Any]]:
    """Parse a published LanguageBind `config.json` -> (ModelConfig, LoRA settings {'r', 'alpha'})."""
    vision = _merged(cfg, "vision_config", _VISION_DEFAULTS)
    text = _merged(cfg, "text_config", _TEXT_DEFAULTS)
    modality = _modality_of(cfg, vision)
    top = {"projection_dim": 512, "logit_scale_init_value": 2.6592, **cfg}

    def tower_int(key: str, values: dict[str, Any] = vision) -> int:
        return _number(int, values, key, "vision_config." if values is vision else "text_config.")

    if modality == "audio":
        input_size = (tower_int("num_mel_bins"), tower_int("target_length"))
    else:
        size = vision["image_size"]
        sides = size if isinstance(size, (list, tuple)) and len(size) == 2 else (size, size)
        input_size = tuple(_number(int, {"image_size": side}, "image_size", "vision_config.") for side in sides)
    if _number(int, {"tube_size": 1, **vision}, "tube_size", "vision_config.") != 1:
        raise ValueError(f"tube_size {vision['tube_size']} is not supported (published checkpoints use 1)")

    is_video = bool(vision["add_time_attn"])
    tower = TowerConfig(
        encoder=EncoderConfig(
            width=tower_int("hidden_size"), layers=tower_int("num_hidden_layers"),
            heads=tower_int("num_attention_heads"), mlp_width=tower_int("intermediate_size"),
            act=vision["hidden_act"], layer_norm_eps=_number(float, vision, "layer_norm_eps", "vision_config."),
        ),
        input_size=input_size,
        patch_size=tower_int("patch_size"),
        channels=tower_int("num_channels"),
        num_frames=tower_int("num_frames") if is_video else 1,
        temporal_attention=is_video,
        frame_class_embedding=is_video and vision.get("clip_type", "vl") == "vl_new",
    )
    text_cfg = TextConfig(
        encoder=EncoderConfig(
            width=tower_int("hidden_size", text), layers=tower_int("num_hidden_layers", text),
            heads=tower_int("num_attention_heads", text), mlp_width=tower_int("intermediate_size", text),
            act=text["hidden_act"], layer_norm_eps=_number(float, text, "layer_norm_eps", "text_config."),
        ),
        vocab_size=tower_int("vocab_size", text),
        context_length=tower_int("max_position_embeddings", text),
    )
    known = {f.name for f in fields(Preprocess)}
    overrides: dict[str, Any] = {}
    if is_video:
        overrides["num_frames"] = tower_int("num_frames")
    if modality == "audio":
        overrides.update(num_mel_bins=input_size[0], target_length=input_size[1])
        for ours, theirs, kind in (("sample_rate", "audio_sample_rate", int), ("audio_mean", "audio_mean", float),
                                   ("audio_std", "audio_std", float)):
            if theirs in vision:
                overrides[ours] = _number(kind, vision, theirs, "vision_config.")
    if modality == "depth" and vision.get("max_depth"):
        overrides["max_depth"] = _number(float, vision, "max_depth", "vision_config.")
    if modality in ("image", "infrared", "depth", "video"):
        overrides["image_size"] = input_size[0]
    model = ModelConfig(
        modality=modality,
        tower=tower,
        text=text_cfg,
        projection_dim=_number(int, top, "projection_dim"),
        preprocess=Preprocess(**{k: v for k, v in overrides.items() if k in known}),
        logit_scale_init=_number(float, top, "logit_scale_init_value"),
    )
    lora = {"r": _number(int, {"lora_r": vision.get("lora_r") or 0}, "lora_r", "vision_config."),
            "alpha": _number(float, {"lora_alpha": vision.get("lora_alpha") or 16}, "lora_alpha", "vision_config.")}
    return model, lora

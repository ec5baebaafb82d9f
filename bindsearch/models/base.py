"""The extension point for encoders: subclasses implement `encode_batch`; this class does the rest."""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from bindsearch.errors import UnsupportedModalityError
from bindsearch.files import user_path
from bindsearch.modalities import checked_batch_size
from bindsearch.models.config import Preprocess, canonical_modality
from indexes.cpu import cpu_runs_bf16, no_bf16_units

__all__ = ["EmbeddingModel", "EncoderIdentity", "UnsupportedModalityError", "resolve_device", "resolve_dtype",
           "shortest_first"]


@dataclass(frozen=True)
class EncoderIdentity:
    """Where stored vectors came from: enough to refuse mixing vectors from different encoders."""

    spec: str
    checkpoint: str
    dim: int
    metric: str = "cosine"
    modalities: tuple[str, ...] = field(default=())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {str(device)!r}; use auto, cpu or cuda") from None
    if device.type not in ("cpu", "cuda"):  # torch knows "mps", "xla", ...; our towers and indexes run on these two
        raise ValueError(f"device {str(device)!r} is not supported; use auto, cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA device; use --device cpu")
    return device


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None/'auto' -> float32 (exact parity); strings like 'bf16' -> torch dtypes."""
    if dtype is None or dtype == "auto":
        return torch.float32
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif dtype in _DTYPES:
        resolved = _DTYPES[dtype]
    else:
        raise ValueError(f"unknown dtype {dtype!r}; expected float32, bfloat16 or float16")
    if resolved == torch.float16 and device.type == "cpu":
        raise ValueError("float16 is a GPU format; on the CPU use bfloat16")
    if resolved == torch.bfloat16 and device.type == "cpu" and cpu_runs_bf16() is False:
        warnings.warn(f"{no_bf16_units()}: bfloat16 is emulated and runs about 4x slower than float32 here; leave "
                      "the dtype at float32", stacklevel=3)
    return resolved


def shortest_first(texts: Sequence[object]) -> list[int]:
    """Indices of `texts` by length: batches of similar lengths carry little padding."""
    return sorted(range(len(texts)), key=lambda i: len(str(texts[i])))


class _Tower(nn.Module):
    """One media tower of a model as a module of its own, for `torch.compile` (not registered as a child)."""

    def __init__(self, model: EmbeddingModel, modality: str) -> None:
        super().__init__()
        self.model, self.modality = model, modality

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.encode_batch(self.modality, batch)


class EmbeddingModel(nn.Module):
    """A set of towers mapping text and media into one space of unit vectors.

    Subclasses implement `encode_batch`, `tokenize`, `overflowing`, `dim` and `logit_scale`, and fill
    `preprocess` (modality -> Preprocess, one per tower: `modalities` is read from it), `spec` and `checkpoint`
    (from which `identity` is made). The base class batches, normalises, places and casts.
    """

    batch_size: dict[str, int] = {"text": 256, "image": 32, "infrared": 32, "depth": 32, "audio": 16, "video": 4}

    def __init__(self) -> None:
        super().__init__()
        self.preprocess: dict[str, Preprocess] = {}
        self.spec = "unnamed"
        self.checkpoint = ""
        # Identities earlier versions gave the same weights: a collection built under one of them still opens.
        self.previous_checkpoints: tuple[str, ...] = ()
        # modality -> (compiled tower, its batch size, whether Inductor freezes it)
        self._compiled: dict[str, tuple[nn.Module, int, bool]] = {}

    # -- what subclasses provide ------------------------------------------------------------
    def encode_batch(self, modality: str, batch: torch.Tensor) -> torch.Tensor:
        """A batch in the tower's input layout ("text": (n, tokens) int64 ids; media: `media.load`'s layout with
        a leading n) -> (n, d) features, not yet normalised, in the model's dtype."""
        raise NotImplementedError

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """(n,) texts -> (n, tokens) int64 ids, padded as the text tower expects."""
        raise NotImplementedError

    def overflowing(self, texts: Sequence[str]) -> list[bool]:
        """Whether each text has more tokens than the text tower reads (it is then embedded from its start)."""
        raise NotImplementedError

    @property
    def dim(self) -> int:
        """d, the width of the shared space."""
        raise NotImplementedError

    def logit_scale(self, modality: str) -> float:
        """exp(logit_scale) of the tower that encodes `modality` (text pairs with it)."""
        raise NotImplementedError

    # -- shared machinery --------------------------------------------------------------------
    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities this model encodes, text included."""
        return ("text", *self.preprocess)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def identity(self) -> EncoderIdentity:
        return EncoderIdentity(spec=self.spec, checkpoint=self.checkpoint, dim=self.dim,
                               modalities=tuple(self.modalities))

    def check_modality(self, modality: str) -> str:
        """Canonical name of `modality`, or UnsupportedModalityError naming what the model can do."""
        name = canonical_modality(modality)
        if name not in self.modalities:
            raise UnsupportedModalityError.of(self.spec, name, self.modalities)
        return name

    def embed(self, modality: str, batch: torch.Tensor) -> torch.Tensor:
        """Preprocessed batch (token ids for 'text') -> (n, d) float32, L2-normalised, on the CPU."""
        # Computed in inference mode, handed back as an ordinary tensor: an inference tensor refuses in-place
        # updates and autograd (a linear probe trained on the vectors).
        return self._embed(modality, batch).clone()

    @torch.inference_mode()
    def _embed(self, modality: str, batch: torch.Tensor) -> torch.Tensor:
        modality = self.check_modality(modality)
        self._check_batch(modality, batch)
        if len(batch) == 0:
            return torch.empty(0, self.dim)
        if modality == "text":
            batch = batch.to(self.device)
        else:
            batch = batch.to(self.device, self.dtype)
        if modality in self._compiled:
            features = self._run_compiled(modality, batch).float()
        else:
            features = self.encode_batch(modality, batch).float()
        return torch.nn.functional.normalize(features, dim=-1).cpu()

    def _check_batch(self, modality: str, batch: torch.Tensor) -> None:
        """Refuse, in one line, inputs a tower would take and answer wrongly or with a shape error deep inside:
        pixels not yet preprocessed (uint8), token ids outside the vocabulary or beyond the context. NaN goes
        through: its row comes out NaN, and the pipeline fails that one file, not the batch."""
        if not isinstance(batch, torch.Tensor):
            raise TypeError(f"embed takes a torch.Tensor, not {type(batch).__module__}.{type(batch).__name__} "
                            "(torch.from_numpy turns an array into one)")
        if modality == "text":
            if batch.is_floating_point() or batch.is_complex():
                raise TypeError(f"embed('text', ...) takes token ids (model.tokenize(texts)), not {batch.dtype}")
            limits = self.token_limits()
            if limits is not None and batch.numel():
                vocabulary, context = limits
                if batch.ndim != 2 or batch.shape[1] > context:
                    raise ValueError(f"token ids must be (batch, at most {context}), got {tuple(batch.shape)}")
                if int(batch.min()) < 0 or int(batch.max()) >= vocabulary:
                    raise ValueError(f"token ids must lie in 0..{vocabulary - 1}, the vocabulary of {self.spec}; "
                                     "model.tokenize(texts) gives them")
            return
        if not batch.is_floating_point():
            raise TypeError(f"embed({modality!r}, ...) takes preprocessed float pixels (bindsearch.media.load), not "
                            f"{batch.dtype}: raw values would be read unscaled and unnormalised")

    def token_limits(self) -> tuple[int, int] | None:
        """(vocabulary size, longest token sequence) of the text tower, where `embed` can check token ids."""
        return None

    def compile_towers(self, modalities: Sequence[str] | None = None, batch_size: int | None = None,
                       freeze: bool | None = None) -> EmbeddingModel:
        """Run the media towers through `torch.compile` (Inductor) from now on; returns self.

        Inductor fuses the norms, GELU and residual adds into the matrix products around them. On the CPU it
        also freezes (`freeze=None` means: on the CPU only): the weights become constants of the compiled code,
        pre-packed for oneDNN (AMX tiles where the CPU has them). Measured on an AMX CPU with 2 threads, a
        ViT-L/14 image tower in bf16 ran 1.7x the eager one (`benchmarks/cpu_towers.py`). On an H100, freezing
        made the video tower 0.6x eager (it wraps our temporal-attention kernel badly) while compiling without
        it ran at 0.96x, and the eager video tower is the fastest there (`benchmarks/gpu.py`).
        The first batch of each modality pays the compilation (tens of seconds); every batch is then padded to
        `batch_size` (default: the model's `batch_size` for the modality) so that one compiled graph serves all,
        a short last batch included. Worth it for indexing many files, not for one query. The weights must not
        change afterwards.
        """
        from bindsearch.models.packed import unpack_linears

        names = [self.check_modality(m) for m in (modalities or self.preprocess)]
        unpack_linears(self)  # Inductor traces nn.Linear and packs the weights itself (as constants, frozen)
        if self.device.type == "cpu":
            # Inductor imports torch's C++ extension builder, whose import warns "No CUDA runtime is found" on a
            # machine without a GPU: true, and nothing a CPU user needs to hear.
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        for name in names:
            if name == "text":
                raise ValueError("compile_towers compiles the media towers; the text tower stays eager")
            size = batch_size or self.batch_size.get(name, 16)
            tower = torch.compile(_Tower(self, name), dynamic=False)
            self._compiled[name] = (tower, size, self.device.type == "cpu" if freeze is None else freeze)
        return self

    def _run_compiled(self, modality: str, batch: torch.Tensor) -> torch.Tensor:
        import torch._inductor.config as inductor_config

        tower, size, freeze = self._compiled[modality]
        outputs = []
        with inductor_config.patch(freezing=freeze):
            for start in range(0, batch.shape[0], size):
                chunk = batch[start : start + size]
                short = size - chunk.shape[0]
                if short:  # pad to the compiled shape; the padding's rows are dropped again below
                    chunk = torch.cat([chunk, chunk.new_zeros((short, *chunk.shape[1:]))])
                outputs.append(tower(chunk)[: size - short])
        return torch.cat(outputs)

    def encode(self, modality: str, items: Iterable[str | Path], batch_size: int | None = None) -> torch.Tensor:
        """Strings for 'text', file paths otherwise -> (n, d) float32 unit vectors.

        A file that cannot be decoded raises `MediaError` naming it; use `bindsearch.Collection` to skip
        bad files and keep going.
        """
        from bindsearch import media

        modality = self.check_modality(modality)
        if isinstance(items, str | bytes | os.PathLike):  # iterating would embed its characters, one by one
            raise TypeError(f"encode takes a list of {'texts' if modality == 'text' else 'paths'}, got one "
                            f"{type(items).__name__}: pass [{items!r}]")
        items = [_utf8_text(t) for t in items] if modality == "text" else [user_path(p) for p in items]
        size = checked_batch_size(batch_size) or self.batch_size.get(modality, 16)
        # Texts shortest first, so that each batch stops near its own longest text (text towers cut the padding
        # after it); the vectors go back in the caller's order.
        order = shortest_first(items) if modality == "text" else list(range(len(items)))
        out = []
        for start in range(0, len(items), size):
            chunk = [items[i] for i in order[start:start + size]]
            if modality == "text":
                batch = self.tokenize([str(t) for t in chunk])
            else:
                batch = torch.stack([media.load(modality, p, self.preprocess[modality]) for p in chunk])
            out.append(self.embed(modality, batch))
        if not out:
            return torch.empty(0, self.dim)
        vectors = torch.empty(len(items), self.dim)
        vectors[order] = torch.cat(out)
        return vectors

    def probabilities(self, modality: str, item: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Softmax over labels of exp(logit_scale) * cosine: item (d,) or (n, d), labels (k, d) -> (.., k)."""
        scale = self.logit_scale(modality)
        if not math.isfinite(scale):
            raise ValueError(f"model {self.spec} has no finite logit scale for {modality}")
        return torch.softmax(scale * item @ labels.T, dim=-1)


def _utf8_text(text: object) -> str:
    """A text to embed, refused in one line if it is not Unicode a tokenizer can read: bytes that were not UTF-8
    (a shell argument or a file name) reach Python as lone surrogates."""
    if not isinstance(text, str):  # str() would embed None as the word "None"
        raise TypeError(f"a text to embed must be a str, not {type(text).__name__} ({text!r})")
    if len(text) > TEXT_CHARS:  # a tower reads its first 77 or 128 tokens; all 17 MB took 7 s to tokenize
        text = text.lstrip()[:TEXT_CHARS]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"text {text[:80]!r} is not valid UTF-8 (at character {exc.start}); give it in UTF-8") \
            from None
    return text


TEXT_CHARS = 64 << 10
"""Characters of a text that are tokenized, from its first word: far more than any text tower reads (and as much
as `index` reads of a text file)."""

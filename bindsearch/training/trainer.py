"""Train one modality tower against the frozen text anchor (LanguageBind's recipe, at any size).

Symmetric InfoNCE between the tower's projected CLS and the cached caption vectors, a learnable
temperature (init 0.07), LoRA on the attention projections or full fine-tuning, random patch masking,
AdamW with linear warm-up and cosine decay, bf16 autocast, gradient accumulation, validation R@K every
`val_every` steps, and a checkpoint every `save_every` steps that `load_model` reads and `resume` continues.

Batches and masks are drawn from generators seeded by (seed, step), so a run resumed from a checkpoint
sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bindsearch.evaluation.metrics import ranks
from bindsearch.models.config import EncoderConfig, Preprocess, TowerConfig
from bindsearch.models.mini import InputConfig, MiniModel
from bindsearch.models.tower import Attention, VisionTower
from bindsearch.training.data import PairSet
from indexes.cpu import cpu_runs_bf16

__all__ = ["SMALL_INPUT", "LoRALinear", "TrainConfig", "TrainResult", "add_lora", "contrastive_loss", "evaluate",
           "train"]

STATE_FILE = "train_state.pt"
LOG_FILE = "train_log.jsonl"

SMALL_INPUT = Preprocess(image_size=48, num_frames=4, num_mel_bins=32, target_length=192)
"""What a tower trained here reads unless told otherwise: 48 px frames, 4 of them, 32 mel bins x 192 frames; the
size of bindsearch-mini's towers, which train in minutes on a CPU."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything one tower's training run depends on; stored in its checkpoint for `resume`."""

    modality: str
    tower: TowerConfig
    preprocess: Preprocess
    input: InputConfig | None = None  # only for modalities that are not built in
    steps: int = 1000
    batch_size: int = 128
    accumulate: int = 1  # micro-batches per optimizer step; each has its own in-batch negatives
    lr: float = 1e-3
    # The temperature's own learning rate (0: `lr`). Captions of a synthetic world sit close together in the
    # text space, so a useful temperature is far below the initial 0.07 and must be reached in few steps.
    temperature_lr: float = 0.0
    # The video tower's temporal blocks' own learning rate (0: `lr`): new layers on a pretrained tower.
    temporal_lr: float = 0.0
    weight_decay: float = 0.05
    warmup: int = 50
    lora_rank: int = 0  # 0: full fine-tuning
    lora_alpha: float = 16.0
    mask_ratio: float = 0.5
    # bf16 autocast; None: where the CPU multiplies bf16 in hardware (elsewhere a step ran 4x slower than fp32).
    bf16: bool | None = None
    val_every: int = 200
    save_every: int = 200
    seed: int = 0
    threads: int = 1  # on a busy 2-core machine one thread ran 5x faster than two (OpenMP waits)
    init: str | None = None  # a mini checkpoint whose tower starts the run (needed for LoRA)
    init_modality: str | None = None  # which of its towers (default: `modality`)
    extra: dict[str, Any] = field(default_factory=dict)  # how a recipe builds its data (e.g. time reversal)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """Where the checkpoint is, how far training went, its last validation figures and time taken."""

    directory: Path
    step: int
    loss: float
    validation: dict[str, float]
    seconds: float
    steps_per_second: float
    model: MiniModel | None = None  # the model as trained (LoRA not merged), in train mode


# -- LoRA ---------------------------------------------------------------------------------------
class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update: y = W0 x + (alpha / r) B A x."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))  # zero: training starts at W0
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scale

    def merged(self) -> nn.Linear:
        """A plain nn.Linear with the update folded in."""
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * self.lora_B @ self.lora_A)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


def add_lora(tower: nn.Module, rank: int, alpha: float) -> None:
    """Freeze `tower` and wrap every attention projection (spatial and temporal) in LoRALinear."""
    tower.requires_grad_(False)
    for module in tower.modules():
        if isinstance(module, Attention):
            for name in _PROJECTIONS:
                setattr(module, name, LoRALinear(getattr(module, name), rank, alpha))


def merge_lora(tower: nn.Module) -> None:
    """Replace every LoRALinear in `tower` by its merged nn.Linear (in place)."""
    for module in tower.modules():
        if isinstance(module, Attention):
            for name in _PROJECTIONS:
                layer = getattr(module, name)
                if isinstance(layer, LoRALinear):
                    setattr(module, name, layer.merged())


# -- the model being trained --------------------------------------------------------------------
def masked_features(tower: VisionTower, x: torch.Tensor, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """VisionTower.forward that keeps a random (1 - ratio) of the patch tokens (same ones in every frame).

    (b, ...) input -> (b, width) pooled CLS. With ratio 0 it is exactly `tower(x)`.
    """
    tokens, t = tower.tokens(x)
    if ratio > 0:
        bt, n1, d = tokens.shape
        keep = max(1, round((n1 - 1) * (1 - ratio)))
        order = torch.rand(bt // t, n1 - 1, generator=generator).argsort(dim=1)[:, :keep] + 1
        order = order.to(tokens.device).repeat_interleave(t, dim=0)
        tokens = torch.cat([tokens[:, :1], tokens.gather(1, order.unsqueeze(-1).expand(-1, -1, d))], dim=1)
    pooled = tower.post_layernorm(tower.encoder(tower.pre_layrnorm(tokens), rows=0))
    return pooled.view(-1, t, pooled.shape[-1]).mean(dim=1)


def contrastive_loss(media: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
                     groups: torch.Tensor | None = None, negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE: media (b, d), text (b, d) unit rows -> scalar; same-group pairs are all positives.

    `negatives` (b, k, d): hard negative captions of each item, added to that item's media -> text softmax.
    """
    scale = logit_scale.exp().clamp(max=100.0)
    logits = scale * media @ text.T
    if groups is None:
        target = torch.eye(len(media), device=media.device)
    else:
        target = (groups[:, None] == groups[None, :]).float()
    target = target / target.sum(dim=1, keepdim=True)
    to_media = -(target * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    if negatives is not None:
        logits = torch.cat([logits, scale * torch.einsum("bd,bkd->bk", media, negatives)], dim=1)
        target = F.pad(target, (0, negatives.shape[1]))
    to_text = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
    return (to_text + to_media) / 2


def _build_model(config: TrainConfig) -> MiniModel:
    inputs = {config.modality: config.input} if config.input else None
    model = MiniModel({config.modality: config.tower}, {config.modality: config.preprocess}, inputs)
    if config.init:
        from bindsearch.models.loading import load_model

        source = load_model(config.init, device="cpu")
        if not isinstance(source, MiniModel):
            raise ValueError(f"--init {config.init} is not a bindsearch-mini checkpoint")
        name = config.init_modality or config.modality
        if name not in source.vision_models:
            raise ValueError(f"{config.init} has no {name} tower (it has {', '.join(source.vision_models)})")
        _load_tower(model.vision_models[config.modality], source.vision_models[name], config.seed)
        model.visual_projections[config.modality].load_state_dict(source.visual_projections[name].state_dict())
        model.logit_scales[config.modality].data.copy_(source.logit_scales[name].data)
    else:
        torch.manual_seed(config.seed)
        model.vision_models[config.modality].apply(_init_weights)
        nn.init.normal_(model.visual_projections[config.modality].weight, std=config.tower.encoder.width ** -0.5)
    if config.lora_rank > 0:
        add_lora(model.vision_models[config.modality], config.lora_rank, config.lora_alpha)
    return model


def _load_tower(tower: VisionTower, source: VisionTower, seed: int) -> None:
    """Copy `source` into `tower`; an image tower may start a video tower (LanguageBind's recipe).

    The video tower's temporal blocks, absent from an image tower, start with a zero output projection, so
    that before training the video tower is the image tower averaged over frames, plus the random frame
    embeddings that tell the frames apart.
    """
    mine, theirs = tower.config, source.config
    if (mine.encoder, mine.input_size, mine.patch_size, mine.channels) != (
            theirs.encoder, theirs.input_size, theirs.patch_size, theirs.channels):
        raise ValueError(f"the --init tower ({_shape(theirs)}) is shaped differently from the one asked for "
                         f"({_shape(mine)}); give the --width, --layers and --patch it was trained with")
    missing, unexpected = tower.load_state_dict(source.state_dict(), strict=False)
    if unexpected or any(".temporal_" not in key for key in missing):
        raise ValueError(f"the --init tower does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    torch.manual_seed(seed)
    for block in tower.encoder.layers:
        if block.num_frames:
            block.temporal_attn.apply(_init_weights)
            nn.init.zeros_(block.temporal_attn.out_proj.weight)
            _init_temporal_embedding(block)


def _shape(config: TowerConfig) -> str:
    size = "x".join(map(str, config.input_size))
    return (f"width {config.encoder.width}, {config.encoder.layers} layers, patch {config.patch_size}, {size} input, "
            f"{config.channels} channels")


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
    elif hasattr(module, "class_embedding"):
        nn.init.normal_(module.class_embedding, std=0.02)
    elif getattr(module, "num_frames", 0):
        _init_temporal_embedding(module)


def _init_temporal_embedding(block: nn.Module) -> None:
    # As LanguageBind's video tower: random, std width ** -0.5 (it was left at zero here before).
    width = block.temporal_embedding.shape[-1]
    nn.init.normal_(block.temporal_embedding, std=width ** -0.5)


def _schedule(config: TrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        progress = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _autocast(bf16: bool | None) -> torch.autocast:
    """CPU bf16 autocast when asked, or (None) when the CPU has bf16 matrix units."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(cpu_runs_bf16()) if bf16 is None else bf16)


# -- validation ---------------------------------------------------------------------------------
@torch.inference_mode()
def embed_inputs(model: MiniModel, modality: str, inputs: torch.Tensor, batch: int = 256,
                 bf16: bool | None = None) -> torch.Tensor:
    """(n, *input) float16 cached inputs -> (n, 384) float32 unit rows (eval mode, no masking)."""
    out = []
    for start in range(0, len(inputs), batch):
        with _autocast(bf16):
            out.append(model.encode_batch(modality, inputs[start:start + batch].float()).float())
    return F.normalize(torch.cat(out), dim=-1)


def evaluate(model: MiniModel, modality: str, data: PairSet, bf16: bool | None = None) -> dict[str, float]:
    """Text->X R@1/R@5 with each item's first caption as query, X->text R@1; a hit is any same-group item."""
    was_training = model.training
    model.eval()
    vectors = embed_inputs(model, modality, data.inputs, bf16=bf16)
    model.train(was_training)
    text = data.text[data.first_caption[:-1]]
    same = (data.groups[:, None] == data.groups[None, :]).numpy()
    t2x = ranks((text @ vectors.T).numpy(), same)
    x2t = ranks((vectors @ text.T).numpy(), same)
    return {"t2x_R@1": float((t2x <= 1).mean() * 100), "t2x_R@5": float((t2x <= 5).mean() * 100),
            "x2t_R@1": float((x2t <= 1).mean() * 100)}


# -- checkpoints --------------------------------------------------------------------------------
def _export(model: MiniModel, directory: Path, dtype: torch.dtype = torch.float32) -> None:
    """Write the loadable checkpoint (LoRA merged into a copy, never into the model being trained)."""
    import copy

    plain = copy.deepcopy(model)
    for tower in plain.vision_models.values():
        merge_lora(tower)
    plain.save(directory, dtype)


def _save_state(directory: Path, model: MiniModel, optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LRScheduler, config: TrainConfig, step: int, data: str) -> None:
    _export(model, directory)
    state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "config": config.to_dict(), "data": data}
    tmp = directory / (STATE_FILE + ".tmp")
    try:  # torch writing by path said of a full disk only "[enforce fail ...] unexpected pos", a traceback
        with tmp.open("wb") as handle:
            torch.save(state, handle)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        # A disk that fills part-way: the write's OSError, then torch's zip writer failing to close the archive
        # ("unexpected pos"), which carries it as its context.
        cause = exc if isinstance(exc, OSError) else exc.__context__ or exc.__cause__
        if not isinstance(cause, OSError) or cause.errno is None:
            raise
        raise OSError(cause.errno, cause.strerror, str(directory / STATE_FILE)) from None
    os.replace(tmp, directory / STATE_FILE)


def _comparable(config: dict[str, Any], saved: dict[str, Any] | None = None) -> dict[str, Any]:
    # What may differ between a run and its resumption: how often it validates and saves, thread count, the
    # arithmetic (bf16 autocast or not, which a resumption on another CPU may choose differently); and
    # settings added to TrainConfig after `saved` was written, left at their defaults.
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    return {k: v for k, v in config.items() if k not in ("val_every", "save_every", "threads", "bf16")
            and not (saved is not None and k not in saved and v == defaults.get(k))}


def _param_groups(model: MiniModel, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices only; the temperature and, if set, temporal blocks at their own rate."""
    scale = model.logit_scales[config.modality]
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p is not scale]
    temporal = [(n, p) for n, p in named if config.temporal_lr and ".temporal_" in n]
    rest = [(n, p) for n, p in named if not (config.temporal_lr and ".temporal_" in n)]
    groups = [{"params": [p for _, p in rest if p.ndim >= 2], "weight_decay": config.weight_decay},
              {"params": [p for _, p in rest if p.ndim < 2], "weight_decay": 0.0},
              {"params": [scale], "weight_decay": 0.0, "lr": config.temperature_lr or config.lr}]
    if temporal:
        groups += [{"params": [p for _, p in temporal if p.ndim >= 2], "weight_decay": config.weight_decay,
                    "lr": config.temporal_lr},
                   {"params": [p for _, p in temporal if p.ndim < 2], "weight_decay": 0.0, "lr": config.temporal_lr}]
    return groups


def _truncate_log(path: Path, step: int) -> None:
    # Steps logged after the last checkpoint of an interrupted run (or by a run started over) are run again: keep
    # one record per step.
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            logged = record["step"]
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines):  # an append cut short by a crash: its step is run again
                break
            raise ValueError(f"{path}: line {number} is not a training record ({exc}); delete that line, or the file "
                             "to start the log afresh") from None
        if logged <= step:
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept))


def train(config: TrainConfig, data: PairSet, out: str | Path, val: PairSet | None = None,
          resume: bool = True, stop_after: int | None = None,
          log: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train `config.modality`'s tower on `data`, writing checkpoints to `out`.

    With `resume` and a `train_state.pt` in `out`, training continues from it (the configs must agree).
    `stop_after` ends the run after that many optimizer steps in total (to simulate an interruption).
    """
    out = Path(out)
    _check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    if config.bf16 is None:  # the arithmetic this CPU chose, as the run's config records it
        config = replace(config, bf16=bool(cpu_runs_bf16()))
    torch.set_num_threads(config.threads)
    model = _build_model(config)
    model.train()
    param_groups = _param_groups(model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(param_groups, lr=config.lr, betas=(0.9, 0.98), fused=True)
    scale = model.logit_scales[config.modality]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    step = 0
    state_file = out / STATE_FILE
    trained_on = data.fingerprint()
    if resume and state_file.is_file():
        state = torch.load(state_file, weights_only=True)
        saved, asked = _comparable(state["config"]), _comparable(config.to_dict(), state["config"])
        if saved != asked:
            changed = ", ".join(f"{k} {saved.get(k)!r} -> {asked.get(k)!r}" for k in sorted(set(saved) | set(asked))
                                if saved.get(k) != asked.get(k))
            raise ValueError(f"{state_file} was written by a different training config ({changed}); "
                             f"train into another folder than {out}, or delete {state_file} to start over")
        if state.get("data", trained_on) != trained_on:  # states from before the data was recorded: not checked
            raise ValueError(f"{state_file} was trained on other pairs (another CSV, or its files changed since); "
                             f"train into another folder than {out}, or delete {state_file} to start over")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = int(state["step"])
    _truncate_log(out / LOG_FILE, step)  # from 0 too: a run killed before its first checkpoint, or --no-resume
    (out / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2, default=str) + "\n")

    tower = model.vision_models[config.modality]
    projection = model.visual_projections[config.modality]
    micro = max(1, config.batch_size // config.accumulate)
    last = stop_after if stop_after is not None else config.steps
    start_step, start = step, time.perf_counter()
    loss_value, validation = float("nan"), {}
    while step < min(last, config.steps):
        rng = np.random.default_rng([config.seed, step])
        masks = torch.Generator().manual_seed(int(rng.integers(2**62)))
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(config.accumulate):
            batch = data.sample(micro, rng)
            with _autocast(config.bf16):
                features = projection(masked_features(tower, batch.inputs.float(), config.mask_ratio, masks))
            loss = contrastive_loss(F.normalize(features.float(), dim=-1), batch.text, scale, batch.groups,
                                    batch.negatives)
            (loss / config.accumulate).backward()
            total += float(loss.detach()) / config.accumulate
        norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
        if not (math.isfinite(total) and math.isfinite(norm)):  # a step now would make every weight NaN
            _diverged(out, config, step + 1, ("loss", total) if not math.isfinite(total) else ("gradient norm", norm))
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            scale.clamp_(0, math.log(100))
        step += 1
        loss_value = total
        record: dict[str, Any] = {"step": step, "loss": round(total, 4), "lr": scheduler.get_last_lr()[0],
                                  "temperature": round(float(1 / scale.detach().exp()), 4)}
        if val is not None and (step % config.val_every == 0 or step == config.steps):
            validation = evaluate(model, config.modality, val, config.bf16)
            record.update(validation)
        if step % config.save_every == 0 or step == config.steps or step == last:
            _save_state(out, model, optimizer, scheduler, config, step, trained_on)
        if log is not None and (step % 10 == 0 or "t2x_R@1" in record or step == last):
            log(record)
        with (out / LOG_FILE).open("a") as handle:
            handle.write(json.dumps(record) + "\n")
    seconds = time.perf_counter() - start
    if val is not None and not validation:  # nothing left to train: report where the checkpoint stands
        validation = evaluate(model, config.modality, val, config.bf16)
    return TrainResult(out, step, loss_value, validation, seconds,
                       (step - start_step) / seconds if seconds > 0 else 0.0, model)


class TrainingDiverged(RuntimeError):
    """The loss or gradient stopped being finite: nothing more to learn at this learning rate."""


def _diverged(out: Path, config: TrainConfig, step: int, what: tuple[str, float]) -> None:
    saved = "holds the last good checkpoint" if (out / STATE_FILE).is_file() else "was not written yet"
    raise TrainingDiverged(f"the {what[0]} became {what[1]} at step {step}: lower --lr (now {config.lr:g}) or raise "
                           f"--warmup (now {config.warmup}); {out / STATE_FILE} {saved}")


_STARTED = {LOG_FILE, "train_config.json", "cache"}
"""What a run writes into its folder before its first checkpoint (`STATE_FILE`)."""


def _check_out(out: Path) -> None:
    """Refuse to train into a folder that holds something else than a run of ours: a checkpoint without a
    training state (a copy of the shipped bindsearch-mini) would be replaced by one tower, a user's files mixed in."""
    if not out.is_dir():
        return
    held = {p.name for p in out.iterdir()}
    if STATE_FILE not in held and "train_config.json" not in held and held - _STARTED:  # no run of ours began
        raise ValueError(f"{out} holds {sorted(held - _STARTED)[0]} and no training run ({STATE_FILE}); train into a "
                         "new or empty folder (--out)")


def default_tower(modality: str, preprocess: Preprocess, width: int = 128, layers: int = 4, patch: int = 8
                  ) -> TowerConfig:
    """A tower whose input matches what `preprocess` produces for `modality`."""
    frames = preprocess.num_frames if modality == "video" else 1
    if modality == "audio":
        size = (preprocess.num_mel_bins, preprocess.target_length)
    else:
        size = (preprocess.image_size, preprocess.image_size)
    return tower_config(width, layers, size, patch, frames=frames)


def tower_config(width: int, layers: int, input_size: tuple[int, int], patch: int, frames: int = 1,
                 heads: int | None = None) -> TowerConfig:
    """A small ViT tower config: `frames > 1` switches temporal attention on (video)."""
    if any(side % patch for side in input_size):  # a ViT would drop the rows and columns left over, unseen
        raise ValueError(f"patch {patch} does not divide the input ({input_size[0]} x {input_size[1]}); choose a "
                         f"patch side that divides both, e.g. {math.gcd(*input_size)}")
    encoder = EncoderConfig(width=width, layers=layers, heads=heads or max(1, width // 32), mlp_width=4 * width,
                            act="gelu")
    return TowerConfig(encoder, input_size, patch, 3, num_frames=frames, temporal_attention=frames > 1)


def _preprocess_from_json(values: Any) -> Preprocess:
    """A modality config's "preprocess" object, every value of its field's type: "image_size": "16" was a TypeError
    deep in building the tower."""
    if not isinstance(values, dict):
        raise ValueError(f'preprocess must be an object such as {{"image_size": 48}}, not {json.dumps(values)}')
    defaults = Preprocess()
    names = [f.name for f in fields(Preprocess)]
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            raise ValueError(f"unknown preprocess key {key!r}; the keys are {', '.join(names)}")
        default = getattr(defaults, key)

        def number(v: Any) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

        if isinstance(default, tuple):
            if not (isinstance(value, list) and len(value) == len(default) and all(map(number, value))):
                raise ValueError(f"preprocess {key} must be a list of {len(default)} numbers, not {json.dumps(value)}")
            checked[key] = tuple(float(v) for v in value)
        elif isinstance(default, int):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"preprocess {key} must be a whole number of at least 1, not {json.dumps(value)}")
            checked[key] = value
        else:
            if not number(value):
                raise ValueError(f"preprocess {key} must be a number, not {json.dumps(value)}")
            checked[key] = float(value)
    return replace(SMALL_INPUT, **checked)  # the rest as a tower trained here reads it: 48 px, not LanguageBind's 224


def read_modality_config(path: str | Path) -> tuple[InputConfig, Preprocess]:
    """A new modality from JSON: {"name", "adapter", "extensions", "value_range", "preprocess": {...}}.

    Registers it with `bindsearch.media` so its files decode like any built-in modality's.
    """
    from bindsearch.models.mini import register_input

    try:  # json's "Expecting property name ...: line 1 column 2" alone did not say which file
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"a JSON object was expected, not {type(data).__name__}")
        known = (*(f.name for f in fields(InputConfig)), "preprocess")
        if unknown := [key for key in data if key not in known]:  # a misspelt key was left at its default
            raise ValueError(f"unknown key {', '.join(map(repr, unknown))}; the keys are {', '.join(known)}")
        prep = _preprocess_from_json(data.pop("preprocess", {}))
        config = InputConfig.from_dict(data)
        config.check()
        register_input(config)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc})") from None
    except KeyError as exc:
        raise ValueError(f"{path}: no {exc} key; a modality config needs at least a name") from None
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    return config, prep


def train_pairs(pairs_csv: str | Path, modality: str, out: str | Path, *, val_csv: str | Path | None = None,
                tower: TowerConfig | None = None, preprocess: Preprocess | None = None,
                input_config: InputConfig | None = None, cache: str | Path | None = None, workers: int = 2,
                resume: bool = True, log: Callable[[dict[str, Any]], None] | None = None,
                **settings: Any) -> TrainResult:
    """`bindsearch train tower`: a `path,caption` CSV -> a mini checkpoint in `out` for `modality`.

    Without `val_csv`, a tenth of the files (at most 500) is held out for validation when there are 20 or
    more; `settings` are TrainConfig fields (steps, batch_size, lr, lora_rank, mask_ratio ...).
    """
    from bindsearch.training.data import read_pairs

    preprocess = preprocess or SMALL_INPUT
    tower = tower or default_tower(modality, preprocess)
    config = TrainConfig(modality, tower, preprocess, input_config, **settings)
    if not (math.isfinite(config.lr) and config.lr > 0):  # AdamW's "Invalid learning rate: -1.0" named no option
        raise ValueError(f"--lr must be a positive learning rate (e.g. 1e-3), not {config.lr:g}")
    if config.batch_size // config.accumulate < 2:
        raise ValueError(f"--batch-size {config.batch_size} over --accumulate {config.accumulate} micro-batches "
                         "leaves fewer than 2 pairs in each: InfoNCE needs another pair to contrast with")
    _check_out(Path(out))  # before the pairs are decoded into its cache
    cache = Path(cache) if cache is not None else Path(out) / "cache"
    pairs = read_pairs(pairs_csv)
    if val_csv is not None:
        val_pairs = read_pairs(val_csv)
    elif len(pairs) >= 20:
        order = np.random.default_rng([config.seed, 7]).permutation(len(pairs))
        held = min(500, len(pairs) // 10)
        val_pairs, pairs = pairs.subset(order[:held].tolist()), pairs.subset(sorted(order[held:].tolist()))
    else:  # too few to hold any out: validated on what it trains on (as --val's help says)
        val_pairs = pairs
    if len(pairs) < 2:
        raise ValueError(f"{pairs_csv} holds {len(pairs)} file(s) to train on; contrastive training needs two or "
                         "more (each batch's other pairs are its negatives)")
    data = PairSet.build(modality, pairs, preprocess, cache, workers)
    val = PairSet.build(modality, val_pairs, preprocess, cache, workers)
    return train(config, data, out, val=val, resume=resume, log=log)

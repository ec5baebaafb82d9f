"""`load_model(spec)`: local checkpoint directories, Hugging Face repos and aliases, and several at once."""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bindsearch.errors import UnsupportedModalityError
from bindsearch.models.config import MODALITIES, ModelConfig, canonical_modality, from_languagebind_config
from bindsearch.models.specs import ALIASES, LANGUAGEBIND_ALL, hub_cache, is_builtin, is_mini_checkpoint

if TYPE_CHECKING:  # torch and the towers are imported where weights are read: `index` with nothing to embed
    import torch  # needs neither (`spec_modalities`)

    from bindsearch.models.base import EmbeddingModel

__all__ = ["ALIASES", "ModelLoadError", "absolute_spec", "load_model", "merge_lora", "read_state_dict",
           "resolve_checkpoint", "spec_modalities"]


class ModelLoadError(RuntimeError):
    """A model spec could not be resolved or its checkpoint could not be read."""


class _NotCached(ModelLoadError):
    """A Hugging Face repo neither in the cache nor downloadable now."""

    def __init__(self, repo: str, why: str):
        super().__init__(f"{repo} is not in the Hugging Face cache and the hub could not be reached ({why}); "
                         f"download it with: hf download {repo} (or, if it is a folder named relative to where a "
                         "collection was indexed, give --model with its path from here)")
        self.repo, self.why = repo, why


# The frozen anchor's tensors in a LanguageBind checkpoint: every checkpoint carries a copy.
_TEXT_KEYS = ("text_model.", "text_projection.")


def _hub_download(repo_id: str, offline: bool = False) -> Path:
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.bin"]
    offline = offline or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    cache = str(hub_cache())  # the same place `default_model` looks, whatever huggingface_hub read at its import
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=offline, cache_dir=cache))
    except Exception as first:  # no network, or not cached: the cache alone may still have it
        try:
            return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True, cache_dir=cache))
        except Exception:
            raise _NotCached(repo_id, type(first).__name__) from None


def resolve_checkpoints(specs: Sequence[str]) -> list[Path]:
    """`resolve_checkpoint` of each spec; the Hugging Face repos missing are named together (`languagebind` needs
    five: the advice to download one would only lead to the next), and once the hub cannot be reached the rest
    are looked for in the cache alone."""
    found, missing, offline = [], [], False
    for s in specs:
        try:
            found.append(resolve_checkpoint(s, offline=offline))
        except _NotCached as exc:
            missing.append(exc)
            offline = True
    if len(missing) == 1:
        raise missing[0]
    if missing:
        repos = [m.repo for m in missing]
        raise ModelLoadError(f"{len(repos)} checkpoints are not in the Hugging Face cache and the hub could not be "
                             f"reached ({missing[0].why}): {', '.join(repos)}; download them with: "
                             + "; ".join(f"hf download {r}" for r in repos))
    return found


def resolve_checkpoint(spec: str, offline: bool = False) -> Path:
    """A spec (directory, alias, `hf-hub:org/name` or `org/name`) -> local checkpoint directory (`offline`: from
    the Hugging Face cache alone)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    repo = ALIASES.get(spec.lower())
    if repo is None and spec.startswith("hf-hub:"):
        repo = spec[len("hf-hub:"):]
    if repo is None and spec.startswith("languagebind:"):
        raise ModelLoadError(f"unknown model alias {spec!r}; known: {', '.join(sorted(ALIASES))}")
    if repo is None and re.fullmatch(r"[\w-][\w.-]*/[\w.-]+", spec) and not path.exists():  # not ./x
        repo = spec
    if repo is None:
        raise ModelLoadError(f"{spec} is neither a checkpoint directory nor a known model name "
                             f"(try languagebind:video_ft or a folder with config.json)")
    return _hub_download(repo, offline)


def _load_file(path: Path, keep: Callable[[str], bool] | None = None) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                state = {k: f.get_tensor(k) for k in f.keys() if keep is None or keep(k)}
        else:
            import torch

            # weights_only: a checkpoint is data, never code to run. Mapped, so that the tensors `keep` leaves out
            # are never read from disk.
            try:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=keep is not None)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                state = torch.load(path, map_location="cpu", weights_only=True)  # torch's old format: not mapped
            state = state if keep is None else {k: v for k, v in state.items() if keep(k)}
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing; the checkpoint is incomplete, {_download_again(path)}") from None
    except Exception as exc:
        if path.stat().st_size == 0:
            raise ModelLoadError(f"{path} is empty (a download cut short?); {_download_again(path)}") from None
        raise ModelLoadError(f"{path} could not be read as weights ({type(exc).__name__}{_first_sentence(exc)}); "
                             f"{_download_again(path)}") from None
    _check_weights(path, state)
    return state


def _first_sentence(exc: Exception, limit: int = 200) -> str:
    """': ' and the first sentence of an error's message ('' for none: an EOFError has none), whole: torch's
    message for a cut-short file goes on for four sentences, and cut at a length it ended mid-word."""
    why = re.split(r"(?<=[.!?])\s", (str(exc).splitlines() or [""])[0].strip(), maxsplit=1)[0].rstrip(".")
    return f": {why if len(why) <= limit else why[:limit - 3] + '...'}" if why else ""


def _check_weights(path: Path, state: dict[str, torch.Tensor]) -> None:
    """A weight that holds NaN or infinity makes every vector NaN (and `index` blamed each media file for it); an
    integer tensor cannot be a weight (only the `position_ids` buffers are integers). Either is a damaged or
    wrongly converted file: refused here, naming it. A sum is not finite where any element is not, and takes a
    twentieth of `isfinite(...).all()`'s time (0.14 s against 2.7 s for a ViT-L tower); only a sum that is not
    finite (or a float16 one past 65504) is checked element by element."""
    import torch

    for key, value in state.items():
        if value.is_floating_point():
            if not torch.isfinite(value.sum()) and not torch.isfinite(value).all():
                raise ModelLoadError(f"{path}: tensor {key} holds NaN or infinity, so every vector would be NaN; "
                                     f"the file is damaged, {_download_again(path)}")
        elif not key.endswith("position_ids"):
            raise ModelLoadError(f"{path}: tensor {key} is {str(value.dtype).removeprefix('torch.')}, not floating "
                                 f"point as a weight is; the file is damaged or wrongly converted, "
                                 f"{_download_again(path)}")


def read_state_dict(directory: Path, keep: Callable[[str], bool] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint directory (those whose names `keep` accepts): single file or sharded
    (`*.index.json`), safetensors or bin."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (directory / name).is_file():
            return _load_file(directory / name, keep)
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = directory / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
                if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
                    raise ValueError("weight_map is not an object of file names")
            except (ValueError, KeyError, TypeError) as exc:  # not JSON, or not a shard index
                raise ModelLoadError(f"{index} is not a shard index ({type(exc).__name__}: {exc}); "
                                     f"{_download_again(index)}") from None
            shards = sorted({f for k, f in weight_map.items() if keep is None or keep(k)})
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(_load_file(directory / shard, keep))
            return state
    raise ModelLoadError(f"{directory} has no model.safetensors, pytorch_model.bin or sharded index; "
                         f"{_download_again(directory / 'config.json')}")


def _download_again(path: Path) -> str:
    """What to do about a file missing from a checkpoint: the `hf download` command when it lies in the Hugging
    Face cache (`models--org--name/snapshots/<rev>/...`)."""
    repo = next((part for part in path.parts if part.startswith("models--")), None)
    if repo is None or "snapshots" not in path.parts:
        return "download it again"
    return f"download it again: hf download {repo.removeprefix('models--').replace('--', '/')}"


_LORA = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


def merge_lora(state: dict[str, torch.Tensor], r: int, alpha: float) -> dict[str, torch.Tensor]:
    """Fold peft LoRA adapters into their base weights once: W = W0 + (alpha / r) * B @ A."""
    merged: dict[str, torch.Tensor] = {}
    adapters: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        key = key.replace(".base_model.model.", ".").replace(".base_layer.", ".")
        match = _LORA.match(key)
        if match:
            adapters.setdefault(match["module"], {})[match["ab"]] = value
        else:
            merged[key] = value
    if adapters and r <= 0:
        raise ModelLoadError("checkpoint holds LoRA adapters but its config says lora_r = 0")
    for module, ab in adapters.items():
        if set(ab) != {"A", "B"} or f"{module}.weight" not in merged:
            raise ModelLoadError(f"incomplete LoRA adapter for {module}")
        weight = merged[f"{module}.weight"]
        delta = (alpha / r) * (ab["B"].double() @ ab["A"].double())
        merged[f"{module}.weight"] = (weight.double() + delta).to(weight.dtype)
    return merged


def _rename(state: dict[str, torch.Tensor], modality: str) -> dict[str, torch.Tensor]:
    """Published CLIP-style names -> this package's module names for one modality checkpoint."""
    out = {}
    for key, value in state.items():
        if key.endswith("position_ids"):
            continue
        if key.startswith("vision_model."):
            key = f"vision_models.{modality}." + key[len("vision_model."):]
            if key.endswith("embeddings.patch_embedding.weight") and value.ndim == 5:
                value = value[:, :, 0]  # vl_new's Conv3d with a tube of one frame is a Conv2d
        elif key.startswith("visual_projection."):
            key = f"visual_projections.{modality}." + key[len("visual_projection."):]
        elif key == "logit_scale":
            key = f"logit_scales.{modality}"
        out[key] = value
    return out


def _read_config(directory: Path) -> tuple[ModelConfig, dict]:
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"{directory} has no config.json; is it a LanguageBind checkpoint?")
    try:
        config = json.loads(config_path.read_text())
        if not isinstance(config, dict):
            raise ValueError(f"a JSON object was expected, not {type(config).__name__}")
        return from_languagebind_config(config)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelLoadError(f"{config_path}: {exc}") from None


def _load_weights(directory: Path, cfg: ModelConfig, lora: dict, text_only: bool) -> dict[str, torch.Tensor]:
    keep = (lambda key: key.startswith(_TEXT_KEYS)) if text_only else None
    return _rename(merge_lora(read_state_dict(directory, keep), lora["r"], lora["alpha"]), cfg.modality)


def _fingerprint(directory: Path, sample: int = 64 << 10) -> str:
    """Identity of a checkpoint: its config, and each weight file's name, size and bytes at its start, middle and
    end (`sample` each). Weights retrained at the same shapes differ there; a checkpoint of gigabytes is not read
    whole to say so."""
    digest = hashlib.sha256((directory / "config.json").read_bytes())
    for f in _weight_files(directory):
        size = f.stat().st_size
        digest.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as handle:
            for offset in sorted({0, max(0, size // 2 - sample // 2), max(0, size - sample)}):
                handle.seek(offset)
                digest.update(handle.read(sample))
    return digest.hexdigest()[:16]


def _fingerprint_by_sizes(directory: Path) -> str:
    """The identity versions before 0.2 gave a checkpoint (config, weight files' names and sizes only), so that the
    collections they built still open with the same weights."""
    digest = hashlib.sha256((directory / "config.json").read_bytes())
    for f in _weight_files(directory):
        digest.update(f"{f.name}:{f.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def _weight_files(directory: Path) -> list[Path]:
    """The weight files of a checkpoint directory; a link whose target is gone (the Hugging Face cache keeps files
    as links to blobs) is an incomplete checkpoint."""
    files = [f for f in sorted(directory.iterdir()) if f.suffix in (".safetensors", ".bin")]
    for f in files:
        if not f.exists():
            raise ModelLoadError(f"{f} is a link to a file that is gone; the checkpoint is incomplete, "
                                 f"{_download_again(f)}")
    return files


def _split_specs(spec: str | Sequence[str]) -> list[str]:
    """The specs of a comma-separated spec, `languagebind` expanded, and a local folder as its absolute path: a
    collection records the spec, and `runs/depth` would load from nowhere else than where it was indexed."""
    if isinstance(spec, os.PathLike):  # a folder, given as a Path
        spec = os.fspath(spec)
    odd = [s for s in (spec if isinstance(spec, Sequence) and not isinstance(spec, str) else [spec])
           if not isinstance(s, str | os.PathLike)]
    if odd:
        raise TypeError(f"a model spec is a str ('languagebind:video_ft', 'random:tiny', a folder), a Path, or a "
                        f"list of them; not {type(odd[0]).__name__}")
    specs = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s) for s in spec]
    expanded = []
    for s in specs:
        expanded.extend(LANGUAGEBIND_ALL if s.lower() == "languagebind" else [s])
    return [_absolute(s) for s in expanded if s]


def absolute_spec(spec: str) -> str:
    """A comma-separated spec with its local folders spelled as absolute paths (aliases left as they are)."""
    return ",".join(_absolute(p.strip()) for p in spec.split(","))


def _absolute(spec: str) -> str:
    """One spec, a local folder spelled as its absolute path; a model's name stays a name, even where a folder in
    the cwd bears it (a folder called `bindsearch-mini` is not the shipped model)."""
    if is_builtin(spec) or spec.lower() in ALIASES or spec.lower() == "languagebind" or \
            spec.startswith(("hf-hub:", "languagebind:")):
        return spec
    try:
        return str(Path(spec).expanduser().absolute()) if Path(spec).expanduser().is_dir() else spec
    except OSError:
        return spec


def spec_modalities(spec: str | Sequence[str]) -> tuple[str, ...] | None:
    """What a spec encodes ("text" first), read from its checkpoints' configs alone: `index` with nothing to embed
    loads no weights. None for `random:*` models, and for mini checkpoints of a modality of one's own, whose
    decoder (which tells its files) comes with the model itself."""
    specs = _split_specs(spec)
    if any(mini_directory(s) for s in specs):
        towers: list[str] = []
        for s in specs:
            listed = _listed_towers(s)
            if listed is None or any(m not in MODALITIES for m in listed):
                return None  # mixed with another family (refused by the loader, with why), or a modality of its own
            towers += [m for m in listed if m not in towers]
        return ("text", *towers)
    if any(s.lower().startswith("random:") for s in specs):  # built in: its modalities come with the model
        return None
    return ("text", *(_read_config(directory)[0].modality for directory in resolve_checkpoints(specs)))


def own_towers(spec: str | Sequence[str]) -> set[str]:
    """The towers the MiniLM-anchored checkpoints of `spec` declare in their configs, modalities of one's own
    included (`canonical_modality` knows those only once their model is loaded); empty for other specs."""
    return {m for s in _split_specs(spec) for m in _listed_towers(s) or () if isinstance(m, str)}


def register_inputs(spec: str | Sequence[str]) -> None:
    """Teach `bindsearch.media` the modalities of one's own that the mini checkpoints of `spec` read, from their
    config.json alone, as loading them would: a collection's rows name such a modality before its model is loaded,
    and a search by stored vectors loads none. What cannot be read or registered is left to the model's load to say."""
    for s in _split_specs(spec):
        towers = _listed_towers(s)
        for entry in towers.values() if isinstance(towers, dict) else ():
            if not (isinstance(entry, dict) and entry.get("input")):  # a built-in modality's tower
                continue
            from bindsearch.models.inputs import InputConfig, _own_extensions, register_input

            try:
                with warnings.catch_warnings():  # an extension a built-in reads: warned of when the model loads
                    warnings.simplefilter("ignore")
                    register_input(_own_extensions(InputConfig.from_dict(entry["input"])))
            except (KeyError, TypeError, ValueError, AttributeError):  # said when the model loads
                continue


def _listed_towers(spec: str) -> list | dict | None:
    """The towers a MiniLM-anchored checkpoint's config.json lists; None for other specs, or a config unreadable."""
    directory = mini_directory(spec)
    try:
        listed = json.loads((directory / "config.json").read_text())["towers"] if directory else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return listed if isinstance(listed, dict | list) else None


def mini_directory(spec: str) -> Path | None:
    """The directory of a MiniLM-anchored checkpoint (`bindsearch-mini`, or what `bindsearch train` writes)."""
    from bindsearch.models.specs import MINI, MINI_DIR

    if spec.lower() == MINI:
        return MINI_DIR
    return Path(spec).expanduser() if is_mini_checkpoint(spec) else None


def _load_minis(specs: Sequence[str]) -> EmbeddingModel:
    """Several MiniLM-anchored checkpoints as one model: their towers share the frozen MiniLM text anchor."""
    from bindsearch.models.builtin import is_builtin
    from bindsearch.models.mini import MiniModel
    from bindsearch.models.specs import MINI

    directories = [mini_directory(s) for s in specs]
    for s, directory in zip(specs, directories, strict=True):
        if directory is None:
            what = "a model of its own" if is_builtin(s) else "anchored on CLIP's text tower (768-d)"
            raise ModelLoadError(f"{s} is {what} and cannot share a space with {_mini_name(specs, directories)}, "
                                 "which is anchored on MiniLM (384-d); index them in separate collections")
    parts = [MiniModel.load(d, spec=s) for s, d in zip(specs, directories, strict=True)]
    # A tower trained with `bindsearch train tower` takes the place of the shipped model's tower of its modality.
    trained = {m for s, p in zip(specs, parts, strict=True) if s.lower() != MINI for m in p.tower_configs}
    towers = [p.without(trained) if s.lower() == MINI else p for s, p in zip(specs, parts, strict=True)]
    try:
        model = MiniModel.combine(towers)
    except ValueError as exc:
        raise ModelLoadError(f"{', '.join(specs)}: {exc}") from None
    model.spec = ",".join(specs)
    model.checkpoint = "+".join(p.checkpoint for p in parts)
    return model


def _named(modality: str) -> str:
    """`canonical_modality`, but a name it does not know yet passes: a mini checkpoint's own modality is known
    once its model is built."""
    try:
        return canonical_modality(modality)
    except ValueError:
        return modality.lower()


def _with_towers(model: EmbeddingModel, towers: Sequence[str] | None) -> EmbeddingModel:
    """`model`, once it has a tower of each of `towers` (a modality of one's own is known now that it is built):
    one asked for that it lacks is an error, as for LanguageBind checkpoints; it loaded every tower in silence."""
    for name in towers or ():
        if canonical_modality(name) not in model.modalities:
            raise UnsupportedModalityError.of(model.spec, name, model.modalities)
    return model


def _mini_name(specs: Sequence[str], directories: Sequence[Path | None]) -> str:
    return next(s for s, d in zip(specs, directories, strict=True) if d is not None)


def load_model(spec: str | Sequence[str], device: str = "auto", dtype: str | torch.dtype | None = None,
               modalities: Iterable[str] | None = None) -> EmbeddingModel:
    """Load one model from one or several specs (comma-separated or a list); they share one text tower.

    A spec is a checkpoint directory, an alias (`languagebind:depth`), a Hugging Face repo id
    (`LanguageBind/LanguageBind_Depth`, `hf-hub:org/name`), `languagebind` (all five 768-d towers),
    `random:tiny` (seeded random weights, for tests and demos), `bindsearch-mini` (shipped small towers)
    or a mini checkpoint directory (what `bindsearch train` writes).

    `modalities` loads only those towers (of LanguageBind checkpoints or a mini checkpoint), and the text tower
    always (a mini checkpoint's first tower too, whose temperature is text's): a text search of a `languagebind`
    collection reads the text tower's weights, not five ViT-L towers'. A tower the spec lacks is an
    `UnsupportedModalityError`.
    The model's spec and checkpoint stay those of the whole spec, so it still opens that collection.
    """
    import torch

    from bindsearch.models.base import resolve_device, resolve_dtype
    from bindsearch.models.builtin import build_builtin
    from bindsearch.models.languagebind import LanguageBindModel
    from bindsearch.models.mini import MiniModel

    specs = _split_specs(spec)
    if not specs:
        raise ModelLoadError("no model spec given")
    device_ = resolve_device(device)
    dtype_ = resolve_dtype(dtype, device_)
    if isinstance(modalities, str):  # iterating would ask for towers named by its letters
        raise TypeError(f"modalities takes a list of modality names, got one str: pass [{modalities!r}]")
    towers = None if modalities is None else [_named(m) for m in modalities]
    if len(specs) == 1 and is_builtin(specs[0]):
        model = build_builtin(specs[0], modalities=towers)
        return _ready(_with_towers(model, towers), device_, dtype_)
    if len(specs) == 1 and is_mini_checkpoint(specs[0]):
        model = MiniModel.load(specs[0], spec=specs[0], modalities=towers)
        return _ready(_with_towers(model, towers), device_, dtype_)
    if len(specs) > 1 and any(mini_directory(s) is not None for s in specs):
        return _ready(_with_towers(_load_minis(specs), towers), device_, dtype_)
    if len(specs) > 1 and any(is_builtin(s) for s in specs):
        builtin = next(s for s in specs if is_builtin(s))
        raise ModelLoadError(f"{builtin} is a model of its own and cannot be combined with other specs; give it alone")

    wanted = None if modalities is None else {canonical_modality(m) for m in modalities}
    first: ModelConfig | None = None
    configs: list[ModelConfig] = []
    merged: dict[str, torch.Tensor] = {}
    fingerprints, by_sizes, seen = [], [], []
    for s, directory in zip(specs, resolve_checkpoints(specs), strict=True):
        cfg, lora = _read_config(directory)
        if cfg.modality in seen:
            raise ModelLoadError(f"two checkpoints for {cfg.modality} ({s}); give one per modality")
        if first is not None and cfg.projection_dim != first.projection_dim:
            raise ModelLoadError(f"{s} ({cfg.projection_dim}-d) cannot share a space with {specs[0]} "
                                 f"({first.projection_dim}-d); index them in separate collections")
        seen.append(cfg.modality)
        fingerprints.append(_fingerprint(directory))
        by_sizes.append(_fingerprint_by_sizes(directory))
        tower = wanted is None or cfg.modality in wanted
        if first is None:  # the text tower comes from the first checkpoint
            first = cfg
            merged.update(_load_weights(directory, cfg, lora, text_only=not tower))
        elif tower:
            state = _load_weights(directory, cfg, lora, text_only=False)
            _check_same_text(state, merged, specs[0], s)
            merged.update({k: v for k, v in state.items() if not k.startswith(_TEXT_KEYS)})
        if tower:
            configs.append(cfg)
    absent = sorted(wanted - {"text", *seen}) if wanted is not None else []
    if absent:
        raise UnsupportedModalityError.of(",".join(specs), absent[0], ["text", *seen])
    try:
        # Built without storage and given the checkpoint's own tensors: no random initialisation to overwrite,
        # and no second copy of the weights (three ViT-L towers: 15.6 s and 9.2 GB before, 1.9 s and 5.0 GB
        # now, benchmarks/load.py). The text tower alone is quicker to initialise (0.75 s in all) than the first
        # use of the meta device is to import (1.2-1.5 s).
        with torch.device("meta" if configs else "cpu"):
            model = LanguageBindModel.from_configs(configs, anchor=first)
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from None
    merged = {k: v.contiguous() for k, v in merged.items()}
    try:
        missing, unexpected = model.load_state_dict(merged, strict=False, assign=True)
    except RuntimeError as exc:  # "size mismatch for ...": weights of other shapes than config.json says
        mismatch = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc))
        raise ModelLoadError(f"checkpoint {', '.join(specs)} does not match its config.json: {mismatch}") from None
    if missing or unexpected:
        raise ModelLoadError(f"checkpoint {', '.join(specs)} does not match its config: "
                             f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.spec = ",".join(specs)
    model.checkpoint = "+".join(fingerprints)
    model.previous_checkpoints = ("+".join(by_sizes),)
    return _ready(model, device_, dtype_)


def _ready(model: EmbeddingModel, device: torch.device, dtype: torch.dtype) -> EmbeddingModel:
    """The loaded model placed, cast and frozen for inference, its linears packed where that pays (packed.py)."""
    from bindsearch.models.packed import pack_linears, packing_pays

    model = model.to(device, dtype).eval().requires_grad_(False)
    if packing_pays(device, dtype) and pack_linears(model):
        _own_storage(model)
    return model


def _own_storage(model: torch.nn.Module) -> None:
    """Copy the parameters and buffers left after packing (norms, embeddings) out of the checkpoint's memory map.

    Packing copies each linear weight. Without this, the tensors left unpacked would keep the map alive, and with
    it the file pages of every packed weight: a float32 model would sit in memory twice (600 MB more for a 12-layer
    ViT-L). Ties between modules are kept.
    """
    import torch

    copies: dict[int, torch.Tensor] = {}
    for module in model.modules():
        for store in (module._parameters, module._buffers):
            for name, tensor in store.items():
                if tensor is not None:
                    if id(tensor) not in copies:
                        copy = tensor.detach().clone()
                        copies[id(tensor)] = torch.nn.Parameter(copy, False) if store is module._parameters else copy
                    store[name] = copies[id(tensor)]


def _check_same_text(state: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], first: str,
                     other: str) -> None:
    import torch

    # The text tower is the frozen anchor: every LanguageBind checkpoint should carry the same one.
    for key, value in state.items():
        if key.startswith(_TEXT_KEYS):
            ref = reference.get(key)
            if ref is None or ref.shape != value.shape or not torch.equal(ref, value):
                warnings.warn(f"the text tower of {other} differs from that of {first} ({key}); "
                              f"text queries use the one from {first}", stacklevel=3)
                return

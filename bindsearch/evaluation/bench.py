"""LanguageBind's benchmarks on datasets in their official layouts: MSR-VTT, Clotho, zero-shot, emergent.

Each `run_*` reads and checks the dataset first (layout problems raise `DatasetLayoutError` before any model
loads), embeds everything through the on-disk cache, scores it with `metrics` / `zeroshot`, and returns a
`BenchResult`: `.to_json()` (the documented keys, see benchmarks/README.md) and `.table()` (ours vs the paper).
Files that fail to decode are left out, listed in `failed`, and the metrics cover the rest.
"""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bindsearch.modalities import MODALITIES, canonical_modality
from bindsearch.models import EmbeddingModel, load_model

from .cache import EmbeddingCache, EncodedFiles, encode_files_cached, encode_texts_cached
from .datasets import (
    CaptionedSet,
    check_classification_root,
    layout_modality,
    nyud_protocol,
    read_classification,
    read_clotho,
    read_msrvtt,
    read_paired,
)
from .metrics import caption_groups, retrieval_metrics_from_embeddings
from .paper import DATASET_MODALITY, dataset_named, detect_dataset, paper_numbers
from .zeroshot import build_classifier, class_prompts, templates_for, zeroshot_accuracy

__all__ = ["BENCHMARKS", "DEFAULT_MODELS", "BenchResult", "RunOptions", "run_clotho", "run_emergent", "run_msrvtt",
           "run_zeroshot"]

BENCHMARKS = ("msrvtt", "clotho", "zeroshot", "emergent")
# The published checkpoint each modality is evaluated with when no model is given.
DEFAULT_MODELS = {"video": "languagebind:video_ft", "audio": "languagebind:audio_ft", "depth": "languagebind:depth",
                  "infrared": "languagebind:thermal", "image": "languagebind:image"}
# Class names the reference prompts with other words (LLVIP's "person" crops are prompted as "people").
PROMPT_NAMES = {"llvip": {"person": "people"}}
_TITLES = {"msrvtt": "MSR-VTT 1k-A", "clotho": "Clotho v2 evaluation", "zeroshot": "zero-shot classification",
           "emergent": "emergent retrieval"}

Model = EmbeddingModel | str | None


@dataclass(frozen=True)
class RunOptions:
    """How a benchmark loads, encodes and caches; the defaults suit a script run."""

    device: str = "auto"  # for a model given as a spec
    dtype: str | None = None
    batch_size: int | None = None  # media files per encoder batch (default: the model's per modality)
    text_batch_size: int | None = None
    workers: int | None = None  # decoding processes (default: one per spare core)
    cache: bool = True
    cache_dir: Path | None = None  # default: $BINDSEARCH_HOME/cache
    progress: bool = False  # tqdm bars on stderr


@dataclass
class BenchResult:
    """One benchmark run; `to_json()` gives the documented JSON keys."""

    benchmark: str
    dataset: str | None
    model: str
    checkpoint: str
    dataset_root: str
    layout: str
    modalities: list[str]
    n_items: int
    n_queries: int
    directions: dict[str, dict[str, float | int]]
    paper: dict[str, dict[str, float]]
    paper_model: str | None
    baselines: dict[str, dict[str, dict[str, float]]]
    failed: list[dict[str, str]]
    limit: int | None
    seconds: float
    cache: dict[str, Any]
    hardware: dict[str, Any]
    classes: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)
    """How the items were chosen, where a run chose: `fold`; emergent's `folders`, `sample` and `seed`."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: every field above, under its own name."""
        return asdict(self)

    def table(self) -> str:
        """A plain-text table: one row per (direction, metric), our value beside the paper's and baselines'."""
        shown = self.dataset if self.dataset not in (None, self.benchmark) else None
        title = _TITLES[self.benchmark] + (f" ({shown})" if shown else "")
        lines = [f"{title}: model {self.model}, {self.n_items} items, {self.n_queries} queries, "
                 f"{self.seconds:.1f} s on {self.hardware['device']}, {self.hardware.get('dtype', 'float32')}",
                 f"root {self.dataset_root}" + (f" (limit {self.limit})" if self.limit else "")]
        paper = f"paper ({self.paper_model})" if self.paper_model else "paper"
        header = ["direction", "metric", "ours", paper, *self.baselines]
        rows = []
        for direction, metrics in self.directions.items():
            shown = [m for m in metrics if m not in ("n_queries", "n_items")]
            for i, metric in enumerate(shown):
                others = [_number(source.get(direction, {}).get(metric))
                          for source in (self.paper, *self.baselines.values())]
                rows.append([direction if i == 0 else "", metric, _number(metrics[metric]), *others])
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            lines.append("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        lines.extend(self.notes)
        return "\n".join(lines)


def run_msrvtt(model: Model = None, root: str | Path = ".", *, limit: int | None = None,
               options: RunOptions | None = None) -> BenchResult:
    """MSR-VTT 1k-A: text->video and video->text R@1/5/10, MdR, MnR (default model languagebind:video_ft)."""
    start = time.perf_counter()
    data = read_msrvtt(root, limit=limit)
    return _run_captioned("msrvtt", data, model, limit, options or RunOptions(), start)


def run_clotho(model: Model = None, root: str | Path = ".", *, limit: int | None = None,
               options: RunOptions | None = None) -> BenchResult:
    """Clotho v2 evaluation: text->audio (5 queries per clip), audio->text (hit: any of its captions ranks <= K)."""
    start = time.perf_counter()
    data = read_clotho(root, limit=limit)
    return _run_captioned("clotho", data, model, limit, options or RunOptions(), start)


def run_zeroshot(model: Model = None, root: str | Path = ".", *, modality: str | None = None,
                 dataset: str | None = None, fold: int | None = None, limit: int | None = None,
                 options: RunOptions | None = None) -> BenchResult:
    """Zero-shot top-1 (and top-5 with more than 5 classes) of class folders or ESC-50, prompts per modality."""
    start, options = time.perf_counter(), options or RunOptions()
    root = check_classification_root(root)  # a wrong root is the problem to report, not the model that tells modality
    dataset = dataset_named(dataset) if dataset else detect_dataset(root)
    modality = modality or DATASET_MODALITY.get(dataset or "") or layout_modality(root)
    if modality is None and model is None:  # the published checkpoint to evaluate is the modality's
        raise ValueError(f"{root}: cannot tell these files' modality from the folder's layout or name; pass "
                         "--modality (video, audio, depth, infrared or image) to evaluate its published checkpoint, "
                         "or --model")
    if modality is None:
        loaded = _load(model, None, options)
        towers = [m for m in loaded.modalities if m != "text"]
        if len(towers) != 1:
            raise ValueError(f"model {loaded.spec} has {len(towers)} towers ({', '.join(towers)}); "
                             "say which to evaluate with --modality")
        model, modality = loaded, towers[0]
    elif model is not None and not _builtin(modality):
        model = _load(model, None, options)  # a modality of its own: known once the model that has it is loaded
    with _crops_folder(options) as crops:  # LLVIP's crops live as long as their encoding
        data = read_classification(root, modality, fold=fold, limit=limit, cache=crops, scratch=not options.cache,
                                   dataset=dataset)
        dataset = data.name or dataset
        notes = list(data.notes)
        if dataset == "nyud":
            data.labels, data.classnames = _nyud_classes(data.classnames, data.labels, notes)
        if fold is not None:
            notes.append(f"fold {fold} only ({len(data.paths)} clips); the paper's numbers are over all five folds")
        encoder = _load(model, DEFAULT_MODELS.get(data.modality), options)
        with _cache(encoder, options) as cache:
            encoded = _encode(encoder, data.modality, data.paths, cache, options)
            classifier, text_hits, text_encoded = _classifier(encoder, data.classnames, data.modality, dataset, cache,
                                                              options)
    labels = data.labels[encoded.ok]
    topk = (1, 5) if len(data.classnames) > 5 else (1,)
    accuracy = _accuracy(encoded.vectors[encoded.ok], classifier, labels, topk, encoded, data.modality)
    notes.extend(_depth_note(dataset, [data.modality]))
    notes.extend(_failure_notes(encoded.failures, len(data.paths), "files"))
    return _result("zeroshot", dataset, encoder, data.root, data.layout, [data.modality], int(encoded.ok.sum()),
                   int(encoded.ok.sum()), {f"{data.modality}->class": accuracy}, encoded.failures, limit, start,
                   _cache_counts(cache, encoded, text_hits, text_encoded), notes, classes=data.classnames,
                   selection={"fold": fold} if fold is not None else {})


def run_emergent(model: Model = None, root: str | Path = ".", *, a: str = "image", b: str = "depth",
                 a_dir: str | None = None, b_dir: str | None = None, dataset: str | None = None,
                 sample: float | None = None, seed: int = 0, limit: int | None = None,
                 options: RunOptions | None = None) -> BenchResult:
    """A->B and B->A R@1/5/10 over pairs sharing a stem; with class labels also A, B and fused A+B zero-shot."""
    start, options = time.perf_counter(), options or RunOptions()
    data = read_paired(root, a, b, a_dir=a_dir, b_dir=b_dir, sample=sample, seed=seed, limit=limit)
    a, b = data.modalities
    dataset = dataset_named(dataset) if dataset else detect_dataset(root)
    notes: list[str] = []
    if dataset == "nyud" and data.labels is not None and data.classnames is not None:
        data.labels, data.classnames = _nyud_classes(data.classnames, data.labels, notes)
    encoder = _load(model, f"{DEFAULT_MODELS.get(a, a)},{DEFAULT_MODELS.get(b, b)}", options)
    with _cache(encoder, options) as cache:
        side_a = _encode(encoder, a, data.paths[0], cache, options)
        side_b = _encode(encoder, b, data.paths[1], cache, options)
        text_hits = text_encoded = 0
        if data.classnames is not None:
            clf_a, hits_a, new_a = _classifier(encoder, data.classnames, a, dataset, cache, options)
            clf_b, hits_b, new_b = _classifier(encoder, data.classnames, b, dataset, cache, options)
            text_hits, text_encoded = hits_a + hits_b, new_a + new_b
    ok = side_a.ok & side_b.ok
    if not ok.any():
        raise ValueError(f"no pair of {data.folders[0]} and {data.folders[1]} decoded on both sides "
                         f"(first error: {(side_a.failures + side_b.failures)[0]}); nothing to evaluate")
    if ok.sum() < 2:  # the one pair ranks first by construction: R@1 100 says nothing
        raise ValueError(f"only one pair of {data.folders[0]} and {data.folders[1]} "
                         f"{'was sampled' if ok.all() else 'decoded on both sides'}; retrieval needs two or more"
                         f"{' (raise --sample)' if sample is not None else ''}")
    vectors_a, vectors_b = side_a.vectors[ok], side_b.vectors[ok]
    pairs = np.arange(int(ok.sum()))
    directions: dict[str, dict[str, float | int]] = {
        f"{a}->{b}": retrieval_metrics_from_embeddings(vectors_a, vectors_b, pairs),
        f"{b}->{a}": retrieval_metrics_from_embeddings(vectors_b, vectors_a, pairs),
    }
    notes.extend(_depth_note(dataset, [a, b]))
    if dataset == "llvip" and (sample is None or abs(sample - 0.1) > 1e-9):
        notes.append(f"the paper's LLVIP retrieval R@1 is over a random 10 % of the test pairs (--sample 0.1); this "
                     f"run scored {len(pairs)} pairs, and R@1 falls as the gallery grows")
    if data.labels is not None and data.classnames is not None:
        labels = data.labels[ok]
        topk = (1, 5) if len(data.classnames) > 5 else (1,)
        fused = _unit_rows(vectors_a + vectors_b)
        directions[f"{a}->class"] = zeroshot_accuracy(vectors_a, clf_a, labels, topk=topk)
        directions[f"{b}->class"] = zeroshot_accuracy(vectors_b, clf_b, labels, topk=topk)
        directions[f"{a}+{b}->class"] = zeroshot_accuracy(fused, _unit_rows(clf_a + clf_b), labels, topk=topk)
        notes.append(f"fused query: mean of the {a} and {b} unit vectors, renormalised, against the mean of the "
                     f"{a} and {b} prompt classifiers")
    if any(data.unpaired.values()):
        left = ", ".join(f"{n} in {folder}" for folder, n in data.unpaired.items() if n)
        notes.append(f"files without a partner were left out: {left}")
    failures = side_a.failures + side_b.failures
    notes.extend(_failure_notes(failures, len(data.stems), "pairs", kept=len(pairs)))
    counts = {"hits": side_a.hits + side_b.hits + text_hits, "encoded": side_a.encoded + side_b.encoded + text_encoded}
    if cache is not None:
        counts["path"] = str(cache.path)
    selection = {"folders": [str(f) for f in data.folders],
                 **({"sample": sample, "seed": seed} if sample is not None else {})}
    return _result("emergent", dataset, encoder, data.root, data.layout, [a, b], len(pairs), 2 * len(pairs),
                   directions, failures, limit, start, counts, notes, classes=data.classnames, selection=selection)


# -- shared steps ---------------------------------------------------------------------------------------------


def _run_captioned(benchmark: str, data: CaptionedSet, model: Model, limit: int | None, options: RunOptions,
                   start: float) -> BenchResult:
    """Text<->media retrieval over items with several captions each; failed items drop with their captions."""
    encoder = _load(model, DEFAULT_MODELS[data.modality], options)
    with _cache(encoder, options) as cache:
        encoded = _encode(encoder, data.modality, data.items, cache, options)
        keep = encoded.ok[data.item_of_caption]
        if not encoded.ok.any():
            raise ValueError(f"all {len(data.items)} {data.modality} files failed to decode "
                             f"(first: {encoded.failures[0]}); nothing to evaluate")
        captions = [c for c, k in zip(data.captions, keep, strict=True) if k]
        text, text_hits, text_encoded = encode_texts_cached(encoder, captions, cache,
                                                            batch_size=options.text_batch_size,
                                                            progress=options.progress)
    renumber = np.cumsum(encoded.ok) - 1
    t2x, x2t = caption_groups(renumber[data.item_of_caption[keep]])
    items = encoded.vectors[encoded.ok]
    directions = {
        f"text->{data.modality}": retrieval_metrics_from_embeddings(text, items, t2x),
        f"{data.modality}->text": retrieval_metrics_from_embeddings(items, text, x2t),
    }
    notes = [*data.notes, *_failure_notes(encoded.failures, len(data.items), "items")]
    return _result(benchmark, data.name, encoder, data.root, data.layout, [data.modality], len(items), len(captions),
                   directions, encoded.failures, limit, start,
                   _cache_counts(cache, encoded, text_hits, text_encoded), notes)


def _load(model: Model, default: str | None, options: RunOptions) -> EmbeddingModel:
    """The model to evaluate: given, loaded from a spec, or the benchmark's default published checkpoint."""
    if isinstance(model, EmbeddingModel):
        return model
    spec = model or default
    if spec is None:
        raise ValueError("no model given and no default for this modality; pass --model")
    return load_model(spec, device=options.device, dtype=options.dtype)


def _builtin(modality: str) -> bool:
    """Whether `modality` names one of LanguageBind's modalities (or an alias), known before any model loads."""
    try:
        return canonical_modality(modality) in MODALITIES
    except ValueError:
        return False


@contextlib.contextmanager
def _crops_folder(options: RunOptions) -> Iterator[Path | None]:
    """Where LLVIP's crops are cut: the bench cache (None: the default one), or with `options.cache` False a folder
    of this run's own, removed after it ("store nothing": no crops kept, none reused)."""
    if options.cache:
        yield options.cache_dir
        return
    with tempfile.TemporaryDirectory(prefix="bindsearch-crops-") as folder:
        yield Path(folder)


def _cache(model: EmbeddingModel, options: RunOptions) -> EmbeddingCache | contextlib.nullcontext[None]:
    """The model's cache in `options.cache_dir` (default `cache_dir()`), or none when `options.cache` is False."""
    if not options.cache:
        return contextlib.nullcontext()
    precision = str(model.dtype).removeprefix("torch.")
    return EmbeddingCache(model.identity, options.cache_dir, precision=precision)


def _encode(model: EmbeddingModel, modality: str, paths: Sequence[Path], cache: EmbeddingCache | None,
            options: RunOptions) -> EncodedFiles:
    return encode_files_cached(model, modality, paths, cache, batch_size=options.batch_size,
                               workers=options.workers, progress=options.progress)


def _classifier(model: EmbeddingModel, classnames: list[str], modality: str, dataset: str | None,
                cache: EmbeddingCache | None, options: RunOptions) -> tuple[np.ndarray, int, int]:
    """(`(n_classes, d)` prompt-ensemble classifier for `modality`, text cache hits, texts encoded)."""
    renamed = PROMPT_NAMES.get(dataset or "", {})
    names = [renamed.get(name, name) for name in classnames]
    prompts = [p for per_class in class_prompts(names, modality) for p in per_class]
    vectors, hits, encoded = encode_texts_cached(model, prompts, cache, batch_size=options.text_batch_size,
                                                 progress=options.progress)
    lookup = dict(zip(prompts, vectors, strict=True))
    classifier = build_classifier(lambda batch: np.stack([lookup[p] for p in batch]), names,
                                  templates=templates_for(modality))
    return classifier, hits, encoded


def _accuracy(vectors: np.ndarray, classifier: np.ndarray, labels: np.ndarray, topk: tuple[int, ...],
              encoded: EncodedFiles, modality: str) -> dict[str, float | int]:
    if not encoded.ok.any():
        raise ValueError(f"all {encoded.ok.size} {modality} files failed to decode "
                         f"(first: {encoded.failures[0]}); nothing to evaluate")
    return zeroshot_accuracy(vectors, classifier, labels, topk=topk)


def _nyud_classes(classnames: list[str], labels: np.ndarray, notes: list[str]) -> tuple[np.ndarray, list[str]]:
    """NYU-D's raw scene types merged into the 10-class protocol (a note says how many became 'others'). Classes
    that hold none of NYU's scene types were taken for NYU-D by the folder's name alone: scored as they are."""
    from .datasets import NYU_SCENE_TYPES

    if not {c.strip().lower().replace(" ", "_") for c in classnames} & NYU_SCENE_TYPES:
        notes.append("the folder's name says NYU-D, but none of its classes is an NYU scene type: scored as its "
                     "own classes, not by the NYU-D protocol")
        return labels, classnames
    labels, merged_names, merged = nyud_protocol([classnames[i] for i in labels])
    if merged and "others" not in classnames:
        notes.append(f"NYU-D 10-class protocol: {len(classnames)} scene types read, {merged} file(s) of the types "
                     "outside the nine named classes scored as 'others'")
    return labels, merged_names


def _depth_note(dataset: str | None, modalities: Sequence[str]) -> list[str]:
    """NYU-D results must say how depth was fed: ours is LanguageBind's metres, not ImageBind's disparity."""
    if dataset != "nyud" or "depth" not in modalities:
        return []
    return ["depth fed as metres (mm / 1000, clipped to 0.01 to max_depth, / max_depth), as LanguageBind; the "
            "ImageBind baseline fed disparity"]


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """`(n, d)` float -> rows divided by their L2 norm (float32)."""
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def _cache_counts(cache: EmbeddingCache | None, encoded: EncodedFiles, text_hits: int, text_encoded: int
                  ) -> dict[str, Any]:
    counts: dict[str, Any] = {"hits": encoded.hits + text_hits, "encoded": encoded.encoded + text_encoded}
    if cache is not None:
        counts["path"] = str(cache.path)
    return counts


def _failure_notes(failures: list, total: int, what: str, kept: int | None = None) -> list[str]:
    if not failures:
        return []
    kept = total - len(failures) if kept is None else kept
    return [f"{len(failures)} file(s) failed to decode (listed in 'failed'); metrics cover the other {kept} of "
            f"{total} {what}"]


def _result(benchmark: str, dataset: str | None, model: EmbeddingModel, root: Path, layout: str,
            modalities: list[str], n_items: int, n_queries: int, directions: dict[str, dict[str, float | int]],
            failures: list, limit: int | None, start: float, cache: dict[str, Any], notes: list[str],
            classes: list[str] | None = None, selection: dict[str, Any] | None = None) -> BenchResult:
    paper_model, paper, baselines = paper_numbers(benchmark, dataset, model.spec,
                                                  tuple(canonical_modality(m) for m in modalities))
    selection = selection or {}
    if (paper or baselines) and limit is not None:
        notes = [*notes, f"limited to {limit} items: the published numbers beside it are over the whole set"]
    sample = selection.get("sample")
    if (paper or baselines) and sample is not None and not (dataset == "llvip" and abs(sample - 0.1) < 1e-9):
        notes = [*notes, f"a seeded {sample:.0%} sample of the pairs (seed {selection['seed']}): the published "
                         "numbers beside it are over the whole split"]
    return BenchResult(
        benchmark=benchmark, dataset=dataset, model=model.spec, checkpoint=model.checkpoint,
        dataset_root=str(root), layout=layout, modalities=modalities, n_items=n_items, n_queries=n_queries,
        directions=directions, paper=paper, paper_model=paper_model, baselines=baselines,
        failed=[{"path": str(f.path), "error": f.cause} for f in failures], limit=limit,
        seconds=round(time.perf_counter() - start, 3), cache=cache, hardware=_hardware(model), classes=classes,
        notes=notes, selection=selection)


def _hardware(model: EmbeddingModel) -> dict[str, Any]:
    """Where the run happened: the model's device (with the GPU's name), CPU architecture and core count."""
    import torch

    device = str(model.device)
    if model.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(model.device)})"
    return {"device": device, "dtype": str(model.dtype).removeprefix("torch."), "machine": platform.machine(),
            "cpus": os.cpu_count(), "torch": torch.__version__}


def _number(value: float | int | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


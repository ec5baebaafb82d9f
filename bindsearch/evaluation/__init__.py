"""Evaluation: retrieval metrics (R@K, MdR, MnR), zero-shot classification, and LanguageBind's benchmarks."""

from .bench import (
    BENCHMARKS,
    DEFAULT_MODELS,
    BenchResult,
    RunOptions,
    run_clotho,
    run_emergent,
    run_msrvtt,
    run_zeroshot,
)
from .cache import EmbeddingCache, cache_dir, encode_files_cached, encode_texts_cached
from .datasets import (
    CaptionedSet,
    DatasetLayoutError,
    LabelledSet,
    PairedSet,
    read_classification,
    read_clotho,
    read_msrvtt,
    read_paired,
)
from .metrics import (
    caption_groups,
    ranks,
    ranks_from_embeddings,
    recall_at_k,
    retrieval_metrics,
    retrieval_metrics_from_embeddings,
    summarize_ranks,
)
from .paper import detect_dataset, paper_numbers, published_checkpoint
from .zeroshot import build_classifier, class_probabilities, class_prompts, templates_for, zeroshot_accuracy

__all__ = [
    "BENCHMARKS",
    "DEFAULT_MODELS",
    "BenchResult",
    "CaptionedSet",
    "DatasetLayoutError",
    "EmbeddingCache",
    "LabelledSet",
    "PairedSet",
    "RunOptions",
    "build_classifier",
    "cache_dir",
    "caption_groups",
    "class_prompts",
    "class_probabilities",
    "detect_dataset",
    "encode_files_cached",
    "encode_texts_cached",
    "paper_numbers",
    "published_checkpoint",
    "ranks",
    "ranks_from_embeddings",
    "read_classification",
    "read_clotho",
    "read_msrvtt",
    "read_paired",
    "recall_at_k",
    "retrieval_metrics",
    "retrieval_metrics_from_embeddings",
    "run_clotho",
    "run_emergent",
    "run_msrvtt",
    "run_zeroshot",
    "summarize_ranks",
    "templates_for",
    "zeroshot_accuracy",
]

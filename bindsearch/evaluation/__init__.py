"""Evaluation: retrieval metrics (R@K, MdR, MnR) and zero-shot classification, from embeddings or scores."""

from .metrics import (
    caption_groups,
    ranks,
    ranks_from_embeddings,
    recall_at_k,
    retrieval_metrics,
    retrieval_metrics_from_embeddings,
    summarize_ranks,
)
from .zeroshot import build_classifier, class_prompts, classify, templates_for, zeroshot_accuracy

__all__ = [
    "build_classifier",
    "caption_groups",
    "class_prompts",
    "classify",
    "ranks",
    "ranks_from_embeddings",
    "recall_at_k",
    "retrieval_metrics",
    "retrieval_metrics_from_embeddings",
    "summarize_ranks",
    "templates_for",
    "zeroshot_accuracy",
]

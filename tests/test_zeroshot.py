"""Zero-shot classification: templates per modality, CLIP prompt ensembles, top-k accuracy, probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from bindsearch.evaluation import build_classifier, class_probabilities, class_prompts, templates_for, zeroshot_accuracy

# --- templates -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modality", "count"), [("video", 80), ("depth", 80), ("infrared", 80), ("image", 80), ("audio", 1)]
)
def test_template_counts(modality: str, count: int) -> None:
    assert len(templates_for(modality)) == count
    assert all(template.count("{}") == 1 for template in templates_for(modality))


def test_image_and_infrared_use_the_plain_openai_templates() -> None:
    plain = [template("dog") for template in OPENAI_IMAGENET_TEMPLATES]
    assert [t.format("dog") for t in templates_for("image")] == plain
    assert [t.format("dog") for t in templates_for("infrared")] == plain
    # Every name the rest of bindsearch takes for a modality takes its templates too.
    assert templates_for("thermal") == templates_for("ir") == templates_for("IR") == templates_for("infrared")
    assert templates_for("sound") == templates_for("audio") and templates_for("rgb") == templates_for("image")


def test_video_and_depth_replace_photo() -> None:
    plain = [template("dog") for template in OPENAI_IMAGENET_TEMPLATES]
    video = [t.format("dog") for t in templates_for("video")]
    depth = [t.format("dog") for t in templates_for("depth")]
    assert video == [p.replace("photo", "video") for p in plain]
    assert depth == [p.replace("photo", "depth photo") for p in plain]
    # Spot checks against LanguageBind's own template files.
    assert video[0] == "a bad video of a dog." and depth[0] == "a bad depth photo of a dog."
    assert "a sculpture of a dog." in video and "a dog in a video game." in depth
    assert sum("photo" in p for p in plain) == sum("depth photo" in d for d in depth) > 40
    assert not any("photo" in v for v in video)


def test_audio_template_and_underscores() -> None:
    assert class_prompts(["chirping_birds", "dog"], "audio") == [
        ["a sound of chirping birds."],
        ["a sound of dog."],
    ]
    video = class_prompts(["air_drumming"], "video")
    assert len(video) == 1 and len(video[0]) == 80 and video[0][0] == "a bad video of a air drumming."


def test_explicit_templates_and_errors() -> None:
    assert class_prompts(["a_b"], templates=["{}!", lambda c: c.upper()]) == [["a b!", "A B"]]
    with pytest.raises(ValueError, match="unknown modality 'smell'"):
        templates_for("smell")
    with pytest.raises(ValueError, match="text has no prompt templates"):
        templates_for("text")
    with pytest.raises(ValueError, match="needs a modality"):
        class_prompts(["dog"])


# --- classifier ----------------------------------------------------------------------------------------


def test_build_classifier_normalises_each_prompt_before_averaging() -> None:
    # Prompts of different norms: averaging raw vectors would lean towards the long one.
    vectors = {
        "x cat": [10.0, 0.0, 0.0],
        "y cat": [0.0, 1.0, 0.0],
        "x dog": [0.0, 0.0, 3.0],
        "y dog": [0.0, 0.0, 5.0],
    }
    calls: list[list[str]] = []

    def encode_text(prompts: list[str]) -> np.ndarray:
        calls.append(prompts)
        return np.array([vectors[p] for p in prompts])

    classifier = build_classifier(encode_text, ["cat", "dog"], templates=["x {}", "y {}"], batch_size=3)
    assert classifier.dtype == np.float32 and classifier.shape == (2, 3)
    np.testing.assert_allclose(classifier, [[2**-0.5, 2**-0.5, 0.0], [0.0, 0.0, 1.0]], atol=1e-6)
    assert calls == [["x cat", "y cat", "x dog"], ["y dog"]]


def test_build_classifier_with_torch_encoder_and_real_templates() -> None:
    rng = np.random.default_rng(0)
    table: dict[str, np.ndarray] = {}

    def encode_text(prompts: list[str]) -> torch.Tensor:
        rows = [table.setdefault(p, rng.standard_normal(8)) for p in prompts]
        return torch.tensor(np.array(rows), dtype=torch.float64)

    classifier = build_classifier(encode_text, ["bath_room", "office"], "depth", batch_size=64)
    prompts = class_prompts(["bath_room", "office"], "depth")
    for row, class_prompts_ in zip(classifier, prompts, strict=True):
        units = np.array([table[p] / np.linalg.norm(table[p]) for p in class_prompts_])
        expected = units.mean(axis=0) / np.linalg.norm(units.mean(axis=0))
        np.testing.assert_allclose(row, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(classifier, axis=1), 1.0, atol=1e-6)


def test_encoder_returning_the_wrong_shape_is_reported() -> None:
    with pytest.raises(ValueError, match="returned shape"):
        build_classifier(lambda prompts: np.ones((1, 4)), ["a", "b"], "audio")
    with pytest.raises(ValueError, match="zero or non-finite norm"):
        build_classifier(lambda prompts: np.zeros((len(prompts), 4)), ["a"], "audio")


# --- accuracy and probabilities ------------------------------------------------------------------------


def test_zeroshot_accuracy_with_known_ranks() -> None:
    rng = np.random.default_rng(1)
    n_classes, n_items = 10, 200
    classifier = np.eye(n_classes, dtype=np.float32)
    labels = rng.integers(0, n_classes, size=n_items)
    true_rank = rng.integers(1, n_classes + 1, size=n_items)
    items = np.zeros((n_items, n_classes), dtype=np.float32)
    scores = np.linspace(1.0, 0.1, n_classes)  # descending, 0.1 apart
    for i in range(n_items):
        others = rng.permutation([c for c in range(n_classes) if c != labels[i]])
        order = np.insert(others, true_rank[i] - 1, labels[i])  # class at position p gets scores[p]
        items[i, order] = scores
    items += rng.uniform(-0.01, 0.01, size=items.shape).astype(np.float32)  # noise far below the gaps
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    result = zeroshot_accuracy(items, classifier, labels, topk=(1, 5), chunk=17)
    assert result["top1"] == pytest.approx(100.0 * np.mean(true_rank == 1))
    assert result["top5"] == pytest.approx(100.0 * np.mean(true_rank <= 5))
    assert result["n_items"] == n_items
    assert 0.0 < result["top1"] < result["top5"] < 100.0
    assert zeroshot_accuracy(torch.from_numpy(items), torch.from_numpy(classifier), torch.from_numpy(labels)) == result


def test_zeroshot_tie_counts_as_a_miss_and_small_label_sets() -> None:
    classifier = np.eye(2, dtype=np.float32)
    items = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32) / np.array([[2**0.5], [1], [1]])
    result = zeroshot_accuracy(items, classifier, [0, 0, 0], topk=(1, 2, 5))
    assert result == {"top1": pytest.approx(100 / 3), "top2": 100.0, "top5": 100.0, "n_items": 3}
    with pytest.raises(ValueError, match="out of range"):
        zeroshot_accuracy(items, classifier, [0, 2, 0])


def test_classify_is_a_softmax_of_scaled_cosines() -> None:
    classifier = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    items = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    probabilities = class_probabilities(items, classifier, logit_scale=1.0)
    e = np.e
    np.testing.assert_allclose(probabilities[0], [e / (e + 1), 1 / (e + 1)], rtol=1e-6)
    np.testing.assert_allclose(probabilities[1], np.exp([0.6, 0.8]) / np.exp([0.6, 0.8]).sum(), rtol=1e-6)
    sharp = class_probabilities(torch.from_numpy(items), classifier)  # CLIP's default scale, 100
    assert sharp.dtype == np.float32 and sharp.shape == (2, 2)
    np.testing.assert_allclose(sharp.sum(axis=1), 1.0, rtol=1e-6)
    assert sharp[1, 1] > 0.99

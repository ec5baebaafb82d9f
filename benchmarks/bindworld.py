"""BindWorld retrieval benchmark: text->X, held-out paraphrases, emergent X->Y, X->text zero-shot per attribute.

    python benchmarks/bindworld.py                      # bindsearch-mini on runs/bindworld-test
    python benchmarks/bindworld.py --model runs/mini/depth --modalities depth --out runs/bench.json

The test world (default 600 scenes, seed 1001, never used in training) is generated when missing. A hit is
a retrieved item with the query's values on every attribute both sides sense (`bindsearch.world.same_on`):

- text->X: the query is the scene's caption for X (training vocabulary, naming only what X senses);
- paraphrase->X: the same attributes worded with the held-out `PARAPHRASE` vocabulary (everyday wording
  with no content word seen in training: "a huge reddish ball in the topmost region"), `full paraphrase`:
  the scene's held-out paraphrase naming all eight attributes, and `rare-word paraphrase`: the sensed
  attributes worded with `RARE_PARAPHRASE` ("a giant crimson ball toward the north");
- emergent A->B: A's vector against B's (depth->infrared, image->depth, audio->video: pairs never trained
  together); chance is `world.chance(A, B)` and the measured share of relevant gallery items;
- X->text zero-shot: each file classified among `attribute_prompts` of each attribute X senses.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bindsearch.evaluation.metrics import ranks  # noqa: E402
from bindsearch.models import EmbeddingModel, load_model  # noqa: E402
from bindsearch.pipeline import encode_files  # noqa: E402
from bindsearch.world import (  # noqa: E402
    ATTRIBUTES,
    MODALITIES,
    RARE_PARAPHRASE,
    SENSES,
    VERSION,
    Scene,
    WorldConfig,
    attribute_prompts,
    chance,
    make_world,
    read_manifest,
    read_scenes,
    sensed_paraphrase,
    shared_attributes,
)

EMERGENT = (("depth", "infrared"), ("image", "depth"), ("audio", "video"), ("infrared", "depth"),
            ("depth", "image"), ("video", "audio"), ("image", "infrared"))


def ensure_world(directory: Path, n: int, seed: int, workers: int) -> None:
    """Generate the all-test world unless `directory` holds this version's world of that seed and size.

    A world with train and val splits (one a user made) is never replaced: its test split is scored as it is.
    """
    if (directory / "scenes.csv").exists():
        manifest = read_manifest(directory)
        ours = manifest.get("splits", {}).get("test", {}).get("fraction") == 1.0
        if not ours:
            if manifest.get("version") != VERSION:
                raise SystemExit(f"error: {directory} holds a {manifest.get('version')} world; this benchmark reads "
                                 f"{VERSION}: remake it with bindsearch world make, or pass another --world")
            print(f"scoring the test split of the world in {directory} (seed {manifest.get('seed')}); --n and "
                  "--seed apply only to a world this script generates", file=sys.stderr)
            return
        if (manifest.get("version"), manifest.get("seed"), manifest.get("n")) == (VERSION, seed, n):
            return
    print(f"generating the test world ({VERSION}): {n} scenes, seed {seed} -> {directory}", file=sys.stderr)
    make_world(directory, n, seed, {"train": 0.0, "val": 0.0, "test": 1.0}, WorldConfig(), workers=workers,
               overwrite=True)


def relevant(scenes: list[Scene], attributes: tuple[str, ...] | frozenset[str]) -> np.ndarray:
    """(n, n) bool: scene i and scene j agree on every listed attribute."""
    codes = np.array([[ATTRIBUTES[a].index(s.attributes[a]) for a in sorted(attributes)] for s in scenes])
    return (codes[:, None, :] == codes[None, :, :]).all(-1)


def _recall(sim: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    r = ranks(sim, mask)
    return {"R@1": float((r <= 1).mean() * 100), "R@5": float((r <= 5).mean() * 100),
            "R@10": float((r <= 10).mean() * 100)}


def embed_media(model: EmbeddingModel, modality: str, paths: list[Path], workers: int) -> np.ndarray:
    """(n, d) float32 unit rows for every file, in order; a file that fails to decode is an error here."""
    out = []
    for batch in encode_files(model, modality, paths, workers=workers):
        if batch.failures:
            raise RuntimeError(f"{batch.failures[0]}")
        out.append(batch.vectors)
    return torch.cat(out).numpy()


def run(model: EmbeddingModel, world: Path, modalities: tuple[str, ...], workers: int = 2) -> dict[str, Any]:
    """Every figure of the benchmark as one JSON-able dict (percentages)."""
    scenes = read_scenes(world, "test")
    start = time.perf_counter()
    vectors = {m: embed_media(model, m, [s.path(world, m) for s in scenes], workers) for m in modalities}

    def text(texts: list[str]) -> np.ndarray:
        return model.encode("text", texts).numpy()

    result: dict[str, Any] = {"model": model.spec, "checkpoint": model.checkpoint, "world": str(world),
                              "scenes": len(scenes), "text_to_x": {}, "emergent": {}, "zeroshot": {}}
    for m in modalities:
        mask = relevant(scenes, SENSES[m])
        entry = {"chance": chance("text", m) * 100 if m != "text" else None,
                 "measured_chance": float(mask.mean() * 100)}
        entry["caption"] = _recall(text([s.modality_captions[m][0] for s in scenes]) @ vectors[m].T, mask)
        entry["paraphrase"] = _recall(text([sensed_paraphrase(s, m) for s in scenes]) @ vectors[m].T, mask)
        entry["full_paraphrase"] = _recall(text([s.paraphrases[0] for s in scenes]) @ vectors[m].T, mask)
        rare = text([sensed_paraphrase(s, m, RARE_PARAPHRASE) for s in scenes])
        entry["rare_paraphrase"] = _recall(rare @ vectors[m].T, mask)
        result["text_to_x"][m] = entry
        accuracy = {}
        for attribute in sorted(SENSES[m], key=list(ATTRIBUTES).index):
            prompts = attribute_prompts(attribute)
            labels = np.array([list(prompts).index(s.attributes[attribute]) for s in scenes])
            guess = (vectors[m] @ text(list(prompts.values())).T).argmax(1)
            accuracy[attribute] = {"accuracy": float((guess == labels).mean() * 100),
                                   "chance": 100 / len(ATTRIBUTES[attribute])}
        result["zeroshot"][m] = accuracy
    for a, b in EMERGENT:
        if a in modalities and b in modalities:
            mask = relevant(scenes, shared_attributes(a, b))
            figures = _recall(vectors[a] @ vectors[b].T, mask)
            figures.update(chance=chance(a, b) * 100, measured_chance=float(mask.mean() * 100),
                           shared=list(shared_attributes(a, b)))
            figures["x_chance"] = figures["R@1"] / figures["measured_chance"]
            result["emergent"][f"{a}->{b}"] = figures
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def table(result: dict[str, Any]) -> str:
    """Markdown tables of `run`'s result."""
    lines = [f"BindWorld test: {result['scenes']} scenes, model {result['model']} ({result['checkpoint']})", "",
             "| text -> X | chance | R@1 | R@5 | paraphrase R@1 | paraphrase R@5 | full paraphrase R@5 "
             "| rare-word paraphrase R@5 |",
             "|---|---|---|---|---|---|---|---|"]
    for m, e in result["text_to_x"].items():
        lines.append(f"| {m} | {e['measured_chance']:.2f} | {e['caption']['R@1']:.1f} | {e['caption']['R@5']:.1f} | "
                     f"{e['paraphrase']['R@1']:.1f} | {e['paraphrase']['R@5']:.1f} | "
                     f"{e['full_paraphrase']['R@5']:.1f} | {e['rare_paraphrase']['R@5']:.1f} |")
    lines += ["", "| emergent A -> B | shared | chance | R@1 | R@5 | R@1 / chance |", "|---|---|---|---|---|---|"]
    for pair, e in result["emergent"].items():
        lines.append(f"| {pair} | {', '.join(e['shared'])} | {e['measured_chance']:.2f} | {e['R@1']:.1f} | "
                     f"{e['R@5']:.1f} | {e['x_chance']:.0f}x |")
    attributes = [a for a in ATTRIBUTES if any(a in z for z in result["zeroshot"].values())]
    lines += ["", "| X -> text zero-shot (chance) | " + " | ".join(
        f"{a} ({100 / len(ATTRIBUTES[a]):.0f})" for a in attributes) + " |",
        "|---|" + "---|" * len(attributes)]
    for m, z in result["zeroshot"].items():
        cells = [f"{z[a]['accuracy']:.1f}" if a in z else "-" for a in attributes]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bindsearch-mini")
    parser.add_argument("--world", type=Path, default=Path("runs/bindworld-test"))
    parser.add_argument("--n", type=int, default=600, help="scenes when the test world is generated")
    parser.add_argument("--seed", type=int, default=1001, help="seed when the test world is generated")
    parser.add_argument("--modalities", default=",".join(MODALITIES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    ensure_world(args.world, args.n, args.seed, args.workers)
    result = run(load_model(args.model, device="cpu"), args.world, tuple(args.modalities.split(",")), args.workers)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2) if args.json else table(result))
    return result


if __name__ == "__main__":
    main()

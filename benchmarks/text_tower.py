"""The CLIP text tower on captions of real length, side by side in one run.

    python benchmarks/text_tower.py --threads 2 [--batch 256] [--rounds 3] [--dtype bfloat16]

The tower is LanguageBind's (CLIP ViT-L/14's text tower: 12 layers, width 768, 77 positions) with random weights,
reading BindWorld texts tokenised by open_clip's CLIP BPE. Two savings, each against the way it ran before:

- the tower stops after the batch's last end-of-text token instead of running all 77 positions CLIP pads a text
  to (with the causal mask nothing after that token reaches it): a batch of whole-scene captions, and a single
  three-word query for a search's latency;
- `model.encode("text", ...)` batches texts shortest first, so each batch stops near its own longest text,
  against batches in the caller's order: 4 x `--batch` texts of mixed lengths (whole-scene captions and the
  shorter captions of what one sense perceives).

Prints texts/s for each, the ratio, and the largest difference of the unit vectors.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bindsearch.models.builtin import random_model, vit_l14_configs  # noqa: E402
from bindsearch.world.scene import sample_scene  # noqa: E402


def every_position(model, ids: torch.Tensor) -> torch.Tensor:
    """`model.embed("text", ids)` with the tower run on all of its positions, as the reference runs it."""
    text = model.text_model
    x = text.embeddings.token_embedding(ids) + text.embeddings.position_embedding.weight[: ids.shape[1]]
    hidden = text.final_layer_norm(text.encoder(x, causal=True, rows=ids.argmax(dim=-1)))
    return torch.nn.functional.normalize(model.text_projection(hidden).float(), dim=-1)


def in_given_order(model, texts: list[str], batch: int) -> torch.Tensor:
    """`model.encode("text", texts)` as it batched before: chunks in the caller's order."""
    return torch.cat([model.embed("text", model.tokenize(texts[i:i + batch])) for i in range(0, len(texts), batch)])


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--layers", type=int, default=0, help="fewer layers (smoke test)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    config = vit_l14_configs(("image",))[0]
    if args.layers:  # the image tower is only there because a model has one; it shrinks too
        config = replace(config, text=replace(config.text, encoder=replace(config.text.encoder, layers=args.layers)),
                         tower=replace(config.tower, encoder=replace(config.tower.encoder, layers=args.layers)))
    model = random_model([config]).eval().to(getattr(torch, args.dtype))
    scenes = [sample_scene(i, 0, "test") for i in range(2 * args.batch)]
    captions = model.tokenize([scene.captions[0] for scene in scenes[: args.batch]])
    query = model.tokenize(["a dog barking"])
    mixed = [text for scene in scenes for text in (scene.captions[0], scene.modality_captions["audio"][0])]
    workloads = {
        f"{args.batch} captions": (len(captions), {
            "all 77 positions": lambda: every_position(model, captions),
            "to the last end-of-text": lambda: model.embed("text", captions)}),
        "1 query": (1, {
            "all 77 positions": lambda: every_position(model, query),
            "to the last end-of-text": lambda: model.embed("text", query)}),
        f"{len(mixed)} mixed texts": (len(mixed), {
            "batches in given order": lambda: in_given_order(model, mixed, args.batch),
            "shortest first": lambda: model.encode("text", mixed, batch_size=args.batch)}),
    }

    rows = []
    with torch.inference_mode():
        for name, (count, contestants) in workloads.items():
            best, vectors = dict.fromkeys(contestants, float("inf")), {}
            for label, run in contestants.items():
                vectors[label] = run()  # warm-up
            for _ in range(args.rounds):
                for label, run in contestants.items():
                    start = time.perf_counter()
                    run()
                    best[label] = min(best[label], time.perf_counter() - start)
            (before, after), (old, new) = contestants, best.values()
            rows.append({"workload": name, "before": before, "after": after, "before_per_s": count / old,
                         "after_per_s": count / new, "speedup": old / new,
                         "max_abs_diff": float((vectors[before] - vectors[after]).abs().max())})
    print(f"\nCLIP ViT-L/14 text tower, {args.dtype}, {torch.get_num_threads()} threads, best of {args.rounds}")
    print(f"{'workload':<18}{'before':<24}{'/s':>8}  {'after':<24}{'/s':>8}{'speed-up':>10}{'max diff':>10}")
    for r in rows:
        print(f"{r['workload']:<18}{r['before']:<24}{r['before_per_s']:>8.1f}  {r['after']:<24}{r['after_per_s']:>8.1f}"
              f"{r['speedup']:>9.2f}x{r['max_abs_diff']:>10.1e}")
    return rows


if __name__ == "__main__":
    main()

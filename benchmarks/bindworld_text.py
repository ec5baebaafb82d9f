"""BindWorld text-space ceiling: how far paraphrase retrieval can go when the towers are perfect.

    python benchmarks/bindworld_text.py                          # every modality, ~1.5 min on 2 CPU threads
    python benchmarks/bindworld_text.py --modalities depth,audio --captions 64 --worst 5
    python benchmarks/bindworld_text.py --json --out runs/bindworld-text.json
    python benchmarks/bindworld_text.py --anchor DIR             # another frozen anchor (sentence-transformers)

A perfect tower can do no better than place every scene of one *group* (its values on the attributes the
modality senses) on one vector. This probe gives each group a free learnable vector, initialised at the
mean MiniLM embedding of `--captions` training captions of the group (`TRAIN` vocabulary, drawn with
`distinct_captions` like `Scene.modality_captions`), then fitted to them with the recipe's loss
(`trainer.contrastive_loss`: InfoNCE, same-group positives, learnable temperature from 0.07). Queries are
exactly those of `benchmarks/bindworld.py` on its default test world (`--scenes` scenes of seed `--seed`,
drawn, not rendered): each scene's sensed attributes worded with a held-out vocabulary (`--vocabulary`:
`PARAPHRASE`, everyday, or `RARE_PARAPHRASE`), and
its first training-vocabulary modality caption.

Groups are every combination of the sensed values when there are at most `--max-groups` of them (depth
162, infrared 486, audio 36), otherwise the groups of the test scenes (image, video). Tables:

1. `groups`: gallery of group vectors; `para R@1/R@5`: rank of the paraphrase query's group among them
   (chance 1/groups, 5/groups); `train R@1`: the same for the training-vocabulary caption. `bench ...`:
   the benchmark's own figure for a perfect tower: gallery = the group vector of every test scene, hit =
   same group, pessimistic ties (`evaluation.metrics.ranks`); a group present k times in the gallery must
   rank about top 5/k (audio: k ~ 17, so bench R@5 is group R@1).
2. How often the top-1 group of a paraphrase query has the wrong value, per attribute.
3. Per attribute, the accuracy on paraphrase queries of a linear softmax fitted on the same TRAIN
   captions: what an additive (compositional) tower could read from the text space, attribute by attribute.
4. Per attribute (modalities pooled), the held-out phrases whose queries land on a wrong value most often.

Caption vectors are cached under `--cache` (keyed by the caption list): a rerun with an unchanged
vocabulary takes seconds. Training captions per scene (`WorldConfig.modality_captions`, 3) times scenes per
group is what the real towers get: depth ~100 captions per group, audio ~450, infrared ~33, image ~14,
video ~1 (so image and video towers must compose, and table 3 is their better guide).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bindsearch.evaluation.metrics import ranks  # noqa: E402
from bindsearch.training.data import embed_captions  # noqa: E402
from bindsearch.training.trainer import contrastive_loss  # noqa: E402
from bindsearch.world import ATTRIBUTES, HELD_OUT, MODALITIES, SENSES, TRAIN, Vocabulary, sensed_paraphrase  # noqa: E402
from bindsearch.world.captions import distinct_captions  # noqa: E402
from bindsearch.world.scene import Scene, sample_scene  # noqa: E402

Group = tuple[str, ...]  # values on the sensed attributes, in `ATTRIBUTES` order


def sensed(modality: str) -> tuple[str, ...]:
    """The attributes `modality` senses, in `ATTRIBUTES` order."""
    return tuple(a for a in ATTRIBUTES if a in SENSES[modality])


def groups_for(modality: str, scenes: list[Scene], max_groups: int) -> list[Group]:
    """Every combination of sensed values if there are at most `max_groups`, else the test scenes' groups."""
    names = sensed(modality)
    if math.prod(len(ATTRIBUTES[a]) for a in names) <= max_groups:
        return list(itertools.product(*(ATTRIBUTES[a] for a in names)))
    return sorted({tuple(s.attributes[a] for a in names) for s in scenes})


def fit_group_vectors(text: torch.Tensor, labels: torch.Tensor, n_groups: int, steps: int, batch: int,
                      lr: float, seed: int) -> tuple[torch.Tensor, float]:
    """One free unit vector per group, fitted to its captions' vectors with the recipe's InfoNCE.

    Starts from each group's caption centroid; each step draws `batch` captions, pairs each with its
    group's vector, and treats captions of the same group as positives. Returns (vectors, temperature).
    """
    generator = torch.Generator().manual_seed(seed)
    centroids = torch.zeros(n_groups, text.shape[1]).index_add_(0, labels, text)
    vectors = nn.Parameter(nn.functional.normalize(centroids, dim=-1))
    scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    optimiser = torch.optim.Adam([{"params": [vectors], "lr": lr}, {"params": [scale], "lr": 3e-2}])
    for _ in range(steps):
        pick = torch.randint(len(text), (min(batch, len(text)),), generator=generator)
        media = nn.functional.normalize(vectors[labels[pick]], dim=-1)
        loss = contrastive_loss(media, text[pick], scale, labels[pick])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            scale.clamp_(0, math.log(100))
    return nn.functional.normalize(vectors.detach(), dim=-1), float(1 / scale.detach().exp())


def readout_accuracy(fit: torch.Tensor, values: torch.Tensor, queries: torch.Tensor, truth: torch.Tensor,
                     classes: list[int], steps: int = 300) -> list[float]:
    """Per attribute, accuracy (%) on `queries` of a linear softmax over its values, fitted on the TRAIN captions.

    `values`, `truth`: (n, attributes) value indices of the fitted captions and of the queries; `classes`: the
    number of values of each attribute. The best an additive tower could do on each attribute alone, since
    score = query . vector is linear in the query. All attributes are fitted at once (one block each).
    """
    ends = np.cumsum(classes).tolist()
    blocks = [slice(end - k, end) for k, end in zip(classes, ends, strict=True)]
    weights = torch.zeros(fit.shape[1], ends[-1], requires_grad=True)
    optimiser = torch.optim.Adam([weights], lr=0.05)
    for _ in range(steps):
        logits = fit @ weights
        loss = sum(nn.functional.cross_entropy(logits[:, b], values[:, i]) for i, b in enumerate(blocks))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    scores = queries @ weights.detach()
    return [float((scores[:, b].argmax(1) == truth[:, i]).float().mean() * 100) for i, b in enumerate(blocks)]


def held_out_phrase(attribute: str, value: str, query: str, vocabulary: Vocabulary) -> str:
    """Which held-out phrase for `value` the query used (longest that occurs in it)."""
    found = [p for p in vocabulary.phrases[attribute][value] if p in query]
    return max(found, key=len) if found else "?"


Errors = dict[str, list[tuple[str, str, str]]]  # attribute -> (held-out phrase, true, top-1 value) per query


def probe(modality: str, scenes: list[Scene], args: argparse.Namespace) -> tuple[dict[str, Any], Errors]:
    """Fit the group vectors of `modality` and score the benchmark's queries against them."""
    names = sensed(modality)
    groups = groups_for(modality, scenes, args.max_groups)
    index = {g: i for i, g in enumerate(groups)}
    captions, labels = [], []
    for i, group in enumerate(groups):
        rng = np.random.default_rng([args.seed, MODALITIES.index(modality), i, 7])
        captions += distinct_captions(dict(zip(names, group, strict=True)), args.captions, rng, TRAIN)
        labels += [i] * args.captions
    truth = np.array([index[tuple(s.attributes[a] for a in names)] for s in scenes])
    vocabulary = HELD_OUT[args.vocabulary]
    paraphrases = [sensed_paraphrase(s, modality, vocabulary) for s in scenes]
    trained = [s.modality_captions[modality][0] for s in scenes]
    text = embed_captions(captions + paraphrases + trained, args.cache, args.anchor)
    fit, para, train = text[:len(captions)], text[len(captions):-len(scenes)], text[-len(scenes):]
    vectors, temperature = fit_group_vectors(fit, torch.tensor(labels), len(groups), args.steps, args.batch,
                                             args.lr, args.seed)

    def recall(queries: torch.Tensor, gallery: torch.Tensor, relevant: np.ndarray) -> dict[str, float]:
        r = ranks((queries @ gallery.T).numpy(), relevant)
        return {"R@1": float((r <= 1).mean() * 100), "R@5": float((r <= 5).mean() * 100)}

    same_group = truth[:, None] == truth[None, :]
    top1 = (para @ vectors.T).argmax(1).numpy()
    codes = [{v: k for k, v in enumerate(ATTRIBUTES[a])} for a in names]
    values = torch.tensor([[code[value] for code, value in zip(codes, groups[i], strict=True)] for i in labels])
    answers = torch.tensor([[code[value] for code, value in zip(codes, groups[t], strict=True)] for t in truth])
    readout = dict(zip(names, readout_accuracy(fit, values, para, answers, [len(c) for c in codes]), strict=True))
    errors: Errors = {}
    for position, attribute in enumerate(names):
        errors[attribute] = [
            (held_out_phrase(attribute, groups[t][position], q, vocabulary), groups[t][position], groups[p][position])
            for q, t, p in zip(paraphrases, truth, top1, strict=True)
        ]
    return {
        "senses": list(names), "groups": len(groups), "captions_per_group": args.captions,
        "temperature": round(temperature, 4), "chance": {"R@1": 100 / len(groups), "R@5": 500 / len(groups)},
        "paraphrase": recall(para, vectors, truth), "train": recall(train, vectors, truth),
        "bench": recall(para, vectors[truth], same_group), "bench_train": recall(train, vectors[truth], same_group),
        "attribute_error": {a: float(np.mean([t != p for _, t, p in e]) * 100) for a, e in errors.items()},
        "attribute_readout": readout,
    }, errors


def confusions(errors: list[Errors], worst: int) -> dict[str, list[dict[str, Any]]]:
    """Per attribute (all modalities pooled), the held-out phrases most often landing on a wrong value."""
    pooled: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for per_modality in errors:
        for attribute, records in per_modality.items():
            pooled[attribute] += records
    summary = {}
    for attribute in ATTRIBUTES:
        by_phrase: dict[tuple[str, str], list[str]] = defaultdict(list)
        for phrase, true, predicted in pooled.get(attribute, []):
            by_phrase[(phrase, true)].append(predicted)
        rows = []
        for (phrase, true), predicted in by_phrase.items():
            wrong = Counter(p for p in predicted if p != true)
            rows.append({"phrase": phrase, "value": true, "queries": len(predicted),
                         "wrong": 100 * sum(wrong.values()) / len(predicted),
                         "as": ", ".join(f"{v} {100 * n / len(predicted):.0f}%" for v, n in wrong.most_common(2))})
        rows.sort(key=lambda r: -r["wrong"])
        if rows:
            summary[attribute] = rows[:worst]
    return summary


def table(result: dict[str, Any]) -> str:
    """Markdown tables of `run`'s result."""
    modalities = result["modalities"]
    lines = [f"BindWorld text-space ceiling ({result['anchor']}): free vector per group, "
             f"{result['captions']} TRAIN captions each, "
             f"queries from {result['scenes']} test scenes (seed {result['seed']}), {result['seconds']:.0f} s", "",
             "| modality | senses | groups | chance R@1 / R@5 | para R@1 | para R@5 | train R@1 | "
             "bench para R@1 | bench para R@5 | bench train R@5 | temp |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m, e in modalities.items():
        lines.append(f"| {m} | {', '.join(e['senses'])} | {e['groups']} | "
                     f"{e['chance']['R@1']:.2f} / {e['chance']['R@5']:.1f} | {e['paraphrase']['R@1']:.1f} | "
                     f"{e['paraphrase']['R@5']:.1f} | {e['train']['R@1']:.1f} | {e['bench']['R@1']:.1f} | "
                     f"{e['bench']['R@5']:.1f} | {e['bench_train']['R@5']:.1f} | {e['temperature']:.3f} |")
    attributes = [a for a in ATTRIBUTES if any(a in e["attribute_error"] for e in modalities.values())]
    lines += ["", "| paraphrase top-1 wrong on (%) | " + " | ".join(attributes) + " |",
              "|---|" + "---|" * len(attributes)]
    for m, e in modalities.items():
        cells = [f"{e['attribute_error'][a]:.0f}" if a in e["attribute_error"] else "-" for a in attributes]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "| paraphrase linear readout accuracy (%, chance) | " + " | ".join(
        f"{a} ({100 / len(ATTRIBUTES[a]):.0f})" for a in attributes) + " |", "|---|" + "---|" * len(attributes)]
    for m, e in modalities.items():
        cells = [f"{e['attribute_readout'][a]:.0f}" if a in e["attribute_readout"] else "-" for a in attributes]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "| attribute | held-out phrase | value | queries | wrong % | taken for |",
              "|---|---|---|---|---|---|"]
    for attribute, rows in result["confusions"].items():
        for row in rows:
            lines.append(f"| {attribute} | {row['phrase']} | {row['value']} | {row['queries']} | "
                         f"{row['wrong']:.0f} | {row['as']} |")
    return "\n".join(lines)


class SentenceAnchor:
    """A sentence-transformers model folder as a frozen anchor for `embed_captions` (`--anchor`)."""

    def __init__(self, path: Path):
        from sentence_transformers import SentenceTransformer

        self.name = str(path)
        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)

    def embed(self, texts: list[str]) -> torch.Tensor:
        return torch.from_numpy(self.model.encode(texts, batch_size=256, normalize_embeddings=True))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure as one JSON-able dict (percentages)."""
    start = time.perf_counter()
    scenes = [sample_scene(i, args.seed, "test") for i in range(args.scenes)]
    probed = {m: probe(m, scenes, args) for m in args.modalities.split(",")}
    modalities = {m: result for m, (result, _) in probed.items()}
    summary = confusions([errors for _, errors in probed.values()], args.worst)
    return {"scenes": args.scenes, "seed": args.seed, "vocabulary": args.vocabulary, "captions": args.captions,
            "anchor": args.anchor.name if args.anchor else "all-MiniLM-L6-v2", "modalities": modalities,
            "confusions": summary, "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modalities", default=",".join(MODALITIES))
    parser.add_argument("--scenes", type=int, default=600, help="test scenes drawn for the queries")
    parser.add_argument("--seed", type=int, default=1001, help="the test world's seed")
    parser.add_argument("--vocabulary", choices=sorted(HELD_OUT), default="everyday",
                        help="held-out wording of the queries: everyday synonyms or rare words")
    parser.add_argument("--captions", type=int, default=8, help="TRAIN captions per group")
    parser.add_argument("--anchor", type=Path, default=None,
                        help="a sentence-transformers model folder to probe instead of MiniLM (another frozen anchor)")
    parser.add_argument("--max-groups", type=int, default=600, help="enumerate every group up to this many")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--worst", type=int, default=3, help="held-out phrases listed per attribute")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (MiniLM embedding dominates)")
    parser.add_argument("--cache", type=Path, default=Path("runs/cache/bindworld-text"),
                        help="caption vector cache (keyed by the caption list)")
    parser.add_argument("--no-cache", dest="cache", action="store_const", const=None)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.anchor is not None:
        args.anchor = SentenceAnchor(args.anchor)
    torch.manual_seed(args.seed)
    result = run(args)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2) if args.json else table(result))
    return result


if __name__ == "__main__":
    try:
        from cli.main import run_reporting_errors  # a missing model or folder: one error line
    except ImportError:  # only the library importable (the reference's environment)
        main()
    else:
        run_reporting_errors(main)

"""The bindsearch-mini recipe: generate BindWorld, train one small tower per modality, write fp16 weights.

    python -m bindsearch.training.mini --out bindsearch/models/weights/bindsearch-mini

Each tower learns from its modality's own captions (`Scene.modality_captions[m]`, naming only what that
sensor senses), with scenes that agree on every sensed attribute treated as positives of each other.
Generated data and per-tower checkpoints go under `--work` (default `runs/mini`, git-ignored); an
interrupted run picks up where it stopped (world, caches and each tower's checkpoint are reused).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bindsearch.models.mini import MiniModel
from bindsearch.training.data import Pairs, PairSet
from bindsearch.training.trainer import SMALL_INPUT, TrainConfig, tower_config, train
from bindsearch.world import ATTRIBUTES, SENSES, WorldConfig, make_world, read_scenes
from bindsearch.world.captions import describe, distinct_captions
from bindsearch.world.generate import read_manifest
from bindsearch.world.scene import assign_splits

__all__ = ["DEFAULTS", "TOWERS", "recipe", "train_mini", "world_pairs"]

_PIXELS = tower_config(width=128, layers=4, input_size=(48, 48), patch=8)
# The same small ViT for every modality; video adds 4 frames with temporal attention, audio reads a
# 32-bin, 192-frame (~2 s) log-mel "image" in 8x8 patches.
TOWERS = {
    "image": _PIXELS,
    "depth": _PIXELS,
    "infrared": _PIXELS,
    "video": tower_config(128, 4, (48, 48), 8, frames=4),
    "audio": tower_config(128, 4, (32, 192), 8),
}
# One thread per tower and two towers at a time: on a shared 2-core machine, two-thread OpenMP regions
# wait on each other's core and ran 5x slower than one thread (measured). The temperature gets its own,
# larger learning rate: BindWorld captions sit close together in MiniLM's space, and the useful
# temperature (~0.01) is far below the initial 0.07 (depth val R@1 after 200 steps: 1% without, 39% with).
# No patch masking for the still towers: with 36 patches per frame every patch carries shape and position.
DEFAULTS: dict[str, Any] = dict(steps=500, batch_size=128, lr=2e-3, temperature_lr=3e-2, warmup=50, mask_ratio=0.0,
                                val_every=100, save_every=50, threads=1)
SPECIFIC: dict[str, dict[str, Any]] = {
    "depth": dict(steps=1000),
    "audio": dict(steps=400),  # 36 attribute combinations: 100% validation R@1 by step 300
    # Towers started from a trained tower (`INIT_FROM`) take a gentler learning rate.
    "image": dict(steps=2400, lr=1e-3),  # test text -> image R@1: 94.7% after 1800 steps, 97.3% after 2400
    "infrared": dict(steps=800, lr=1e-3),
    # Video trains alone in the last phase, so it takes both cores. No masking either: an object a few patches
    # wide, masked at 0.5, goes missing from some frames (test text -> video R@1 84.3% with masking at 0.5,
    # 87.2% without, same image tower and steps).
    # Every clip also trains played backwards, captioned with the opposite direction, in the same batch: with
    # only random batch-mates the tower never learned the arrow of time (reversed clips embedded at cosine
    # 1.000 to the originals; test zero-shot direction 47%, left/right and up/down swapped half the time).
    # Hard negatives (as NegCLIP's swapped captions): each clip's caption with the other two speeds and with
    # two other positions, which is where the remaining mistakes were.
    "video": dict(steps=1000, lr=1e-3, batch_size=64, threads=2,
                  extra=dict(time_reversed=True, hard_negatives={"speed": 2, "position": 2})),
}
# Towers that start from another trained tower's weights, as every LanguageBind tower starts from the same
# OpenCLIP image tower: depth (162 attribute combinations, clean silhouettes) learns shape fastest and
# seeds image and infrared; image seeds video (its temporal blocks start as a no-op). From scratch, the
# image tower still picked the wrong shape for 32% of validation queries after 800 steps (depth: 8%
# after 500), and video reached R@1 4% after 300 steps. No tower ever sees another modality's data.
INIT_FROM = {"image": "depth", "infrared": "depth", "video": "image"}
_OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
SPLITS = {"train": 0.9, "val": 0.1, "test": 0.0}
# Longest first, so that two workers finish together.
ORDER = ("depth", "audio", "image", "infrared", "video")


def recipe(modality: str, **overrides: Any) -> TrainConfig:
    """The mini recipe's config for `modality`: `DEFAULTS`, then `SPECIFIC[modality]`, then `overrides`."""
    settings = {**DEFAULTS, **SPECIFIC.get(modality, {}), **overrides}
    return TrainConfig(modality, TOWERS[modality], SMALL_INPUT, **settings)


def world_pairs(directory: str | Path, modality: str, split: str, limit: int | None = None,
                time_reversed: bool = False, hard_negatives: Mapping[str, int] | None = None) -> Pairs:
    """BindWorld scenes of `split` -> each scene's `modality` file with its modality captions.

    The group of a scene is its values on the attributes `modality` senses: captions cannot tell such
    scenes apart, so training treats them as positives and validation counts them as hits.
    `time_reversed` (video) adds every clip played backwards, captioned with the opposite direction:
    BindWorld's paths are centred on the object's position, so the reversed clip is the same scene moving
    the other way at the same speed (up to the frame sampling's rounding). `hard_negatives` maps sensed
    attributes to a count: each item gets, per attribute, its caption with that many other values of it
    (drawn at random, all of them if the count allows) as hard negative captions.
    """
    scenes = read_scenes(directory, split)[:limit]
    sensed = [name for name in ATTRIBUTES if name in SENSES[modality]]
    if time_reversed and "direction" not in sensed:
        raise ValueError(f"time reversal needs a modality that senses direction, not {modality}")
    hard_negatives = dict(hard_negatives or {})
    if set(hard_negatives) - set(sensed):
        raise ValueError(f"{modality} does not sense {sorted(set(hard_negatives) - set(sensed))}")

    def group(values: dict[str, str]) -> str:
        return "|".join(f"{name}={values[name]}" for name in sorted(sensed))

    # One entry per item: (scene index, played backwards, sensed values); reversed clips after all forward ones.
    items = [(int(scene.id[1:]), False, {name: scene.attributes[name] for name in sensed}) for scene in scenes]
    captions = [list(scene.modality_captions[modality]) for scene in scenes]
    if time_reversed:
        for scene, (index, _, values) in zip(scenes, list(items), strict=True):
            values = {**values, "direction": _OPPOSITE[values["direction"]]}
            items.append((index, True, values))
            rng = np.random.default_rng([index, 5])
            captions.append(distinct_captions(values, len(scene.modality_captions[modality]), rng))
    pairs = Pairs(
        paths=[scenes[i % len(scenes)].path(directory, modality) for i in range(len(items))],
        captions=captions,
        groups=[group(values) for _, _, values in items],
        time_reversed=[backwards for _, backwards, _ in items] if time_reversed else None,
    )
    if hard_negatives:
        pairs.negatives = []
        for index, backwards, values in items:
            rng = np.random.default_rng([index, 6, int(backwards)])
            negatives = []
            for name, count in hard_negatives.items():
                others = [v for v in ATTRIBUTES[name] if v != values[name]]
                negatives += [describe({**values, name: others[k]}, rng) for k in rng.permutation(len(others))[:count]]
            pairs.negatives.append(negatives)
    return pairs


def _check_splits(n: int) -> None:
    """Refuse a world too small to leave two training scenes and one validation scene, before it is generated: a
    tower then found "none of the 0 depth files" to validate on."""

    def counts(m: int) -> Counter[str]:
        return Counter(assign_splits(m, 0, SPLITS) if m > 0 else ())  # the counts do not depend on the seed

    def enough(m: int) -> bool:
        return counts(m)["train"] >= 2 and counts(m)["val"] >= 1

    if not enough(n):
        minimum = next(m for m in itertools.count(1) if enough(m))
        raise ValueError(f"--n {n} leaves {counts(n)['train']} training and {counts(n)['val']} validation scenes; "
                         f"the recipe needs two and one: give --n {minimum} or more")


def _ensure_world(directory: Path, n: int, seed: int, workers: int) -> None:
    made = read_manifest(directory)
    if made:
        if (made.get("n"), made.get("seed")) != (n, seed):  # trained and recorded as another world otherwise
            raise ValueError(f"{directory} holds a BindWorld of {made.get('n')} scenes (seed {made.get('seed')}), not "
                             f"{n} (seed {seed}); give another --work, or the same --n and --seed")
        return
    # No manifest: no world, or one whose generation was interrupted (an overwrite leaves files of two worlds, which
    # its scenes.csv mislabels): drawn again whole, over what is there, its surplus scene files removed.
    unfinished = (directory / "scenes.csv").exists()
    print(f"{'regenerating an unfinished' if unfinished else 'generating'} BindWorld: {n} scenes (seed {seed}) into "
          f"{directory}", file=sys.stderr)
    info = make_world(directory, n, seed, SPLITS, WorldConfig(), workers=workers, overwrite=True)
    print(f"  {info.n} scenes in {info.seconds:.0f} s", file=sys.stderr)


def _prepare(world: Path, modality: str, config: TrainConfig, cache: Path, workers: int
             ) -> tuple[PairSet, PairSet]:
    train = world_pairs(world, modality, "train", time_reversed=bool(config.extra.get("time_reversed")),
                        hard_negatives=config.extra.get("hard_negatives"))
    data = PairSet.build(modality, train, config.preprocess, cache, workers)
    val = PairSet.build(modality, world_pairs(world, modality, "val", limit=500), config.preprocess, cache, workers)
    return data, val


def _train_one(job: tuple[Path, str, TrainConfig, Path]) -> dict[str, Any]:
    world, modality, config, work = job
    torch.set_num_threads(config.threads)
    data, val = _prepare(world, modality, config, work / "cache", workers=0)  # cached by now: a quick load

    def log(record: dict[str, Any]) -> None:
        print(f"  {modality} " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in record.items()), file=sys.stderr, flush=True)

    result = train(config, data, work / modality, val=val, log=log)
    return {"steps": result.step, "validation": result.validation, "train_seconds": round(result.seconds, 1),
            "steps_per_second": round(result.steps_per_second, 2),
            "config": {k: v for k, v in config.to_dict().items() if k not in ("tower", "preprocess")}}


def _prepare_one(job: tuple[Path, str, TrainConfig, Path]) -> dict[str, Any]:
    world, modality, config, work = job
    torch.set_num_threads(1)
    start = time.perf_counter()
    data, val = _prepare(world, modality, config, work / "cache", workers=0)  # a pool worker has no children
    print(f"{modality}: {len(data)} train / {len(val)} val items ready in {time.perf_counter() - start:.0f} s",
          file=sys.stderr, flush=True)
    return {"prepare_seconds": round(time.perf_counter() - start, 1)}


def _run(job: tuple[str, Path, str, TrainConfig, Path]) -> dict[str, Any]:
    kind, *rest = job
    return (_train_one if kind == "train" else _prepare_one)(tuple(rest))  # type: ignore[arg-type]


def phases(modalities: tuple[str, ...]) -> list[list[str]]:
    """The towers in training order: a tower trains one phase after the tower it starts from."""
    out: list[list[str]] = []
    for m in modalities:
        level, source = 0, m
        while source in INIT_FROM and INIT_FROM[source] in modalities:
            level, source = level + 1, INIT_FROM[source]
        out.extend([] for _ in range(level + 1 - len(out)))
        out[level].append(m)
    return out


def train_mini(out: Path, work: Path, n: int = 6000, seed: int = 0, modalities: tuple[str, ...] = ORDER,
               workers: int = 2, parallel: int = 2, **overrides: Any) -> dict[str, Any]:
    """Generate the world (if absent), decode and embed once, train the towers `parallel` at a time
    (each resuming its checkpoint), then combine them and save fp16 weights to `out`; returns a summary.

    The first two phases' data is prepared up front; a later phase's is prepared beside the phase before
    it, on the core its shorter tower leaves free (video's time-reversed captions take ~2.5 min to embed).
    """
    import multiprocessing

    start = time.perf_counter()
    world = work / "world"
    _check_splits(n)
    _ensure_world(world, n, seed, workers)
    configs = {m: recipe(m, seed=seed, **overrides) for m in modalities}
    for m, source in INIT_FROM.items():
        if m in configs:
            configs[m] = replace(configs[m], init=str(work / source), init_modality=source)
    order = phases(modalities)
    for modality in [m for phase in order[:2] for m in phase]:
        t0 = time.perf_counter()
        data, val = _prepare(world, modality, configs[modality], work / "cache", workers)
        print(f"{modality}: {len(data)} train / {len(val)} val items ready in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
    prepared = time.perf_counter() - start
    reports: dict[str, dict[str, Any]] = {}
    for i, phase in enumerate(order):
        ahead = order[i + 1] if i >= 1 and i + 1 < len(order) else []
        jobs = [("train", world, m, configs[m], work) for m in phase]
        jobs += [("prepare", world, m, configs[m], work) for m in ahead]
        if parallel > 1 and len(jobs) > 1:
            # Spawned, not forked: the parent has run OpenMP (the text encoder), which forked children inherit badly.
            with multiprocessing.get_context("spawn").Pool(min(parallel, len(jobs))) as pool:
                results = pool.map(_run, jobs, chunksize=1)
        else:
            results = [_run(job) for job in jobs]
        for (_, _, m, _, _), result in zip(jobs, results, strict=True):
            reports.setdefault(m, {}).update(result)
    model = MiniModel.combine([MiniModel.load(work / m) for m in modalities])
    model.save(out, torch.float16)
    summary: dict[str, Any] = {
        "world": {"n": n, "seed": seed, "directory": str(world)}, "towers": reports,
        "prepare_seconds": round(prepared, 1), "train_seconds": round(time.perf_counter() - start - prepared, 1),
        "seconds": round(time.perf_counter() - start, 1), "parallel": parallel,
        "weights_bytes": (out / "model.safetensors").stat().st_size,
    }
    (out / "recipe.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> None:
    """Command line for the recipe (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Reproduce the bindsearch-mini weights on BindWorld.")
    parser.add_argument("--out", type=Path, required=True, help="where to write config.json + model.safetensors")
    parser.add_argument("--work", type=Path, default=Path("runs/mini"), help="generated data and checkpoints")
    parser.add_argument("--n", type=int, default=6000, help="BindWorld scenes to generate (90%% train)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per tower")
    parser.add_argument("--modalities", default=",".join(ORDER))
    parser.add_argument("--workers", type=int, default=2, help="processes decoding media")
    parser.add_argument("--parallel", type=int, default=2, help="towers trained at once")
    args = parser.parse_args(argv)
    overrides = {"steps": args.steps} if args.steps else {}
    from cli.main import run_reporting_errors  # one error line, as `bindsearch train mini` gives

    run_reporting_errors(lambda: print(json.dumps(train_mini(
        args.out, args.work, args.n, args.seed, tuple(args.modalities.split(",")), args.workers, args.parallel,
        **overrides), indent=2)))


if __name__ == "__main__":
    main()

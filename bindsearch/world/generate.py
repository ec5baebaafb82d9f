"""Write a BindWorld directory: every scene's five media files, scenes.csv and world.json."""

from __future__ import annotations

import json
import math
import multiprocessing
import re
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from bindsearch.files import file_in_the_way
from bindsearch.media.writers import write_audio, write_depth_png, write_image, write_video
from bindsearch.world.attributes import ATTRIBUTES, MODALITIES, SENSES
from bindsearch.world.render import (
    Geometry,
    render_depth,
    render_image,
    render_infrared,
    render_video,
    sample_geometry,
)
from bindsearch.world.scene import EXTENSIONS, Scene, assign_splits, sample_scene, write_scenes
from bindsearch.world.sound import render_audio

__all__ = ["VERSION", "WorldConfig", "WorldInfo", "make_world", "read_manifest", "render_scene", "scene_geometry"]

# bindworld-2: everyday held-out paraphrases (media and training captions as in bindworld-1).
VERSION = "bindworld-2"
# Forked workers start at once; spawned ones would re-import bindsearch (torch and all) first.
_START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else None


MANIFEST = "world.json"
"""Written last: a folder holds a finished world when it has one."""

MAX_SIZE = 2048
"""The largest frame side: a scene takes 18 s and 1 GB to draw (100,000 px asked numpy for 30 GB, a traceback)."""


@dataclass(frozen=True)
class WorldConfig:
    """How scenes are drawn: frame side (px), video frames, clip length (s), audio rate, captions each."""

    size: int = 64
    frames: int = 8
    seconds: float = 2.0
    sample_rate: int = 16000
    captions: int = 4
    paraphrases: int = 2
    modality_captions: int = 3

    @property
    def fps(self) -> float:
        """Video frame rate: the clip lasts as long as the sound."""
        return self.frames / self.seconds


@dataclass(frozen=True)
class WorldInfo:
    """What `make_world` wrote: where, how many scenes per split, and how fast."""

    directory: Path
    n: int
    seed: int
    splits: dict[str, int]
    seconds: float
    version: str = VERSION

    @property
    def scenes_per_second(self) -> float:
        """Generation throughput."""
        return self.n / max(self.seconds, 1e-9)


def scene_geometry(scene: Scene, seed: int, config: WorldConfig = WorldConfig()) -> Geometry:
    """The jittered pixel geometry every view of `scene` shares (`render.coverage` draws its mask)."""
    return sample_geometry(scene.attributes, np.random.default_rng([seed, int(scene.id[1:]), 2]), config.size)


def render_scene(scene: Scene, seed: int, config: WorldConfig = WorldConfig()) -> dict[str, np.ndarray]:
    """Arrays for every modality: image `(s, s, 3)` uint8, depth `(s, s)` float32 mm, infrared `(s, s)`
    uint8, video `(frames, s, s, 3)` uint8, audio `(sample_rate * seconds,)` float32."""
    index = int(scene.id[1:])
    attributes = scene.attributes
    geometry = scene_geometry(scene, seed, config)

    # Each modality draws its nuisances from its own stream (and captions from another), so an attribute
    # a modality does not sense cannot change a single sample of its file.
    def rng(modality: str) -> np.random.Generator:
        return np.random.default_rng([seed, index, 3, MODALITIES.index(modality)])

    return {
        "image": render_image(attributes, geometry, rng("image")),
        "depth": render_depth(geometry, rng("depth")),
        "infrared": render_infrared(attributes["temperature"], geometry, rng("infrared")),
        "video": render_video(attributes, geometry, rng("video"), frames=config.frames),
        "audio": render_audio(attributes, rng("audio"), config.sample_rate, config.seconds),
    }


def make_world(
    directory: str | Path,
    n: int,
    seed: int = 0,
    splits: dict[str, float] | None = None,
    config: WorldConfig = WorldConfig(),
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> WorldInfo:
    """Generate `n` scenes into `directory` (`<modality>/<id>.<ext>`, scenes.csv, world.json).

    `splits` maps split name to fraction (default train 0.8, val 0.1, test 0.1); `progress` is called
    with the number of scenes finished since the last call. `overwrite` replaces an existing world,
    deleting its scene files that the new one does not have.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if config.size % 2 or not 16 <= config.size <= MAX_SIZE:
        raise ValueError(f"size must be an even number of pixels from 16 to {MAX_SIZE} (H.264 needs even sides; "
                         f"a scene of {MAX_SIZE} px takes 1 GB to draw), got {config.size}")
    if workers < 0:
        raise ValueError(f"workers must be at least 0 (0 or 1: the scenes are drawn in this process), got {workers}")
    if config.frames < 2:
        raise ValueError(f"a video needs at least 2 frames, got {config.frames}")
    if not (math.isfinite(config.seconds) and config.seconds > 0):
        raise ValueError(f"seconds must be a positive length of video and sound, got {config.seconds}")
    if config.fps != round(config.fps):
        raise ValueError(f"frames / seconds must be a whole rate, got {config.frames} / {config.seconds}")
    directory = Path(directory)
    if (in_the_way := file_in_the_way(directory)) is not None:
        raise ValueError(f"{in_the_way} is a file; give a folder to write the world into")
    if not overwrite and (directory / MANIFEST).exists():
        raise FileExistsError(f"{directory} already holds a world; pass --overwrite to replace it")
    if not overwrite and (directory / "scenes.csv").exists():
        raise FileExistsError(f"{directory} holds an unfinished world (scenes.csv but no {MANIFEST}: its generation "
                              "was interrupted); pass --overwrite to make it again")
    splits = dict(splits) if splits is not None else {"train": 0.8, "val": 0.1, "test": 0.1}
    labels = assign_splits(n, seed, splits)
    # The manifest marks a finished world: gone before the first file is redrawn and written last, an interrupted
    # overwrite reads as unfinished (the old scenes.csv and world.json described new files as the old scenes).
    (directory / MANIFEST).unlink(missing_ok=True)
    for modality in MODALITIES:
        (directory / modality).mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    task = partial(_make_scene, directory=directory, seed=seed, config=config)
    jobs = list(enumerate(labels))
    scenes: list[Scene] = []
    if workers > 1:
        # Workers only render and write files; `import bindsearch` may have loaded lancedb, whose
        # fork hook warns about its own state, which these children never touch.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)
            pool = multiprocessing.get_context(_START_METHOD).Pool(workers, initializer=_quiet_on_sigterm)
        with pool:
            for scene in pool.imap(task, jobs, chunksize=8):
                scenes.append(scene)
                if progress:
                    progress(1)
    else:
        for job in jobs:
            scenes.append(task(job))
            if progress:
                progress(1)
    write_scenes(directory / "scenes.csv", scenes)
    if overwrite:
        _remove_stale(directory, {scene.id for scene in scenes})
    seconds = time.perf_counter() - start
    counts = {name: labels.count(name) for name in splits}
    _write_manifest(directory / MANIFEST, n, seed, splits, counts, config)
    return WorldInfo(directory=directory, n=n, seed=seed, splits=counts, seconds=seconds)


def _quiet_on_sigterm() -> None:
    """A pool worker ends as SIGTERM's default does: the pool stops its workers with it when its work is done, and
    a worker forked from `bindsearch` inherited the command's handler, which raised KeyboardInterrupt (a traceback
    after the command had said it was done)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _make_scene(job: tuple[int, str], directory: Path, seed: int, config: WorldConfig) -> Scene:
    index, split = job
    scene = sample_scene(index, seed, split, config.captions, config.paraphrases, config.modality_captions)
    arrays = render_scene(scene, seed, config)
    write_image(scene.path(directory, "image"), arrays["image"])
    write_depth_png(scene.path(directory, "depth"), arrays["depth"])
    write_image(scene.path(directory, "infrared"), arrays["infrared"])
    write_video(scene.path(directory, "video"), arrays["video"], fps=round(config.fps))
    write_audio(scene.path(directory, "audio"), arrays["audio"], config.sample_rate)
    return scene


def read_manifest(directory: str | Path) -> dict:
    """`directory/world.json` as written by `make_world` (version, seed, splits, config); {} if there is none (no
    world, or one whose generation did not finish)."""
    path = Path(directory) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def _remove_stale(directory: Path, keep: set[str]) -> None:
    """Delete scene files a previous, larger world left behind (only names shaped like scene ids)."""
    for modality, ext in EXTENSIONS.items():
        for path in (directory / modality).glob(f"s*.{ext}"):
            if re.fullmatch(r"s\d{6,}", path.stem) and path.stem not in keep:
                path.unlink()


def _write_manifest(
    path: Path, n: int, seed: int, fractions: dict[str, float], counts: dict[str, int], config: WorldConfig
) -> None:
    manifest = {
        "version": VERSION,
        "seed": seed,
        "n": n,
        "splits": {name: {"fraction": fractions[name], "count": counts[name]} for name in fractions},
        "config": asdict(config),
        "attributes": {name: list(values) for name, values in ATTRIBUTES.items()},
        "senses": {modality: sorted(SENSES[modality]) for modality in SENSES},
        "files": {modality: f"{modality}/<id>.{ext}" for modality, ext in EXTENSIONS.items()},
    }
    tmp = path.with_name(path.name + ".tmp")  # a manifest cut short would mark a world finished all the same
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)

"""Reels: several BindWorld scenes played one after another as one long video and one long sound.

What a recording looks like to a search for moments: the scene a query describes is somewhere inside a file, and
`bindsearch index --window` must find when. Scene `i` of a reel plays from `i * seconds` to `(i + 1) * seconds`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bindsearch.media.writers import write_audio, write_video
from bindsearch.world.generate import WorldConfig, render_scene
from bindsearch.world.scene import Scene, sample_scene

__all__ = ["Reel", "draw_scenes", "make_reel"]


@dataclass(frozen=True)
class Reel:
    """The files written and when each scene plays in them: `(scene, start, end)`, seconds."""

    video: Path
    audio: Path
    timeline: list[tuple[Scene, float, float]]

    def at(self, seconds: float) -> Scene:
        """The scene playing at `seconds`."""
        for scene, start, end in self.timeline:
            if start <= seconds < end:
                return scene
        return self.timeline[-1][0]


def draw_scenes(first: int, count: int, seed: int, config: WorldConfig | None = None) -> list[Scene]:
    """Scenes `first` .. `first + count - 1` of seed `seed`, as a world that large would hold them (split "test"),
    without writing their files: a world of `first` scenes and a reel of these share none."""
    config = config or WorldConfig()
    return [sample_scene(i, seed, "test", config.captions, config.paraphrases, config.modality_captions)
            for i in range(first, first + count)]


def make_reel(directory: str | Path, scenes: Sequence[Scene], seed: int, name: str = "reel",
              config: WorldConfig | None = None) -> Reel:
    """Write `DIR/NAME.mp4` and `DIR/NAME.wav`: the scenes' clips end to end, rendered as `make_world(seed)`
    renders them (so a reel of a world's scenes holds the very clips of its files)."""
    if not scenes:
        raise ValueError("a reel needs at least one scene")
    directory, config = Path(directory), config or WorldConfig()
    rendered = [render_scene(scene, seed, config) for scene in scenes]
    video = write_video(directory / f"{name}.mp4", np.concatenate([r["video"] for r in rendered]),
                        fps=round(config.fps))
    audio = write_audio(directory / f"{name}.wav", np.concatenate([r["audio"] for r in rendered]),
                        config.sample_rate)
    timeline = [(scene, i * config.seconds, (i + 1) * config.seconds) for i, scene in enumerate(scenes)]
    return Reel(video, audio, timeline)

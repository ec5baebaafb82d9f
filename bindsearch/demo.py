"""The main job end to end on media we generate: `python -m bindsearch.demo --out demo-data` (`make demo`).

Generates a BindWorld folder (synthetic scenes written as png, 16-bit depth png, infrared png, mp4 and
wav), a caption of each scene as a text file, and a reel (twelve more scenes end to end as one long video and
one long sound); indexes them into a collection, the reel as 2 s windows; and runs a text->video, an audio->video, an
emergent depth->infrared, a video->text and a text->moment search, marking each hit that really matches the query
on what both sides can sense.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from bindsearch.collection import Collection
from bindsearch.media import read_text
from bindsearch.models.specs import default_model
from bindsearch.world import (
    VERSION,
    Reel,
    draw_scenes,
    make_reel,
    make_world,
    read_manifest,
    read_scenes,
    same_on,
    shared_attributes,
)
from indexes.catalog import EncoderMismatchError

__all__ = ["main", "run_demo"]


REEL_SCENES = 12


def _show(title: str, hits, scenes: dict, reel: Reel, query_scene, query_modality: str, target: str) -> int:
    shared = shared_attributes(query_modality, target)
    print(f"\n{title}\n  (a hit matches when it agrees with the query on {', '.join(shared)})")
    matches = 0
    for rank, hit in enumerate(hits, 1):
        # A window of the reel shows the scene playing then; any other file is one scene.
        scene = reel.at(hit.start) if hit.start is not None else scenes[Path(hit.path).stem]
        ok = same_on(scene, query_scene, shared)
        matches += ok
        words = f'  "{read_text(hit.path)}"' if hit.modality == "text" else ""
        moment = f" @ {hit.moment()}" if hit.start is not None else ""
        print(f"  {rank}. {hit.score:+.3f}  {'match' if ok else '     '}  {hit.path}{moment}{words}")
    return matches


def run_demo(out: Path, model: str, n: int = 60, seed: int = 0) -> None:
    """Generate, index and search; prints what it does and what to type next."""
    world = out / "world"
    start = time.perf_counter()
    made = read_manifest(world)
    if (made.get("seed"), made.get("version")) != (seed, VERSION) or len(read_scenes(world)) != n:
        info = make_world(world, n=n, seed=seed, overwrite=True, workers=2)
        print(f"generated {info.n} BindWorld scenes x 5 modalities in {world} ({time.perf_counter() - start:.1f}s)")
    scenes = {s.id: s for s in read_scenes(world)}
    captions = out / "captions"  # text items: one caption of each scene, in the training captions' wording
    captions.mkdir(exist_ok=True)
    for scene in scenes.values():
        note = captions / f"{scene.id}.txt"
        if not note.exists() or note.read_text() != scene.captions[0] + "\n":
            note.write_text(scene.captions[0] + "\n")
    try:
        collection = Collection.open(out / "collection", model=model)
    except EncoderMismatchError:
        # The demo owns this collection: one indexed by an earlier model (or older weights) is rebuilt.
        print(f"{out / 'collection'} was indexed by another model or checkpoint: rebuilding it with {model}")
        shutil.rmtree(out / "collection")
        collection = Collection.open(out / "collection", model=model)
    report = collection.add([world, captions])
    print(f"indexed {world} and {captions} with {model}: {report.summary()}")
    # BindWorld scenes last 2 s, so the reel is cut into 2 s windows (real recordings: the default 10 s).
    reel = make_reel(out / "reels", draw_scenes(len(scenes), REEL_SCENES, seed), seed)
    report = collection.add([out / "reels"], window=2.0)
    print(f"indexed {out / 'reels'} ({REEL_SCENES} scenes end to end) as 2 s windows: {report.summary()}")

    query = next(iter(scenes.values()))
    caption = query.modality_captions.get("video", query.captions)[0]
    _show(f'text -> video: "{caption}"', collection.search(text=caption, modality="video", k=5), scenes, reel,
          query, "text", "video")
    audio = query.path(world, "audio")
    _show(f"audio -> video: {audio}", collection.search(files=[audio], modality="video", k=5), scenes, reel, query,
          "audio", "video")
    depth = query.path(world, "depth")
    _show(f"depth -> infrared (emergent: never trained together): {depth}",
          collection.search(files=[depth], modality="infrared", k=5), scenes, reel, query, "depth", "infrared")
    video = query.path(world, "video")
    _show(f"video -> text (captions indexed as .txt files): {video}",
          collection.search(files=[video], modality="text", k=5), scenes, reel, query, "video", "text")
    playing, start, end = reel.timeline[REEL_SCENES // 2]
    moment = playing.modality_captions.get("video", playing.captions)[0]
    hits = collection.search(text=moment, modality="video", k=3, every_window=True)
    _show(f'text -> moment: "{moment}" (a scene of the reel, at {start:.0f}-{end:.0f} s of {reel.video.name})', hits,
          scenes, reel, playing, "text", "video")
    if model.startswith("random:"):
        print("\nnote: random:tiny has random weights, so these hits are arbitrary; the pipeline is real. "
              "Use a trained model (--model languagebind, or a local checkpoint) for meaningful results.")
    c = out / "collection"
    print(f"\nnext:\n  bindsearch search \"{caption}\" -c {c} --modality video"
          f"\n  bindsearch search -c {c} --file {depth} --file-modality depth --modality infrared"
          f"\n  bindsearch search -c {c} --file {video} --modality text"
          f"\n  bindsearch search \"{moment}\" -c {c} --modality video --every-window"
          f"\n  bindsearch classify {audio} --labels \"wood,metal,glass,rubber\" --model {model}"
          f"\n  bindsearch classify {reel.audio} --labels \"wood,metal,glass,rubber\" --window 2 --top 1"
          f" --model {model}"
          f"\n  bindsearch search \"{caption}\" -c {c} --under {world / 'video'}"
          f"\n  bindsearch info -c {c}"
          f"\n  bindsearch serve -c {c}     # then open http://127.0.0.1:8765/ in a browser")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo-data"))
    parser.add_argument("--model", default=None, help="default: languagebind if cached, else bindsearch-mini")
    parser.add_argument("--scenes", type=int, default=60)
    # bindsearch-mini was trained on seed 0's scenes: the demo shows it scenes it has never seen.
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    run_demo(args.out.absolute(), args.model or default_model(), args.scenes, args.seed)


if __name__ == "__main__":
    main()

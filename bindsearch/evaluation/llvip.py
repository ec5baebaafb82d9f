"""LLVIP zero-shot from the official release: the person and background crops, cut once and kept.

The reference scored infrared crops in two class folders, `background` and `person`, and never released how it cut
them. Ours, from `Annotations/*.xml` (VOC boxes) and the test frames:

- person: every `person` box of a test frame, as annotated (boxes under `MIN_SIDE` pixels on a side are left out:
  a few pixels stretched to the tower's input show nothing);
- background: for each person box, one crop of the same size from the same frame that overlaps no box, at a
  position drawn by a generator seeded with the frame's name (tried `TRIES` times; a frame too crowded gives none).

So the two classes have the same sizes and come from the same frames, and a run gives the same crops on every
machine. They are written once as PNG files under the bench cache (`cache_dir()/llvip-crops/`), keyed by the
release's folder, its frames' names, sizes and mtimes and its annotations' contents, and read from there as class
folders. A run that stores nothing (`--no-cache`) passes a folder of its own, removed after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import cache_dir

__all__ = ["LLVIP_LAYOUT", "LlvipCrops", "is_llvip", "llvip_crops"]

LLVIP_LAYOUT = ("ROOT/Annotations/<stem>.xml (VOC person boxes) and ROOT/infrared/test/<stem>.jpg (LLVIP's release; "
                "visible/test/ for --modality image)")
VERSION = 1  # of the cutting rule: a new rule cuts new crops
MIN_SIDE = 8
TRIES = 50
FOLDERS = {"infrared": "infrared", "image": "visible"}


@dataclass(frozen=True)
class LlvipCrops:
    """Crops cut from one LLVIP release: `folder` holds `background/` and `person/`."""

    folder: Path
    frames: int  # test frames with an annotation
    persons: int
    backgrounds: int
    small: int  # person boxes left out for a side under MIN_SIDE
    unannotated: int  # test frames without an XML


def is_llvip(root: Path) -> bool:
    """Whether `root` is LLVIP's release: `Annotations/` beside `infrared/test/`."""
    return (root / "Annotations").is_dir() and (root / "infrared" / "test").is_dir()


def llvip_crops(root: Path, modality: str = "infrared", cache: Path | None = None) -> LlvipCrops:
    """The crops of LLVIP's test frames of `modality` (infrared, or image: the visible frames), cut on first use."""
    from .datasets import DatasetLayoutError, media_extensions

    if modality not in FOLDERS:
        raise DatasetLayoutError(f"{root} is LLVIP, infrared and visible frames; --modality {modality} has none")
    frames_dir = root / FOLDERS[modality] / "test"
    extensions = media_extensions("image")
    frames = sorted(p for p in frames_dir.iterdir() if p.suffix.lower() in extensions and p.is_file()) \
        if frames_dir.is_dir() else []
    if not frames:
        raise DatasetLayoutError(f"no frame in {frames_dir}; expected {LLVIP_LAYOUT}")
    # Keyed by each frame's name, size and mtime and by its annotation's bytes (small: hashed whole), so an edited
    # box cuts new crops even where the XML keeps its length.
    digest = hashlib.sha256(f"v{VERSION} {modality} {root.resolve()}".encode())
    for frame in frames:
        xml = root / "Annotations" / f"{frame.stem}.xml"
        stat = frame.stat()
        boxes = hashlib.sha256(xml.read_bytes()).hexdigest() if xml.is_file() else "-"
        digest.update(f"{frame.name}:{stat.st_size}:{stat.st_mtime_ns}:{boxes}\n".encode())
    folder = (cache or cache_dir()) / "llvip-crops" / digest.hexdigest()[:16]
    manifest = folder / "crops.json"
    if not manifest.is_file():
        _cut(root, frames, folder)
    counts = json.loads(manifest.read_text())
    return LlvipCrops(folder, **counts)


def _cut(root: Path, frames: list[Path], folder: Path) -> None:
    """Write the crops into `folder`, whole or not at all (built beside it, then renamed into place)."""
    from PIL import Image

    from .datasets import DatasetLayoutError

    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        for name in ("background", "person"):
            (building / name).mkdir()
        counts = {"frames": 0, "persons": 0, "backgrounds": 0, "small": 0, "unannotated": 0}
        for frame in frames:
            xml = root / "Annotations" / f"{frame.stem}.xml"
            if not xml.is_file():
                counts["unannotated"] += 1
                continue
            boxes = _person_boxes(xml)
            counts["frames"] += 1
            try:
                with Image.open(frame) as opened:
                    image = opened.convert("RGB")
            except (OSError, ValueError) as exc:
                raise DatasetLayoutError(f"{frame}: not a readable image ({exc})") from None
            width, height = image.size
            boxes = [(max(0, x0), max(0, y0), min(width, x1), min(height, y1)) for x0, y0, x1, y1 in boxes]
            rng = np.random.default_rng(zlib.crc32(frame.stem.encode()))
            for k, (x0, y0, x1, y1) in enumerate(boxes):
                w, h = x1 - x0, y1 - y0
                if min(w, h) < MIN_SIDE:
                    counts["small"] += 1
                    continue
                image.crop((x0, y0, x1, y1)).save(building / "person" / f"{frame.stem}_{k}.png")
                counts["persons"] += 1
                spot = _free_spot(rng, w, h, width, height, boxes)
                if spot is not None:
                    bx, by = spot
                    image.crop((bx, by, bx + w, by + h)).save(building / "background" / f"{frame.stem}_{k}.png")
                    counts["backgrounds"] += 1
        if not counts["persons"] or not counts["backgrounds"]:
            raise DatasetLayoutError(f"{root}: no person box of {MIN_SIDE}+ pixels (or no free background) in "
                                     f"{counts['frames']} annotated test frames; expected {LLVIP_LAYOUT}")
        (building / "crops.json").write_text(json.dumps(counts))
        os.replace(building, folder)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _person_boxes(xml: Path) -> list[tuple[int, int, int, int]]:
    """(xmin, ymin, xmax, ymax) of each `person` object in a VOC annotation."""
    from .datasets import DatasetLayoutError

    try:
        objects = ET.parse(xml).getroot().iter("object")
        boxes = []
        for obj in objects:
            if (obj.findtext("name") or "").strip().lower() != "person":
                continue
            box = obj.find("bndbox")
            boxes.append(tuple(int(float(box.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax")))
        return boxes
    except (ET.ParseError, AttributeError, TypeError, ValueError) as exc:
        raise DatasetLayoutError(f"{xml} is not a VOC annotation with person boxes ({exc})") from None


def _free_spot(rng: np.random.Generator, w: int, h: int, width: int, height: int,
               boxes: list[tuple[int, int, int, int]]) -> tuple[int, int] | None:
    """A corner (x, y) of a w x h window inside the frame that overlaps none of `boxes`, or None."""
    if w > width or h > height:
        return None
    for _ in range(TRIES):
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        if all(x + w <= x0 or x1 <= x or y + h <= y0 or y1 <= y for x0, y0, x1, y1 in boxes):
            return x, y
    return None

"""Tiny replicas of the benchmark datasets in their official layouts (real CSV headers and file naming),
with generated media: 4-frame mp4s, short wavs, 16-bit depth PNGs, RGB and infrared images.

Every file differs from every other (a per-item seed drives its content), so a test can tell them apart.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bindsearch.media.writers import write_audio, write_depth_png, write_image, write_video

NYUD_CLASSES = ("bathroom", "bedroom", "living_room")
# Deliberately not in alphabetical order, so that a sort anywhere in the pipeline shows up in the metrics.
SENTENCES = ("a person is connecting something to system", "a man is singing on stage", "the cat plays with a ball",
             "kids are swimming in a pool", "a woman cooks pasta", "cars race on a track", "birds fly over water",
             "an old man reads a newspaper")
ESC50_CLASSES = ("dog", "chirping_birds", "vacuum_cleaner")


def video_frames(seed: int, size: int = 32, frames: int = 4) -> np.ndarray:
    """`(frames, size, size, 3)` uint8: a moving gradient whose colours depend on `seed`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * rng.integers(1, 8), yy * rng.integers(1, 8), (xx + yy) * rng.integers(1, 4)], axis=-1)
    return np.stack([np.roll(base, 3 * i, axis=1) for i in range(frames)]).astype(np.uint8)


def rgb_pixels(seed: int, size: int = 32) -> np.ndarray:
    """`(size, size, 3)` uint8 pseudo-random image."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def depth_mm(seed: int, size: int = 32) -> np.ndarray:
    """`(size, size)` depth in millimetres (0.5-8 m), a tilted plane plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    return 500 + rng.integers(10, 200) * xx + rng.integers(10, 200) * yy + rng.integers(0, 50, (size, size))


def tone(seed: int, seconds: float = 1.0, rate: int = 44100) -> np.ndarray:
    """`(n,)` float samples: a sine whose pitch depends on `seed`, plus a little noise."""
    t = np.arange(int(seconds * rate)) / rate
    noise = 0.02 * np.random.default_rng(seed).standard_normal(t.shape)
    return 0.3 * np.sin(2 * np.pi * (220 + 97 * seed) * t) + noise


def make_msrvtt(root: Path, n_videos: int = 6, video_dir: str = "videos/all") -> list[tuple[str, str]]:
    """MSR-VTT 1k-A: `MSRVTT_JSFUSION_test.csv` (key,vid_key,video_id,sentence) and `video_dir/videoN.mp4`.

    Returns the (video_id, sentence) rows, in CSV order.
    """
    ids = [9770 - 13 * i for i in range(n_videos)]  # not sorted, like the real file (video9770 first)
    rows = [(f"video{vid}", f"{SENTENCES[i % len(SENTENCES)]} ({i})") for i, vid in enumerate(ids)]
    root.mkdir(parents=True, exist_ok=True)
    with (root / "MSRVTT_JSFUSION_test.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", "vid_key", "video_id", "sentence"])
        for i, (video_id, sentence) in enumerate(rows):
            writer.writerow([f"ret{i}", f"msr{video_id[5:]}", video_id, sentence])
    for i, (video_id, _) in enumerate(rows):
        write_video(root / video_dir / f"{video_id}.mp4", video_frames(i), fps=4)
    return rows


def make_clotho(root: Path, n_clips: int = 4) -> list[tuple[str, list[str]]]:
    """Clotho v2 evaluation: `clotho_captions_evaluation.csv` and `evaluation/<name with spaces>.wav` (44.1 kHz).

    Returns (file_name, five captions) per clip, in CSV order.
    """
    clips = []
    for i in range(n_clips):
        name = f"Santa Motor {i}.wav" if i % 2 == 0 else f"rain_on_roof, take {i}.wav"
        captions = [f"{SENTENCES[(3 * i + j) % len(SENTENCES)]}, then silence ({i}.{j})" for j in range(5)]
        clips.append((name, captions))
    root.mkdir(parents=True, exist_ok=True)
    with (root / "clotho_captions_evaluation.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", *(f"caption_{j}" for j in range(1, 6))])
        for name, captions in clips:
            writer.writerow([name, *captions])
    for i, (name, _) in enumerate(clips):
        write_audio(root / "evaluation" / name, tone(i), 44100)
    return clips


def make_class_folders(root: Path, modality: str, classes: Sequence[str] = NYUD_CLASSES, per_class: int = 2
                       ) -> list[tuple[Path, str]]:
    """`ROOT/<class>/<files>` for video (K400-style names), audio, depth, infrared or image. Returns (file, class)."""
    files = []
    for c, name in enumerate(classes):
        for k in range(per_class):
            seed = 10 * c + k
            folder = root / name
            if modality == "video":
                name_ = f"yt{seed:09d}_{10 * k:06d}_{10 * k + 10:06d}.mp4"  # K400: <youtube id>_<start>_<end>
                path = write_video(folder / name_, video_frames(seed), fps=4)
            elif modality == "audio":
                path = write_audio(folder / f"{seed:04d}.wav", tone(seed, 0.5, 16000), 16000)
            elif modality == "depth":
                path = write_depth_png(folder / f"{seed:04d}.png", depth_mm(seed))
            elif modality == "infrared":
                path = write_image(folder / f"{seed:06d}.jpg", rgb_pixels(seed)[..., 0])
            else:
                path = write_image(folder / f"{seed:04d}.png", rgb_pixels(seed))
            files.append((path, name))
    return files


def make_k400(root: Path, classes: Sequence[str] = ("abseiling", "air drumming", "zumba"), per_class: int = 2,
              missing: int = 1) -> list[tuple[str, str]]:
    """Kinetics-400 validation, flat: `val.csv` (label,youtube_id,time_start,time_end,split,is_cc) and
    `val/<youtube_id>_<start:06d>_<end:06d>.mp4`; the last `missing` rows have no clip, as in the real set.

    Returns (file name, label) of the clips written.
    """
    rows = []
    for c, label in enumerate(classes):
        for k in range(per_class):
            rows.append([label, f"-{c:02d}x{k:03d}abcde"[:11], 10 * k, 10 * k + 10, "val", 0])
    root.mkdir(parents=True, exist_ok=True)
    with (root / "val.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "youtube_id", "time_start", "time_end", "split", "is_cc"])
        writer.writerows(rows)
    written = []
    for i, (label, youtube_id, start, end, _, _) in enumerate(rows[:len(rows) - missing]):
        name = f"{youtube_id}_{start:06d}_{end:06d}.mp4"
        write_video(root / "val" / name, video_frames(i), fps=4)
        written.append((name, label))
    return written


def make_esc50(root: Path, classes: Sequence[str] = ESC50_CLASSES, per_class: int = 2) -> list[tuple[str, str]]:
    """ESC-50: `meta/esc50.csv` (filename,fold,target,category,esc10,src_file,take) and
    `audio/{FOLD}-{CLIP_ID}-{TAKE}-{TARGET}.wav`.

    Returns (filename, category) per row; clip k of each class lies in fold k + 1.
    """
    rows = []
    for target, category in enumerate(classes):
        for k in range(per_class):
            src = 100038 + 7 * target + k
            rows.append([f"{k + 1}-{src}-A-{target}.wav", k + 1, target, category, "False", src, "A"])
    rows.sort()
    (root / "meta").mkdir(parents=True, exist_ok=True)
    with (root / "meta" / "esc50.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        writer.writerows(rows)
    for i, row in enumerate(rows):
        write_audio(root / "audio" / row[0], tone(i, 0.5), 44100)
    return [(row[0], row[3]) for row in rows]


def make_paired(root: Path, n_pairs: int = 4, a_dir: str = "rgb", b_dir: str = "depth", labels: str | None = None,
                classes: Sequence[str] = NYUD_CLASSES) -> list[tuple[Path, Path, str]]:
    """Pairs sharing a stem: `ROOT/a_dir/NNNN.png` (RGB) and `ROOT/b_dir/NNNN.png` (16-bit depth, or an
    infrared JPEG when b_dir mentions infrared). `labels`: None, "labels.csv" or "scene_class" (TUI-NICR).

    Returns (a file, b file, class) per pair; pair i has class classes[i % len(classes)].
    """
    pairs = []
    infrared = "infrared" in b_dir
    for i in range(n_pairs):
        stem = f"{190001 + i}" if infrared else f"{i:04d}"
        a = write_image(root / a_dir / (stem + (".jpg" if infrared else ".png")), rgb_pixels(100 + i))
        if infrared:
            b = write_image(root / b_dir / f"{stem}.jpg", rgb_pixels(200 + i)[..., 1])
        else:
            b = write_depth_png(root / b_dir / f"{stem}.png", depth_mm(200 + i))
        pairs.append((a, b, classes[i % len(classes)]))
    if labels == "labels.csv":
        with (root / "labels.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["stem", "label"])
            writer.writerows([a.stem, name] for a, _, name in pairs)
    elif labels == "scene_class":
        (root / "scene_class").mkdir(parents=True, exist_ok=True)
        for a, _, name in pairs:
            (root / "scene_class" / f"{a.stem}.txt").write_text(name + "\n")
    return pairs


def make_llvip(root: Path, n_frames: int = 3, size: tuple[int, int] = (160, 128)) -> list[list[tuple[int, ...]]]:
    """LLVIP's release: `Annotations/<stem>.xml` (VOC, `person` boxes, plus one `car` to be ignored) and
    `infrared/test/<stem>.jpg` and `visible/test/<stem>.jpg`, stems from 190001 as in the test split; a person is a
    warm (bright) rectangle in a cool frame. The last frame has no annotation.

    Returns the person boxes (xmin, ymin, xmax, ymax) of each annotated frame.
    """
    width, height = size
    boxes_of = []
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for i in range(n_frames):
        stem = f"{190001 + i}"
        rng = np.random.default_rng(300 + i)
        frame = rng.integers(20, 60, (height, width, 3), dtype=np.uint8)
        boxes = [(10 + 20 * i, 12, 34 + 20 * i, 70), (100, 40 + 5 * i, 120, 90 + 5 * i), (50, 100, 54, 104)]
        for x0, y0, x1, y1 in boxes:
            frame[y0:y1, x0:x1] = 220
        write_image(root / "infrared" / "test" / f"{stem}.jpg", frame)
        write_image(root / "visible" / "test" / f"{stem}.jpg", frame[..., ::-1].copy())
        if i == n_frames - 1:
            break
        objects = "".join(f"<object><name>person</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
                          f"<ymax>{y1}</ymax></bndbox></object>" for x0, y0, x1, y1 in boxes)
        objects += "<object><name>car</name><bndbox><xmin>0</xmin><ymin>0</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>"
        objects += "</object>"
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename><size><width>{width}</width><height>{height}</height>"
            f"</size>{objects}</annotation>")
        boxes_of.append(boxes)
    return boxes_of

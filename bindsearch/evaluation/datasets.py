"""Benchmark datasets read in their official layouts; a layout problem is one `DatasetLayoutError` line.

| reader | layout (ROOT = --root) |
|---|---|
| `read_msrvtt` | `MSRVTT_JSFUSION_test.csv` (key,vid_key,video_id,sentence) + `{video_id}.mp4` (or .webm) |
| `read_clotho` | `clotho_captions_evaluation.csv` (file_name,caption_1..caption_5) + `evaluation/{file_name}` |
| `read_classification` | `ROOT/<class>/<files>`; ESC-50's `meta/esc50.csv` + `audio/`; K400's `val.csv` + `val/`; \
`<modality>/` + `scene_class/` |
| `read_paired` | `ROOT/<folder A>/` and `ROOT/<folder B>/` with files sharing stems; labels optional |

Each reader looks for its files in the few places the public distributions put them (listed per reader),
checks that every media file the index names exists, and with `limit` keeps the first N items only.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bindsearch.media import EXTENSIONS
from bindsearch.models.config import canonical_modality

from .llvip import LLVIP_LAYOUT, MIN_SIDE, is_llvip, llvip_crops

__all__ = [
    "CaptionedSet",
    "DatasetLayoutError",
    "LabelledSet",
    "PairedSet",
    "check_classification_root",
    "layout_modality",
    "media_extensions",
    "nyud_protocol",
    "read_classification",
    "read_clotho",
    "read_msrvtt",
    "read_paired",
]


class DatasetLayoutError(ValueError):
    """Files on disk do not match a benchmark's layout; the message names what is missing and what was expected."""


@dataclass
class CaptionedSet:
    """Media items with one or more captions each (MSR-VTT, Clotho)."""

    name: str
    root: Path
    modality: str
    items: list[Path]  # (n_items,)
    captions: list[str]  # (n_captions,)
    item_of_caption: np.ndarray  # (n_captions,) int64 index into items
    layout: str
    notes: list[str] = field(default_factory=list)  # what a result should say about how the set was read


@dataclass
class LabelledSet:
    """Media files with one class each (zero-shot classification)."""

    name: str | None  # "esc50" when read from ESC-50's own layout, else None
    root: Path
    modality: str
    paths: list[Path]  # (n,)
    labels: np.ndarray  # (n,) int64 index into classnames
    classnames: list[str]
    layout: str
    notes: list[str] = field(default_factory=list)  # what a result should say about how the set was read


@dataclass
class PairedSet:
    """Files of two modalities paired by stem, with optional class labels (NYU-D, LLVIP)."""

    root: Path
    modalities: tuple[str, str]
    folders: tuple[Path, Path]
    paths: tuple[list[Path], list[Path]]  # (n,) each, pair i = (paths[0][i], paths[1][i])
    stems: list[str]  # (n,)
    labels: np.ndarray | None  # (n,) int64 index into classnames, or None without class info
    classnames: list[str] | None
    layout: str
    unpaired: dict[str, int] = field(default_factory=dict)  # folder -> files without a partner


MSRVTT_CSV = "MSRVTT_JSFUSION_test.csv"
MSRVTT_LAYOUT = (f"ROOT/{MSRVTT_CSV} (header key,vid_key,video_id,sentence) and videos {{video_id}}.mp4 "
                 "in ROOT/, ROOT/videos/all/ or ROOT/MSRVTT/videos/all/")
_MSRVTT_CSV_DIRS = ("", "msrvtt_data", "MSRVTT", "MSRVTT/msrvtt_data", "annotations", "annotation")
_MSRVTT_VIDEO_DIRS = ("", "videos/all", "videos", "MSRVTT/videos/all", "MSRVTT/videos", "MSRVTT_Videos",
                      "TestVideo")

CLOTHO_CSV = "clotho_captions_evaluation.csv"
CLOTHO_LAYOUT = (f"ROOT/{CLOTHO_CSV} (header file_name,caption_1,...,caption_5) and the clips "
                 "ROOT/evaluation/{file_name}")
_CLOTHO_CSV_DIRS = ("", "csv_files", "clotho_csv_files", "captions")
_CLOTHO_AUDIO_DIRS = ("evaluation", "clotho_audio_evaluation/evaluation", "clotho_audio_evaluation",
                      "audio/evaluation", "clotho_audio_files/evaluation", "")
_CLOTHO_CAPTIONS = tuple(f"caption_{i}" for i in range(1, 6))

K400_CSV = "val.csv"
K400_LAYOUT = (f"ROOT/{K400_CSV} (header label,youtube_id,time_start,time_end,split,is_cc) and the clips "
               "ROOT/val/<youtube_id>_<start:06d>_<end:06d>.mp4")
_K400_CSV_DIRS = ("", "annotations", "kinetics400/annotations")
_K400_VIDEO_DIRS = ("val", "videos/val", "videos_val", "kinetics400/val", "kinetics400/videos_val", "")
ESC50_LAYOUT = "ROOT/meta/esc50.csv (filename,fold,target,category,...) and ROOT/audio/{filename}"
# What a ROOT without class folders is told it could be instead: ESC-50, or K400 when the run says it is K400.
_ESC50_ELSEWHERE = f"ESC-50's {ESC50_LAYOUT}"
_K400_ELSEWHERE = (f"Kinetics-400's {K400_LAYOUT} ({K400_CSV} looked for in "
                   f"{', '.join(f'ROOT/{d}/' if d else 'ROOT/' for d in _K400_CSV_DIRS)})")
CLASS_FOLDERS_LAYOUT = "ROOT/<class name>/<files> (one folder per class, e.g. ROOT/living_room/0001.png)"
SCENE_CLASS_LAYOUT = "ROOT/<modality>/<stem>.png with ROOT/scene_class/<stem>.txt holding each file's class"
PAIRED_LAYOUT = ("ROOT/<folder A>/<stem>.* and ROOT/<folder B>/<stem>.* (files of one pair share a stem); "
                 "optional classes in ROOT/labels.csv (header stem,label) or ROOT/scene_class/<stem>.txt")
# Folder names tried, in order, for a modality's side of a pair when no folder is given.
PAIRED_FOLDERS = {"image": ("image", "rgb", "visible", "color"), "depth": ("depth",),
                  "infrared": ("infrared", "thermal", "ir", "lwir"), "video": ("video", "videos"),
                  "audio": ("audio",)}


# NYU-D scene classification as ImageBind and LanguageBind score it: these nine of NYU's 27 raw scene types
# (`sceneTypes`, what TUI-NICR's prepare_dataset.py writes to scene_class/) keep their name, the rest are "others".
NYUD_CLASSES = ("bathroom", "bedroom", "bookstore", "classroom", "dining_room", "home_office", "kitchen",
                "living_room", "office")
NYU_SCENE_TYPES = frozenset((*NYUD_CLASSES, "basement", "cafe", "computer_lab", "conference_room", "dinette",
                             "excercise_room", "foyer", "furniture_store", "home_storage", "indoor_balcony",
                             "laundry_room", "office_kitchen", "playroom", "printer_room", "reception_room",
                             "student_lounge", "study", "study_room"))
"""NYU Depth v2's 27 `sceneTypes`, spelt as the dataset spells them ("excercise_room" included)."""


def nyud_protocol(names: Sequence[str]) -> tuple[np.ndarray, list[str], int]:
    """Raw NYU scene types -> (labels into the 10 protocol classes, those 10 classes, how many became 'others').

    All ten are candidates whichever are present, as in the reference: a subset must not get an easier task."""
    merged = [n if n in NYUD_CLASSES else "others" for n in (name.strip().lower().replace(" ", "_") for name in names)]
    classnames = [*NYUD_CLASSES, "others"]
    labels = np.asarray([classnames.index(n) for n in merged], dtype=np.int64)
    return labels, classnames, merged.count("others")


def media_extensions(modality: str) -> tuple[str, ...]:
    """File suffixes (lower case, with dot) read for `modality`: images for image/depth/infrared, plus .npy depth."""
    modality = canonical_modality(modality)
    kind = "image" if modality in ("image", "depth", "infrared") else modality
    extensions = [ext for ext, owner in EXTENSIONS.items() if owner == kind]
    if modality == "depth":
        extensions.append(".npy")
    return tuple(extensions)


def _is_media(path: Path, extensions: tuple[str, ...]) -> bool:
    """A file of the modality: by its suffix, or, for a modality of one's own that claims none, any file but a
    hidden one."""
    return path.suffix.lower() in extensions if extensions else not path.name.startswith(".")


def _listed(extensions: tuple[str, ...]) -> str:
    return ", ".join(extensions) or "any file"


def read_msrvtt(root: str | Path, *, limit: int | None = None) -> CaptionedSet:
    """MSR-VTT 1k-A test split: one video per CSV row (first `limit` videos), captions from the `sentence` column."""
    _check_limit(limit)
    root = _check_root(root, MSRVTT_LAYOUT)
    index = _find_index(root, MSRVTT_CSV, _MSRVTT_CSV_DIRS, MSRVTT_LAYOUT)
    rows = _read_csv(index, ("video_id", "sentence"), "key,vid_key,video_id,sentence", MSRVTT_LAYOUT)
    video_ids: list[str] = []
    position: dict[str, int] = {}
    captions: list[str] = []
    item_of_caption: list[int] = []
    for number, row in enumerate(rows, start=1):
        video_id = row["video_id"].strip()
        if not row["sentence"].strip():  # an empty query would be scored, matching nothing in particular
            raise DatasetLayoutError(f"{index}: data row {number} ({video_id or 'no video_id'}) has an empty "
                                     "sentence; give its caption or delete the row")
        if video_id not in position:
            if limit is not None and len(video_ids) == limit:
                continue
            position[video_id] = len(video_ids)
            video_ids.append(video_id)
        captions.append(row["sentence"].strip())
        item_of_caption.append(position[video_id])
    names = [[f"{video_id}.mp4", f"{video_id}.webm"] for video_id in video_ids]
    items = _locate(root, names, _MSRVTT_VIDEO_DIRS, f"videos listed in {index.name}", MSRVTT_LAYOUT)
    return CaptionedSet("msrvtt", root, "video", items, captions, np.asarray(item_of_caption, dtype=np.int64),
                        _read_as(root, index, items, "videos"))


def read_clotho(root: str | Path, *, limit: int | None = None) -> CaptionedSet:
    """Clotho v2 evaluation split: each clip (first `limit`) with its five captions, stored clip by clip."""
    _check_limit(limit)
    root = _check_root(root, CLOTHO_LAYOUT)
    index = _find_index(root, CLOTHO_CSV, _CLOTHO_CSV_DIRS, CLOTHO_LAYOUT)
    rows = _read_csv(index, ("file_name", *_CLOTHO_CAPTIONS), "file_name,caption_1,...,caption_5", CLOTHO_LAYOUT)
    if limit is not None:
        rows = rows[:limit]
    captions: list[str] = []
    item_of_caption: list[int] = []
    position: dict[str, int] = {}  # a clip listed twice is one item with the captions of both rows
    short: list[str] = []
    for row in rows:
        name = row["file_name"].strip()
        texts = [row[column].strip() for column in _CLOTHO_CAPTIONS if (row[column] or "").strip()]
        if not texts:
            raise DatasetLayoutError(f"{index}: {name} has no caption; expected {CLOTHO_LAYOUT}")
        if len(texts) < len(_CLOTHO_CAPTIONS):
            short.append(name)
        item = position.setdefault(name, len(position))
        captions.extend(texts)
        item_of_caption.extend([item] * len(texts))
    notes = []
    if len(position) < len(rows):
        notes.append(f"{len(rows) - len(position)} clip(s) listed twice in {index.name}: each scored once, with "
                     "the captions of every row")
    if short:
        notes.append(f"{len(short)} clip(s) have fewer than {len(_CLOTHO_CAPTIONS)} captions (e.g. {short[0]}): "
                     f"{len(captions)} caption queries, not {len(_CLOTHO_CAPTIONS)} per clip")
    names = [[name] for name in position]
    items = _locate(root, names, _CLOTHO_AUDIO_DIRS, f"clips listed in {index.name}", CLOTHO_LAYOUT)
    return CaptionedSet("clotho", root, "audio", items, captions, np.asarray(item_of_caption, dtype=np.int64),
                        _read_as(root, index, items, "clips"), notes)


def read_classification(root: str | Path, modality: str, *, fold: int | None = None,
                        limit: int | None = None, cache: Path | None = None, scratch: bool = False,
                        dataset: str | None = None) -> LabelledSet:
    """A classification set: ESC-50's own layout if `meta/esc50.csv` exists, K400's if `val.csv` does, LLVIP's
    release (its crops cut once into `cache`, default the bench cache) if `Annotations/` and `infrared/test/` do,
    else `<modality>/` + `scene_class/`, else one folder per class. `fold` keeps one ESC-50 fold; `limit` keeps N
    files, taking the classes in turn. `scratch`: `cache` is a folder of this run's, removed after it (the crops are
    cut there afresh, and said not to be kept). `dataset` (a `dataset_named` name) is the layout a refusal names.
    """
    _check_limit(limit)
    modality = canonical_modality(modality)
    root = _check_root(root, CLASS_FOLDERS_LAYOUT)
    if (root / "meta" / "esc50.csv").is_file():
        data = _read_esc50(root, modality, fold)
    elif fold is not None:
        raise DatasetLayoutError(f"--fold applies to ESC-50 only, and {root}/meta/esc50.csv does not exist; "
                                 f"expected {ESC50_LAYOUT}")
    elif index := _find_optional(root, K400_CSV, _K400_CSV_DIRS):
        data = _read_kinetics_layout(root, index, modality)
    elif is_llvip(root):
        data = _read_llvip(root, modality, cache, scratch)
    elif (scenes := _scene_class_folder(root)) and (folder := _modality_folder(root, modality)) is not None:
        paths = _media_files(folder, modality, SCENE_CLASS_LAYOUT)
        names = _scene_classes(scenes, [p.stem for p in paths])
        classnames = sorted(set(names))
        labels = np.asarray([classnames.index(n) for n in names], dtype=np.int64)
        data = LabelledSet(None, root, modality, paths, labels, classnames, SCENE_CLASS_LAYOUT)
    else:
        _refuse_nested(root)
        data = _read_class_folders(root, modality, other=_K400_ELSEWHERE if dataset == "k400" else _ESC50_ELSEWHERE)
    if limit is not None:
        keep = _round_robin(data.labels, limit)
        data.paths = [data.paths[i] for i in keep]
        data.labels = data.labels[keep]
    return data


def layout_modality(root: Path) -> str | None:
    """The modality a classification layout holds whatever its folder is called: video below a Kinetics `val.csv`
    (400 or 600 classes alike), audio in ESC-50's, infrared in LLVIP's; None for class folders of any media."""
    if (root / "meta" / "esc50.csv").is_file():
        return "audio"
    if _find_optional(root, K400_CSV, _K400_CSV_DIRS):
        return "video"
    return "infrared" if is_llvip(root) else None


def check_classification_root(root: str | Path) -> Path:
    """`root` as an absolute Path, or DatasetLayoutError when it is no folder or one level above a dataset: what
    `read_classification` would refuse whatever the modality, so it can be said before a model loads to tell it."""
    root = _check_root(root, CLASS_FOLDERS_LAYOUT)
    if not ((root / "meta" / "esc50.csv").is_file() or _find_optional(root, K400_CSV, _K400_CSV_DIRS)
            or is_llvip(root)):
        _refuse_misplaced(root)
    return root


def read_paired(root: str | Path, a: str, b: str, *, a_dir: str | None = None, b_dir: str | None = None,
                sample: float | None = None, seed: int = 0, limit: int | None = None) -> PairedSet:
    """Pairs of `a` and `b` files sharing a stem, sorted by stem; `sample` keeps a seeded random fraction
    (LLVIP's protocol uses 10% of the test pairs), then `limit` the first N pairs.
    """
    a, b = canonical_modality(a), canonical_modality(b)
    if a == b:
        raise ValueError(f"--a and --b are both {a}; emergent retrieval needs two different modalities")
    _check_limit(limit)
    root = _check_root(root, PAIRED_LAYOUT)
    folder_a = _pair_folder(root, a, a_dir)
    folder_b = _pair_folder(root, b, b_dir)
    files_a = _stems(folder_a, a)
    files_b = _stems(folder_b, b)
    stems = sorted(set(files_a) & set(files_b))
    if not stems:
        raise DatasetLayoutError(f"no file in {folder_a} shares a stem with a file in {folder_b} "
                                 f"(e.g. {next(iter(files_a))} vs {next(iter(files_b))}); expected {PAIRED_LAYOUT}")
    unpaired = {str(folder_a): len(files_a) - len(stems), str(folder_b): len(files_b) - len(stems)}
    if sample is not None:
        if not 0 < sample <= 1:
            raise ValueError(f"--sample must be a fraction in (0, 1], got {sample}")
        count = max(1, round(sample * len(stems)))
        chosen = np.sort(np.random.default_rng(seed).choice(len(stems), size=count, replace=False))
        stems = [stems[i] for i in chosen]
    if limit is not None:
        stems = stems[:limit]
    labels, classnames = _pair_labels(root, stems)
    return PairedSet(root, (a, b), (folder_a, folder_b), ([files_a[s] for s in stems], [files_b[s] for s in stems]),
                     stems, labels, classnames, PAIRED_LAYOUT, unpaired)


# -- helpers --------------------------------------------------------------------------------------------------


def _check_root(root: str | Path, layout: str) -> Path:
    """`root` as an absolute Path, or DatasetLayoutError when it is not a folder."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset root {root} is not a folder; expected {layout}")
    return root


def _find_index(root: Path, name: str, subdirs: Sequence[str], layout: str) -> Path:
    """The first `root/<subdir>/<name>` that exists, or DatasetLayoutError listing where it was looked for."""
    found = _find_optional(root, name, subdirs)
    if found is not None:
        return found
    places = ", ".join(f"ROOT/{d}/" if d else "ROOT/" for d in subdirs)
    raise DatasetLayoutError(f"{name} not found under {root} (looked in {places}); expected {layout}")


def _find_optional(root: Path, name: str, subdirs: Sequence[str]) -> Path | None:
    """The first `root/<subdir>/<name>` that exists, else None."""
    return next((root / d / name for d in subdirs if (root / d / name).is_file()), None)


def _read_csv(path: Path, required: Sequence[str], header: str, layout: str) -> list[dict[str, str]]:
    """Rows of a CSV with a header holding every `required` column, or DatasetLayoutError naming the columns."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            reader.fieldnames = columns
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetLayoutError(f"{path} could not be read as CSV ({exc}); expected {layout}") from None
    missing = [c for c in required if c not in columns]
    if missing:
        raise DatasetLayoutError(f"{path} lacks column(s) {', '.join(missing)} (header: {','.join(columns) or 'none'})"
                                 f"; expected header {header}")
    for number, row in enumerate(rows):
        short = [c for c in required if row[c] is None]
        if short:  # csv.DictReader fills the columns a short row lacks with None
            raise DatasetLayoutError(f"{path}: data row {number + 1} has no {', '.join(short)} field; every row "
                                     f"needs the columns {header}")
    if not rows:
        raise DatasetLayoutError(f"{path} has a header but no rows; expected {layout}")
    return rows


def _read_as(root: Path, index: Path, items: Sequence[Path], what: str) -> str:
    """Where a set was found, in the words of its layout: 'ROOT/msrvtt_data/X.csv and videos in ROOT/videos/all/'."""
    def spelt(path: Path, slash: str = "") -> str:
        inside = path.relative_to(root).as_posix()
        return "ROOT/" if inside == "." else f"ROOT/{inside}{slash}"

    folders = sorted({spelt(p.parent, "/") for p in items})
    return f"{spelt(index)} and {what} in {', '.join(folders)}"


def _locate(root: Path, names: Sequence[Sequence[str]], subdirs: Sequence[str], what: str, layout: str) -> list[Path]:
    """For each item, the first of its candidate file names found in one of `root/<subdir>`; all must exist."""
    listings = []
    for subdir in subdirs:
        folder = root / subdir
        if folder.is_dir():
            with os.scandir(folder) as entries:
                listings.append((folder, {e.name for e in entries if e.is_file()}))
    found: list[Path] = []
    missing: list[str] = []
    for candidates in names:
        path = next((folder / n for n in candidates for folder, files in listings if n in files), None)
        if path is None:
            missing.append(candidates[0])
        else:
            found.append(path)
    if missing:
        places = ", ".join(f"ROOT/{d}/" if d else "ROOT/" for d in subdirs)
        raise DatasetLayoutError(f"{len(missing)} of {len(names)} {what} are missing, e.g. {missing[0]!r} "
                                 f"(looked in {places} under {root}); expected {layout}")
    return found


def _read_esc50(root: Path, modality: str, fold: int | None) -> LabelledSet:
    """ESC-50 from `meta/esc50.csv`: every clip of `audio/`, or one fold; classes ordered by `target`."""
    if modality != "audio":
        raise DatasetLayoutError(f"{root} is laid out as ESC-50 (meta/esc50.csv), an audio set, but the modality "
                                 f"is {modality}; pass --modality audio")
    index = root / "meta" / "esc50.csv"
    rows = _read_csv(index, ("filename", "fold", "target", "category"),
                     "filename,fold,target,category,esc10,src_file,take", ESC50_LAYOUT)
    if fold is not None:
        rows = [r for r in rows if r["fold"].strip() == str(fold)]
        if not rows:
            raise DatasetLayoutError(f"{index} has no clip in fold {fold}; ESC-50 has folds 1 to 5")
    try:
        by_target = {int(r["target"]): r["category"].strip() for r in rows}
    except ValueError:
        raise DatasetLayoutError(f"{index}: the target column must hold integers; expected {ESC50_LAYOUT}") from None
    classnames = [by_target[t] for t in sorted(by_target)]
    labels = np.asarray([classnames.index(r["category"].strip()) for r in rows], dtype=np.int64)
    paths = _locate(root, [[r["filename"].strip()] for r in rows], ("audio",), f"clips listed in {index.name}",
                    ESC50_LAYOUT)
    return LabelledSet("esc50", root, "audio", paths, labels, classnames, ESC50_LAYOUT)


def _k400_folder(root: Path, index: Path) -> Path | None:
    """The first of K400's usual flat folders that holds a video file (None: the clips are in class folders)."""
    extensions = media_extensions("video")
    for subdir in _K400_VIDEO_DIRS:
        folder = root / subdir
        if not folder.is_dir() or (folder == root and _class_candidates(root, _index_folder(root, index))):
            continue  # ROOT itself counts only without class folders beside the clips
        if any(p.suffix.lower() in extensions for p in folder.iterdir()):
            return folder
    return None


def _index_folder(root: Path, index: Path) -> set[str]:
    """The sub-folder of ROOT holding K400's `val.csv` (`annotations/`): no class, whatever else ROOT holds."""
    inside = index.relative_to(root).parts
    return {inside[0]} if len(inside) > 1 else set()


def _class_candidates(folder: Path, skip: Collection[str] = ()) -> list[Path]:
    """The sub-folders of `folder` that could be classes: all but hidden ones and those named in `skip`."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in skip)


def _read_kinetics_layout(root: Path, index: Path, modality: str) -> LabelledSet:
    """Kinetics-400 found by its `val.csv`: flat clips named by YouTube id, or class folders in one of the clip
    folders; anything else is refused rather than scored as classes named after the folders beside the CSV."""
    if folder := _k400_folder(root, index):
        return _read_kinetics(root, index, folder, modality)
    tried = ", ".join(f"{d}/" for d in _K400_VIDEO_DIRS[:-1])
    for subdir in _K400_VIDEO_DIRS:
        folder = root / subdir
        skip = _index_folder(root, index) if folder == root else set()
        if folder.is_dir() and _class_candidates(folder, skip):
            try:
                data = _read_class_folders(folder, modality, skip=skip)
            except DatasetLayoutError as error:
                if folder != root:
                    raise
                raise DatasetLayoutError(f"found {index} (Kinetics-400) but no clips in {tried} or ROOT, and the "
                                         f"folders in ROOT are no classes either ({error})") from None
            return _as_kinetics(data, root, index)
    raise DatasetLayoutError(f"found {index} (Kinetics-400) but no clips in {root} ({tried} or ROOT itself); "
                             f"expected {K400_LAYOUT}, or class folders in ROOT/val/")


def _as_kinetics(data: LabelledSet, root: Path, index: Path) -> LabelledSet:
    """K400 in class folders (`data`, read from one of ROOT's clip folders), scored as the flat layout is: every
    class `val.csv` names is a candidate (a missing class folder does not make the task easier), and clips it lists
    that the folders lack are counted. The set's root is ROOT, as given."""
    if data.modality != "video":
        raise DatasetLayoutError(f"{data.root} is laid out as Kinetics-400 ({index.name}), a video set, but the "
                                 f"modality is {data.modality}; pass --modality video")
    rows = _read_csv(index, ("label", "youtube_id"), "label,youtube_id,time_start,time_end,split,is_cc", K400_LAYOUT)
    listed = {r["youtube_id"].strip() for r in rows}
    classnames = sorted({r["label"].strip() for r in rows})

    def key(name: str) -> str:  # folders often spell "air drumming" as air_drumming
        return name.replace("_", " ").strip().lower()

    by_key = {key(c): i for i, c in enumerate(classnames)}
    unknown = [c for c in data.classnames if key(c) not in by_key]
    if unknown:
        raise DatasetLayoutError(f"class folder {unknown[0]!r} in {data.root} is not a label of {index}; the folders "
                                 "must be named after its classes")
    data.labels = np.asarray([by_key[key(data.classnames[i])] for i in data.labels], dtype=np.int64)
    data.classnames, data.name = classnames, "k400"
    folder = data.root.relative_to(root).as_posix()
    data.layout = (f"ROOT/{index.relative_to(root).as_posix()} and clips in class folders "
                   f"ROOT/{'' if folder == '.' else folder + '/'}<class name>/")
    found = {p.name[:11] for p in data.paths} & listed
    if found and len(found) < len(listed):  # clips named by YouTube id (else which are missing cannot be told)
        data.notes.append(f"{len(listed) - len(found)} of the {len(listed)} clips {index.name} lists are not in "
                          f"{data.root} ({len(data.paths)} are); scored against all {len(classnames)} classes")
    data.root = root
    return data


def _read_kinetics(root: Path, index: Path, folder: Path, modality: str) -> LabelledSet:
    """Kinetics-400 validation from `val.csv`: each clip labelled through its YouTube id (the file name's first 11
    characters); every class of the CSV is a candidate, and clips the CSV lists but the disk lacks are counted."""
    if modality != "video":
        raise DatasetLayoutError(f"{root} is laid out as Kinetics-400 ({index.name}), a video set, but the modality "
                                 f"is {modality}; pass --modality video")
    rows = _read_csv(index, ("label", "youtube_id"), "label,youtube_id,time_start,time_end,split,is_cc", K400_LAYOUT)
    label_of = {r["youtube_id"].strip(): r["label"].strip() for r in rows}
    classnames = sorted(set(label_of.values()))
    extensions = media_extensions("video")
    paths: list[Path] = []
    labels: list[int] = []
    unlisted = 0
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in extensions and p.is_file()):
        label = label_of.get(path.name[:11])
        if label is None:
            unlisted += 1
            continue
        paths.append(path)
        labels.append(classnames.index(label))
    if not paths:
        raise DatasetLayoutError(f"no video in {folder} is named after a youtube_id of {index} (e.g. "
                                 f"{next(iter(label_of))}_000010_000020.mp4); expected {K400_LAYOUT}")
    notes = [f"{len(label_of) - len(paths)} of the {len(label_of)} clips {index.name} lists are not in {folder} "
             f"({len(paths)} are)"] if len(paths) < len(label_of) else []
    if unlisted:
        notes.append(f"{unlisted} video(s) in {folder} are not listed in {index.name} and were left out")
    return LabelledSet("k400", root, "video", paths, np.asarray(labels, dtype=np.int64), classnames,
                       _read_as(root, index, paths, "clips"), notes)


def _read_class_folders(root: Path, modality: str, *, skip: Collection[str] = (),
                        other: str = _ESC50_ELSEWHERE) -> LabelledSet:
    """`ROOT/<class>/**/<files>`: classes are the sorted sub-folder names but those in `skip`; every class needs a
    file. `other` is the layout a ROOT without class folders is told it could have instead."""
    extensions = media_extensions(modality)
    folders = _class_candidates(root, skip)
    if not folders:
        raise DatasetLayoutError(f"{root} has no class folders; expected {CLASS_FOLDERS_LAYOUT}, or {other}")
    splits = [f.name for f in folders if f.name.lower() in _SPLIT_NAMES]
    if splits and len(splits) == len(folders):  # NYUv2 prepared by TUI-NICR: ROOT/train/, ROOT/test/
        test = next((name for name in splits if name.lower() == "test"), splits[-1])
        raise DatasetLayoutError(f"the folders in {root} are splits ({', '.join(splits)}), not classes; pass "
                                 f"--root {root / test}")
    paths: list[Path] = []
    labels: list[int] = []
    for label, folder in enumerate(folders):
        files = sorted(p for p in folder.rglob("*") if _is_media(p, extensions) and p.is_file())
        if not files:
            raise DatasetLayoutError(f"class folder {folder} holds no {modality} file ({_listed(extensions)}); "
                                     f"expected {CLASS_FOLDERS_LAYOUT}")
        paths.extend(files)
        labels.extend([label] * len(files))
    if len(folders) == 1:  # every file would be right by construction: no number to report
        raise DatasetLayoutError(f"{root} holds one class folder ({folders[0].name}); zero-shot needs two or more, "
                                 f"expected {CLASS_FOLDERS_LAYOUT}, or Kinetics-400's {K400_LAYOUT}")
    return LabelledSet(None, root, modality, paths, np.asarray(labels, dtype=np.int64), [f.name for f in folders],
                       CLASS_FOLDERS_LAYOUT)


_SPLIT_NAMES = frozenset({"train", "training", "val", "valid", "validation", "test", "testing", "eval"})


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")


def _round_robin(labels: np.ndarray, limit: int) -> np.ndarray:
    """Indices of `limit` items taking the classes in turn (first file of each class, then second...), in order."""
    turn = np.zeros(labels.shape, dtype=np.int64)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        turn[where] = np.arange(where.size)
    order = np.lexsort((labels, turn))
    return np.sort(order[:limit])


def _modality_folder(root: Path, modality: str) -> Path | None:
    """The first of `PAIRED_FOLDERS[modality]` that exists under root, else None."""
    for name in PAIRED_FOLDERS.get(modality, (modality,)):
        if (root / name).is_dir():
            return root / name
    return None


def _pair_folder(root: Path, modality: str, folder: str | None) -> Path:
    """The folder holding one side of the pairs: `root/folder`, or the first default name for the modality."""
    if folder is not None:
        path = root / folder
        if not path.is_dir():
            raise DatasetLayoutError(f"{path} is not a folder; expected {PAIRED_LAYOUT}")
        return path
    path = _modality_folder(root, modality)
    if path is None:
        tried = " or ".join(f"ROOT/{n}/" for n in PAIRED_FOLDERS.get(modality, (modality,)))
        raise DatasetLayoutError(f"no {modality} folder under {root} (looked for {tried}; name another with "
                                 f"--a-dir/--b-dir); expected {PAIRED_LAYOUT}")
    return path


def _media_files(folder: Path, modality: str, layout: str, name_folder: str | None = None) -> list[Path]:
    """The `modality` files directly inside `folder`, sorted; none is a layout error (which, where the caller has
    an option `name_folder` to name another folder, names the sub-folders it could mean)."""
    extensions = media_extensions(modality)
    files = sorted(p for p in folder.iterdir() if _is_media(p, extensions) and p.is_file())
    if not files:
        subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir())
        hint = (f"; it has sub-folders ({', '.join(subfolders[:4])}): name one with {name_folder}, e.g. "
                f"{folder.name}/{'test' if 'test' in subfolders else subfolders[0]}") if subfolders and name_folder \
            else ""
        raise DatasetLayoutError(f"{folder} holds no {modality} file ({_listed(extensions)}){hint}; "
                                 f"expected {layout}")
    return files


def _stems(folder: Path, modality: str) -> dict[str, Path]:
    """stem -> file for the `modality` files of `folder`; two files with one stem is a layout error."""
    by_stem: dict[str, Path] = {}
    for path in _media_files(folder, modality, PAIRED_LAYOUT, name_folder="--a-dir/--b-dir"):
        if path.stem in by_stem:
            raise DatasetLayoutError(f"{by_stem[path.stem].name} and {path.name} in {folder} share a stem, so the "
                                     f"pairing is ambiguous; expected {PAIRED_LAYOUT}")
        by_stem[path.stem] = path
    return by_stem


def _scene_class_folder(root: Path) -> Path | None:
    """`scene_class/` in ROOT, or beside it (TUI-NICR keeps one for both splits at the dataset's top: ROOT is then
    its `test/`)."""
    return next((d / "scene_class" for d in (root, root.parent) if (d / "scene_class").is_dir()), None)


def _read_llvip(root: Path, modality: str, cache: Path | None, scratch: bool = False) -> LabelledSet:
    """LLVIP's release as two classes of crops, `background` and `person`, cut once (`bindsearch.evaluation.llvip`)."""
    crops = llvip_crops(root, modality, cache)
    data = _read_class_folders(crops.folder, modality)
    data.name, data.root, data.layout = "llvip", root, LLVIP_LAYOUT
    data.notes.append(f"crops cut by bindsearch from {crops.frames} annotated test frames: {crops.persons} person "
                      f"boxes ({crops.small} under {MIN_SIDE} px left out) and {crops.backgrounds} background crops of "
                      "the same sizes overlapping no box; the reference never released its crops, so the paper's "
                      "number is over another set of them "
                      f"({'cut for this run only, not kept' if scratch else f'kept in {crops.folder}'})")
    if crops.unannotated:
        data.notes.append(f"{crops.unannotated} test frame(s) without an annotation were left out")
    return data


def _refuse_nested(root: Path) -> None:
    """Say what ROOT is when it is no set of class folders but one level above a dataset (the GitHub zip's
    `ESC-50-master/`, a K400 folder), a folder inside LLVIP's release, or a split holding modality folders (`rgb/`,
    `depth/`) without classes."""
    for top in (root.parent, root.parent.parent):
        if is_llvip(top) and root.relative_to(top).parts[0] in ("infrared", "visible", "Annotations"):
            raise DatasetLayoutError(f"{root} is inside LLVIP's release: pass --root {top}, from whose Annotations/ "
                                     "the person and background crops are cut")
    _refuse_misplaced(root)
    folders = _class_candidates(root)
    modality_names = {name for names in PAIRED_FOLDERS.values() for name in names}
    if len(folders) > 1 and all(f.name.lower() in modality_names for f in folders):
        names = ", ".join(sorted(f"{f.name}/" for f in folders))
        raise DatasetLayoutError(f"{root} holds {names}: modality folders, not classes; zero-shot over them needs "
                                 f"each file's class in scene_class/<stem>.txt, in {root} or {root.parent} "
                                 f"({SCENE_CLASS_LAYOUT}), or one folder per class ({CLASS_FOLDERS_LAYOUT})")


def _refuse_misplaced(root: Path) -> None:
    """Refuse a ROOT one level off a dataset, whatever the modality: holding one folder only, ESC-50 or K400 (the
    GitHub zip unpacks into `ESC-50-master/`), or K400's flat clip folder (`val/`) below its `val.csv`."""
    folders = _class_candidates(root)
    if len(folders) == 1 and ((folders[0] / "meta" / "esc50.csv").is_file()
                              or _find_optional(folders[0], K400_CSV, _K400_CSV_DIRS)):
        raise DatasetLayoutError(f"{root} holds one folder, a dataset: pass --root {folders[0]}")
    if folders:
        return  # class folders, read as such even beside a val.csv above
    for top in (root.parent, root.parent.parent):
        if root.relative_to(top).as_posix() in _K400_VIDEO_DIRS and (
                index := _find_optional(top, K400_CSV, _K400_CSV_DIRS)):
            raise DatasetLayoutError(f"{root} is Kinetics-400's clip folder, labelled by {index}: pass --root {top}")


def _scene_classes(folder: Path, stems: Sequence[str]) -> list[str]:
    """The class of each stem from `folder/<stem>.txt` (first line; the TUI-NICR NYUv2 layout)."""
    names = []
    for stem in stems:
        path = folder / f"{stem}.txt"
        if not path.is_file():
            raise DatasetLayoutError(f"{path} is missing; every file needs its class in scene_class/<stem>.txt "
                                     f"({SCENE_CLASS_LAYOUT})")
        lines = path.read_text(encoding="utf-8").splitlines()
        if not lines or not lines[0].strip():
            raise DatasetLayoutError(f"{path} is empty; it should hold the class name on its first line")
        names.append(lines[0].strip())
    return names


def _pair_labels(root: Path, stems: Sequence[str]) -> tuple[np.ndarray | None, list[str] | None]:
    """Class of each pair from `labels.csv` (stem,label) or `scene_class/<stem>.txt`; (None, None) without either."""
    table = root / "labels.csv"
    if table.is_file():
        rows = _read_csv(table, ("stem", "label"), "stem,label", PAIRED_LAYOUT)
        label_of = {r["stem"].strip(): r["label"].strip() for r in rows}
        unlabelled = [s for s in stems if not label_of.get(s)]
        if unlabelled:
            raise DatasetLayoutError(f"{table} gives no label for {len(unlabelled)} pair(s), e.g. {unlabelled[0]!r}; "
                                     "expected one row stem,label per pair")
        names = [label_of[s] for s in stems]
    elif scenes := _scene_class_folder(root):
        names = _scene_classes(scenes, stems)
    else:
        return None, None
    classnames = sorted(set(names))
    return np.asarray([classnames.index(n) for n in names], dtype=np.int64), classnames

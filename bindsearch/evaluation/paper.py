"""The LanguageBind paper's numbers (ICLR 2024), keyed by benchmark, dataset and published checkpoint.

Numbers are shown beside ours only when the model evaluated is the published checkpoint they were measured
with; a random or custom model gets none. Directions are written as in our results: `text->video`,
`depth->class` (zero-shot classification against class prompts), `image+depth->class` (fused query).
"""

from __future__ import annotations

import re
from pathlib import Path

from bindsearch.models.specs import ALIASES

from .llvip import is_llvip

__all__ = ["BASELINES", "DATASET_MODALITY", "PAPER", "dataset_named", "detect_dataset", "paper_numbers",
           "published_checkpoint"]

Numbers = dict[str, dict[str, float]]  # direction -> metric -> value

# (benchmark, dataset) -> published checkpoint alias -> numbers. "*" means any published checkpoint of the
# modality: the paper gives one number without naming the variant.
PAPER: dict[tuple[str, str], dict[str, Numbers]] = {
    ("msrvtt", "msrvtt"): {
        "languagebind:video": {"text->video": {"R@1": 42.6}},
        "languagebind:video_ft": {"text->video": {"R@1": 42.7}},
        "languagebind:video_v1.5_ft": {"text->video": {"R@1": 42.8}},
        "languagebind:video_huge_v1.5_ft": {"text->video": {"R@1": 44.8}},
    },
    ("clotho", "clotho"): {
        "languagebind:audio": {"text->audio": {"R@1": 12.1, "R@10": 44.0}},
        "languagebind:audio_ft": {"text->audio": {"R@1": 16.7, "R@10": 52.0}},
    },
    ("zeroshot", "k400"): {"*": {"video->class": {"top1": 64.0}}},
    ("zeroshot", "llvip"): {"*": {"infrared->class": {"top1": 87.2}}},
    ("zeroshot", "nyud"): {"*": {"depth->class": {"top1": 65.1}}},
    ("zeroshot", "esc50"): {
        "languagebind:audio": {"audio->class": {"top1": 91.8}},
        "languagebind:audio_ft": {"audio->class": {"top1": 94.0}},
    },
    ("emergent", "nyud"): {"*": {"image->depth": {"R@1": 17.9}, "depth->image": {"R@1": 24.5},
                                 "depth->class": {"top1": 65.1}, "image+depth->class": {"top1": 77.4}}},
    ("emergent", "llvip"): {"*": {"image->infrared": {"R@1": 7.5}, "infrared->image": {"R@1": 9.3}}},
}

# Other models the paper compares with, shown whatever model we run.
BASELINES: dict[tuple[str, str], dict[str, Numbers]] = {
    ("zeroshot", "k400"): {"ImageBind-Huge": {"video->class": {"top1": 50.0}}},
    ("zeroshot", "llvip"): {"ImageBind-Huge": {"infrared->class": {"top1": 63.4}}},
    ("zeroshot", "nyud"): {"ImageBind-Huge": {"depth->class": {"top1": 54.0}}},
    ("zeroshot", "esc50"): {"ImageBind-Huge": {"audio->class": {"top1": 66.9}}},
}

DATASET_MODALITY = {"k400": "video", "esc50": "audio", "nyud": "depth", "llvip": "infrared"}
# Words in a dataset folder's name that identify it (checked on the folder and its parent): Kinetics with no
# number, or with 400, is K400; Kinetics-600 and -700 are not.
_NAME_HINTS = {r"nyu": "nyud", r"llvip": "llvip", r"esc[-_ ]?50": "esc50", r"k400": "k400",
               r"kinetics(?![-_ ]?\d)|kinetics[-_ ]?400(?!\d)": "k400"}
# How users write the datasets' names, with spaces, "-" and "_" taken out: exactly these (Kinetics-600 is not K400).
_NAMES = {"k400": "k400", "kinetics": "k400", "kinetics400": "k400", "esc50": "esc50", "nyud": "nyud", "nyu": "nyud",
          "nyuv2": "nyud", "nyudepthv2": "nyud", "nyudepth": "nyud", "llvip": "llvip"}
# Modality of each published checkpoint (the alias's tower).
_CHECKPOINT_MODALITY = {"video": "video", "audio": "audio", "depth": "depth", "thermal": "infrared",
                        "infrared": "infrared", "image": "image"}


def dataset_named(name: str) -> str | None:
    """The dataset a user named (`NYUD`, `nyu`, `Kinetics-400`, `ESC-50`) as its key: k400, esc50, nyud or llvip;
    `none` for none of them (a folder whose name would say otherwise: no paper numbers, no dataset's rules). Any
    other name is a ValueError, since the paper's numbers, NYU-D's classes and LLVIP's prompts hang on it."""
    key = re.sub(r"[\s_-]", "", name.lower())
    if key == "none":
        return None
    if key in _NAMES:
        return _NAMES[key]
    raise ValueError(f"unknown --dataset {name!r}; expected one of {', '.join(DATASET_MODALITY)}, or none for "
                     "another dataset (or leave it out to tell it from the folder's name)")


def detect_dataset(root: str | Path) -> str | None:
    """'k400', 'esc50', 'nyud' or 'llvip' from ESC-50's or LLVIP's layout or words in the root's (or its parent's)
    name."""
    root = Path(root).expanduser().resolve()
    if (root / "meta" / "esc50.csv").is_file():
        return "esc50"
    if is_llvip(root):
        return "llvip"
    for part in (root.name, root.parent.name):
        for hint, dataset in _NAME_HINTS.items():
            if re.search(hint, part.lower()):
                return dataset
    return None


def published_checkpoint(spec: str, modality: str) -> str | None:
    """The alias (e.g. 'languagebind:video_ft') of the published checkpoint serving `modality` in a model spec.

    Recognises aliases, Hugging Face repo ids (`LanguageBind/LanguageBind_Video_FT`, `hf-hub:...`) and local
    folders named after the repo (`.../LanguageBind_Video_FT`, or a snapshot in the hub cache's
    `models--LanguageBind--.../snapshots/<revision>`); a folder inside one (a fine-tune saved as
    `LanguageBind_Video_FT/epoch3`) is not the published checkpoint.
    """
    by_repo = {repo.lower(): alias for alias, repo in ALIASES.items() if alias != "languagebind:infrared"}
    for part in spec.split(","):
        alias = _alias_of(part.strip(), by_repo)
        if alias is not None and _modality_of(alias) == modality:
            return alias
    return None


def paper_numbers(benchmark: str, dataset: str | None, spec: str, modalities: tuple[str, ...]
                  ) -> tuple[str | None, Numbers, dict[str, Numbers]]:
    """(matched checkpoint(s) or None, the paper's numbers for them, baselines) for a run of `spec`.

    `modalities` are the non-text modalities the benchmark encodes; every one must be served by a published
    checkpoint for the paper's numbers to apply.
    """
    baselines = BASELINES.get((benchmark, dataset or ""), {})
    table = PAPER.get((benchmark, dataset or ""))
    if not table:
        return None, {}, baselines
    matched = [published_checkpoint(spec, m) for m in modalities]
    if any(alias is None for alias in matched):
        return None, {}, baselines
    label = ",".join(alias for alias in matched if alias)
    if "*" in table:
        return label, table["*"], baselines
    for alias in matched:
        if alias in table:
            return alias, table[alias], baselines
    return None, {}, baselines


def _alias_of(part: str, by_repo: dict[str, str]) -> str | None:
    lowered = part.lower()
    if lowered in ALIASES:
        return "languagebind:thermal" if lowered == "languagebind:infrared" else lowered
    lowered = lowered.removeprefix("hf-hub:")
    if lowered in by_repo:
        return by_repo[lowered]
    parts = Path(lowered.rstrip("/")).parts
    for repo, alias in by_repo.items():
        if parts[-1:] == (repo.split("/")[-1],) or parts[-3:-1] == ("models--" + repo.replace("/", "--"), "snapshots"):
            return alias
    return None


def _modality_of(alias: str) -> str:
    tower = alias.split(":", 1)[1].split("_", 1)[0]
    return _CHECKPOINT_MODALITY.get(tower, tower)

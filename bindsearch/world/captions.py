"""Captions for BindWorld scenes: training templates with synonyms, and held-out paraphrases.

A caption is a noun phrase: optional opener, size and colour adjectives, the shape noun (or a generic
noun when shape is not described), then post-modifiers for position, motion, temperature and material
in a shuffled order. `describe` renders any subset of attributes, which gives full captions (text
senses everything), per-modality captions (only what that modality senses) and zero-shot prompts
(one attribute).

Held-out vocabularies never share a content word with `TRAIN`, the training captions' (`STOPWORDS`
aside), and test that the frozen language anchor generalises to wording no tower was trained on:

- `PARAPHRASE`, everyday wording a user would type instead: common synonyms ("huge", "ball", "rapidly")
  and derived forms of the training words ("reddish", "leftmost", "wooden"). It fills the `paraphrases`
  column of scenes.csv and is the benchmark's paraphrase query.
- `RARE_PARAPHRASE`, rarer words and frames (compass points for positions, "crimson", "lozenge", "carved
  from oak"): the benchmark reports it beside, as the harder test of how much the anchor itself knows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from bindsearch.world.attributes import ATTRIBUTES

__all__ = [
    "HELD_OUT",
    "PARAPHRASE",
    "RARE_PARAPHRASE",
    "STOPWORDS",
    "TRAIN",
    "Vocabulary",
    "attribute_prompts",
    "describe",
    "distinct_captions",
    "words",
]

# Function words both vocabularies may use; every other word belongs to exactly one vocabulary.
STOPWORDS = frozenset({"a", "an", "the", "is", "in", "at", "on", "of", "to", "with", "that", "and"})


@dataclass(frozen=True)
class Vocabulary:
    """Phrases per attribute value plus the sentence pieces that join them."""

    phrases: dict[str, dict[str, tuple[str, ...]]]  # attribute -> value -> synonyms / framed phrases
    nouns: tuple[str, ...]  # generic head nouns when shape is not described
    verbs: tuple[str, ...]  # motion verbs, "moving left slowly"
    openers: tuple[str, ...]  # sentence openers, "" means none

    def all_words(self) -> set[str]:
        """Every lower-case word this vocabulary can produce."""
        texts = [p for table in self.phrases.values() for ps in table.values() for p in ps]
        return words(" ".join([*texts, *self.nouns, *self.verbs, *self.openers]))


def _corners(fmt: Iterable[str], names: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return {value: tuple(f.format(n) for f in fmt for n in ns) for value, ns in names.items()}


TRAIN = Vocabulary(
    phrases={
        "shape": {
            "circle": ("circle", "disc"),
            "square": ("square", "block"),
            "triangle": ("triangle", "three-sided shape"),
            "diamond": ("diamond", "rhombus"),
            "star": ("star", "star shape"),
            "cross": ("cross", "cross shape"),
        },
        "size": {
            "small": ("small", "little"), "medium": ("medium", "medium-size"), "large": ("large", "big"),
        },
        "colour": {
            "red": ("red",), "orange": ("orange",), "yellow": ("yellow",), "green": ("green",),
            "blue": ("blue",), "purple": ("purple", "violet"), "pink": ("pink",),
        },
        "position": {
            "top-left": ("at the top left", "in the top left corner", "in the upper left"),
            "top": ("at the top", "at the top centre", "in the upper middle"),
            "top-right": ("at the top right", "in the top right corner", "in the upper right"),
            "left": ("on the left", "at the middle left", "on the left side"),
            "centre": ("in the centre", "in the middle", "at the center"),
            "right": ("on the right", "at the middle right", "on the right side"),
            "bottom-left": ("at the bottom left", "in the bottom left corner", "in the lower left"),
            "bottom": ("at the bottom", "at the bottom centre", "in the lower middle"),
            "bottom-right": ("at the bottom right", "in the bottom right corner", "in the lower right"),
        },
        "temperature": _corners(
            ("{} to the touch", "that feels {}"),
            {"cold": ("cold", "chilled"), "warm": ("warm",), "hot": ("hot", "very hot")},
        ),
        "material": _corners(
            ("made of {}", "that sounds like {}"),
            {"wood": ("wood",), "metal": ("metal",), "glass": ("glass",), "rubber": ("rubber",)},
        ),
        "direction": {"left": ("left",), "right": ("right",), "up": ("up",), "down": ("down",)},
        "speed": {
            "slow": ("slowly", "at a slow pace"),
            "medium": ("steadily", "at a steady pace"),
            "fast": ("quickly", "fast", "at a fast pace"),
        },
    },
    nouns=("object", "shape"),
    verbs=("moving", "heading", "going"),
    openers=("", "", "there is "),
)

PARAPHRASE = Vocabulary(
    phrases={
        "shape": {
            "circle": ("ball", "round dot"),
            "square": ("box", "four-cornered tile"),
            "triangle": ("triangular figure", "wedge"),
            "diamond": ("lozenge", "rhomboid figure"),
            "star": ("starburst", "five-pointed figure"),
            "cross": ("plus sign", "plus symbol"),
        },
        "size": {
            "small": ("tiny", "miniature"),
            "medium": ("average-sized", "mid-sized"),
            "large": ("huge", "giant"),
        },
        "colour": {
            "red": ("reddish", "scarlet"), "orange": ("orangey", "tangerine"), "yellow": ("yellowish", "golden"),
            "green": ("greenish", "lime"), "blue": ("bluish", "navy"), "purple": ("purplish", "lilac"),
            "pink": ("pinkish", "rose"),
        },
        "position": _corners(
            ("in the {} region", "toward the {} area"),
            {
                "top-left": ("topmost leftmost",), "top": ("topmost",), "top-right": ("topmost rightmost",),
                "left": ("leftmost",), "centre": ("central",), "right": ("rightmost",),
                "bottom-left": ("bottommost leftmost",), "bottom": ("bottommost",),
                "bottom-right": ("bottommost rightmost",),
            },
        ),
        "temperature": _corners(
            ("{} in temperature", "{} on the surface"),
            {"cold": ("icy", "freezing"), "warm": ("lukewarm", "tepid"), "hot": ("scorching", "boiling")},
        ),
        "material": {
            "wood": ("that is wooden", "carved from timber"),
            "metal": ("that is metallic", "forged from steel"),
            "glass": ("that is glassy", "blown from crystal"),
            "rubber": ("that is rubbery", "moulded from latex"),
        },
        "direction": {
            "left": ("leftward",), "right": ("rightward",), "up": ("upward",), "down": ("downward",),
        },
        "speed": {
            "slow": ("sluggishly", "leisurely"),
            "medium": ("at a moderate rate", "at an even tempo"),
            "fast": ("rapidly", "swiftly"),
        },
    },
    nouns=("thing", "item", "figure"),
    verbs=("drifting", "gliding", "sliding"),
    openers=("", "here is ", "you can spot "),
)

# BindWorld 1's held-out words: rarer ones for shape, colour, position, temperature and material; size, motion
# and the sentence pieces as `PARAPHRASE`.
RARE_PARAPHRASE = replace(
    PARAPHRASE,
    phrases={
        **PARAPHRASE.phrases,
        "shape": {
            "circle": ("ball", "round dot"),
            "square": ("box", "tile"),
            "triangle": ("wedge", "pyramid"),
            "diamond": ("lozenge", "kite"),
            "star": ("starburst", "five-pointed figure"),
            "cross": ("plus sign", "plus symbol"),
        },
        "colour": {
            "red": ("crimson", "scarlet"), "orange": ("tangerine", "amber"),
            "yellow": ("golden", "lemon"), "green": ("emerald", "lime"), "blue": ("azure", "cobalt"),
            "purple": ("plum", "amethyst"), "pink": ("rose", "fuchsia"),
        },
        "position": _corners(
            ("in the {}", "toward the {}"),
            {
                "top-left": ("northwest",), "top": ("north",), "top-right": ("northeast",),
                "left": ("west",), "right": ("east",),
                "bottom-left": ("southwest",), "bottom": ("south",), "bottom-right": ("southeast",),
            },
        )
        | {"centre": ("at the midpoint", "around the midpoint")},
        "temperature": _corners(
            ("{} in temperature", "{} on the surface"),
            {"cold": ("icy", "freezing"), "warm": ("lukewarm", "balmy"), "hot": ("scorching", "boiling")},
        ),
        "material": {
            "wood": ("crafted from timber", "carved from oak"),
            "metal": ("crafted from steel", "forged from iron"),
            "glass": ("crafted from crystal", "blown from crystal"),
            "rubber": ("crafted from latex", "moulded from latex"),
        },
    },
)

# The held-out vocabularies by the name the benchmarks' `--vocabulary` options take.
HELD_OUT: dict[str, Vocabulary] = {"everyday": PARAPHRASE, "rare": RARE_PARAPHRASE}

_POST = ("position", "motion", "temperature", "material")


def words(text: str) -> set[str]:
    """Lower-case words of `text` (hyphenated words split), as a set."""
    return set(re.findall(r"[a-z]+", text.lower()))


def describe(
    attributes: Mapping[str, str],
    rng: np.random.Generator | None = None,
    vocabulary: Vocabulary = TRAIN,
) -> str:
    """A caption mentioning exactly the given attributes; `rng=None` picks the first synonym of each."""
    unknown = set(attributes) - set(ATTRIBUTES)
    if unknown:
        raise ValueError(f"unknown attributes {sorted(unknown)}; expected some of {list(ATTRIBUTES)}")

    def pick(options: tuple[str, ...]) -> str:
        return options[0] if rng is None else options[int(rng.integers(len(options)))]

    def phrase(name: str) -> str:
        return pick(vocabulary.phrases[name][attributes[name]])

    adjectives = [phrase(name) for name in ("size", "colour") if name in attributes]
    noun = phrase("shape") if "shape" in attributes else pick(vocabulary.nouns)
    post: dict[str, str] = {}
    if "position" in attributes:
        post["position"] = phrase("position")
    if "direction" in attributes or "speed" in attributes:
        parts = [pick(vocabulary.verbs)] + [phrase(n) for n in ("direction", "speed") if n in attributes]
        post["motion"] = " ".join(parts)
    for name in ("temperature", "material"):
        if name in attributes:
            post[name] = phrase(name)
    order = list(_POST) if rng is None else [_POST[i] for i in rng.permutation(len(_POST))]
    tail = [post[name] for name in order if name in post]

    head = " ".join([*adjectives, noun])
    article = "an" if head[0] in "aeiou" else "a"
    opener = "" if rng is None else pick(vocabulary.openers)
    text = f"{opener}{article} {head}"
    # The first post-modifier attaches directly, the rest follow as a comma list.
    return f"{text} {', '.join(tail)}" if tail else text


def distinct_captions(
    attributes: Mapping[str, str], count: int, rng: np.random.Generator, vocabulary: Vocabulary = TRAIN
) -> list[str]:
    """`count` captions for the same attributes, distinct where the templates allow (20 tries each)."""
    captions: list[str] = []
    for _ in range(count):
        caption = describe(attributes, rng, vocabulary)
        for _ in range(20):
            if caption not in captions:
                break
            caption = describe(attributes, rng, vocabulary)
        captions.append(caption)
    return captions


def attribute_prompts(attribute: str, vocabulary: Vocabulary = TRAIN) -> dict[str, str]:
    """Zero-shot prompts for one attribute: value -> caption of that value alone ("a red object")."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; expected one of {list(ATTRIBUTES)}")
    return {value: describe({attribute: value}, None, vocabulary) for value in ATTRIBUTES[attribute]}

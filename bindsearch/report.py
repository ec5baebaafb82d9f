"""`IngestReport`: what one `Collection.add` did."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bindsearch.media import MediaError

__all__ = ["IngestReport"]


@dataclass
class IngestReport:
    """What one `add` did: counts per outcome, the files that failed (one line each) and what was guessed.

    `skipped`: files not indexed, with why; `unencodable` names those of them that are media of a modality the
    encoder has no tower for (modality -> their paths); `not_media`, the rest.
    `truncated`: text files longer than the text tower reads (CLIP: 77 tokens), embedded from their start.
    `warnings`: what the run did not do and a person should know (files kept though their folder is empty).
    `split`, `windows`: long files embedded as windows, and how many windows they made. Counts are of files, once
    per modality a file is indexed as (`--modality` can add a second).
    """

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[MediaError] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    unencodable: dict[str, list[Path]] = field(default_factory=dict)
    guessed: Counter = field(default_factory=Counter)
    truncated: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    split: int = 0
    windows: int = 0
    seconds: float = 0.0

    @property
    def not_media(self) -> list[tuple[Path, str]]:
        """The skipped files that are not media the encoder could read in another collection: (path, why)."""
        media = {p for paths in self.unencodable.values() for p in paths}
        return [(p, why) for p, why in self.skipped if p not in media]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        parts = [f"{self.new} new", f"{self.changed} changed", f"{self.unchanged} unchanged",
                 f"{self.removed} removed", f"{len(self.failed)} failed"]
        cut = f" ({self.split} long file(s) as {self.windows} windows)" if self.split else ""
        return ", ".join(parts) + cut + f" in {self.seconds:.1f}s"

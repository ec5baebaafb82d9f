"""`IngestReport`: what one `Collection.add` did."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bindsearch.files import displayed

if TYPE_CHECKING:
    from bindsearch.media import MediaError

__all__ = ["IngestReport"]


@dataclass
class IngestReport:
    """What one `add` did: counts per outcome, the files that failed (one line each) and what was guessed.

    `skipped`: files not indexed, with why; `unencodable` names those of them that are media of a modality the
    encoder has no tower for (modality -> their paths); `links`, those that are links to folders (not followed);
    `not_media`, the rest. `guessed`: how the modality of each file this run reads to embed was told (failed or
    not), counted by rule.
    `truncated`: text files longer than the text tower reads (CLIP: 77 tokens), embedded from their start.
    `warnings`: what the run did not do and a person should know (files kept though their folder is empty).
    `split`, `windows`: long files embedded as windows, and how many windows they made. Counts are of files, once
    per modality a file is indexed as (`--modality` can add a second). `moved`: files new under their path whose
    bytes were indexed under a path that is gone (a folder renamed or moved): their rows follow them, not embedded.
    """

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    failed: list[MediaError] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    unencodable: dict[str, list[Path]] = field(default_factory=dict)
    links: list[Path] = field(default_factory=list)
    guessed: Counter = field(default_factory=Counter)
    truncated: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    split: int = 0
    windows: int = 0
    seconds: float = 0.0

    @property
    def not_media(self) -> list[tuple[Path, str]]:
        """The skipped files that are not media the encoder could read in another collection: (path, why)."""
        media = {p for paths in self.unencodable.values() for p in paths} | set(self.links)
        return [(p, why) for p, why in self.skipped if p not in media]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self, collection: str) -> dict:
        """What `index --json` prints: the counts, every failed and skipped file, and what was guessed."""
        return {"collection": collection, "new": self.new, "changed": self.changed, "unchanged": self.unchanged,
                "moved": self.moved, "removed": self.removed,
                "failed": [{"path": str(e.path), "error": e.cause} for e in self.failed],
                "skipped": [{"path": str(p), "reason": r} for p, r in self.skipped], "guessed": self._guessed(),
                "truncated": [str(p) for p in self.truncated], "warnings": self.warnings, "split": self.split,
                "windows": self.windows, "seconds": round(self.seconds, 3)}

    def messages(self, encoder: str) -> list[str]:
        """The run's lines for a person (stderr), `error:` and `warning:` lines among them; `encoder` names the
        collection's model."""
        lines = [f"{g['files']} {g['modality']} file(s) by {g['rule']}" for g in self._guessed()]
        lines += [f"warning: skipped {len(files)} {kind} file(s): model {encoder} has no {kind} encoder (index them "
                  "into a collection whose model has one)" for kind, files in sorted(self.unencodable.items())]
        if self.links:
            shown = ", ".join(str(p) for p in self.links[:3]) + (f" and {len(self.links) - 3} more"
                                                                 if len(self.links) > 3 else "")
            lines.append(f"warning: {len(self.links)} link(s) to a folder not followed ({shown}): what they hold is "
                         "not indexed; index the folders they point to")
        if other := self.not_media:
            kinds = Counter(path.suffix.lower() or "(no extension)" for path, _ in other)
            counts = ", ".join(f"{n} {suffix}" for suffix, n in kinds.most_common(5))
            more = f" and {len(kinds) - 5} more kinds" if len(kinds) > 5 else ""
            lines.append(f"skipped {len(other)} file(s) that are not media: {counts}{more} (e.g. {other[0][0]}: "
                         f"{other[0][1]})")
        if self.truncated:
            lines.append(f"{len(self.truncated)} text file(s) longer than the text encoder reads were embedded from "
                         f"their start (e.g. {self.truncated[0]})")
        lines += [f"error: {e}; skipped" for e in self.failed]
        lines += [f"warning: {warning}" for warning in self.warnings]
        return [displayed(line) for line in lines]  # a newline or escape sequence in a file's name: one line

    def _guessed(self) -> list[dict]:
        return [{"modality": m, "rule": why, "files": n} for (m, why), n in sorted(self.guessed.items())]

    def summary(self) -> str:
        parts = [f"{self.new} new", f"{self.changed} changed", f"{self.unchanged} unchanged",
                 *([f"{self.moved} moved"] if self.moved else []), f"{self.removed} removed",
                 f"{len(self.failed)} failed"]
        cut = f" ({self.split} long file(s) as {self.windows} windows)" if self.split else ""
        return ", ".join(parts) + cut + f" in {self.seconds:.1f}s"

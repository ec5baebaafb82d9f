"""Text files as items: captions, notes and transcripts searched beside the media they describe.

A text file is read, not decoded into a tensor: its words go to the text tower, which reads a few dozen of them
(CLIP: 77 tokens, MiniLM: 128), so only the start of a long file matters and only that much is read.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from bindsearch.media.errors import MediaError

__all__ = ["READ_BYTES", "read_text"]

READ_BYTES = 64 << 10
"""How much of a text file is read: far more words than any text tower takes."""


def read_text(path: Path, limit: int = READ_BYTES) -> str:
    """The words of a UTF-8 text file (a byte-order mark is dropped), whitespace runs made single spaces.

    Raises MediaError, naming the file, for bytes that are not UTF-8 text or a file with no words.
    """
    with open(path, "rb") as f:
        data = f.read(limit)
    # UTF-16 with its byte-order mark: what Windows Notepad saves as "Unicode" and PowerShell 5's `>` writes.
    encoding = "utf-16" if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"
    if encoding == "utf-8-sig" and b"\x00" in data:
        raise MediaError(path, "binary data, not text (a NUL byte); text files must be UTF-8 (or UTF-16 with "
                               "its byte-order mark)")
    try:
        # Incremental: a read that stops inside a multi-byte character leaves that character out, no error.
        text = codecs.getincrementaldecoder(encoding)().decode(data, final=len(data) < limit)
    except UnicodeDecodeError as exc:
        raise MediaError(path, f"not {encoding.upper().removesuffix('-SIG')} text (byte 0x{data[exc.start]:02x} "
                               f"at offset {exc.start}); save it as UTF-8") from None
    if "\x00" in text:
        raise MediaError(path, "binary data, not text (a NUL character)")
    words = re.sub(r"\s+", " ", text).strip()
    if not words:
        raise MediaError(path, "empty text file (no words to embed)")
    return words

"""FAISS, imported in one place: an install without a FAISS wheel (it comes with the `cpu` or `gpu` extra) is told
so in one line, not with a traceback that ends in `No module named 'faiss'`."""

from __future__ import annotations

from indexes import FaissNotInstalled

__all__ = ["faiss"]

try:
    import faiss
except ModuleNotFoundError as error:
    if error.name != "faiss":  # FAISS is there, and something it needs is not: its own message says what
        raise
    raise FaissNotInstalled("FAISS is not installed: pip install 'bindsearch[cpu]', or 'bindsearch[gpu]' on a "
                            "machine with an NVIDIA GPU") from None

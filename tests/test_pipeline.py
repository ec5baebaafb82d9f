"""Bulk encoding: order kept, bad files reported without losing the batch, same vectors as encode()."""

from __future__ import annotations

from pathlib import Path

import torch

from bindsearch.pipeline import encode_files


def test_bad_file_is_reported_and_the_rest_of_its_batch_kept(tiny_model, media_files, tmp_path, capfd):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(bytes(range(256)) * 8)  # no container decord can open
    video = media_files["video"]
    batches = list(encode_files(tiny_model, "video", [video, empty, video, video, video, empty, video], batch_size=3,
                                workers=1))
    assert [len(b.paths) for b in batches] == [2, 2, 1]
    assert [str(e.path) for b in batches for e in b.failures] == [str(empty)] * 2
    # Reported as a MediaError alone: decord's own log line stays in the decoder process, also once the worker
    # runs the thread that feeds its results back.
    assert "video_reader" not in capfd.readouterr().err
    expected = tiny_model.encode("video", [video])
    for b in batches:
        assert torch.allclose(b.vectors, expected.expand(len(b.paths), -1), atol=1e-6)


def test_in_process_decoding_gives_the_same_vectors(tiny_model, media_files):
    paths = [media_files["audio"], media_files["audio"]]
    a = torch.cat([b.vectors for b in encode_files(tiny_model, "audio", paths, workers=0)])
    b = torch.cat([b.vectors for b in encode_files(tiny_model, "audio", paths, workers=1)])
    assert torch.equal(a, b)


def test_a_file_whose_vector_is_not_finite_fails_alone(tiny_model, media_files, tmp_path, monkeypatch):
    import shutil

    from bindsearch import media

    nan_file = shutil.copy(media_files["image"], tmp_path / "nan.png")
    load = media.load

    def nan_input(modality, path, prep=None, **options):  # a decoder that let a NaN through, for this one file
        x = load(modality, path, prep, **options)
        return torch.full_like(x, float("nan")) if path == nan_file else x

    monkeypatch.setattr(media, "load", nan_input)
    paths = [media_files["image"], nan_file, media_files["image"]]
    batches = list(encode_files(tiny_model, "image", paths, batch_size=3, workers=0))
    assert [p for b in batches for p in b.paths] == [media_files["image"]] * 2
    assert all(torch.isfinite(b.vectors).all() for b in batches)
    assert [str(e) for b in batches for e in b.failures] == [
        f"{nan_file}: the model gave a NaN or infinite vector (the decoded input holds NaN or infinite values); "
        "check or re-export the file"]


def test_encode_refuses_one_string_instead_of_iterating_its_characters(tiny_model, media_files):
    import pytest

    with pytest.raises(TypeError, match=r"encode takes a list of texts, got one str: pass \['a dog barking'\]"):
        tiny_model.encode("text", "a dog barking")
    with pytest.raises(TypeError, match="list of paths, got one PosixPath"):
        tiny_model.encode("image", media_files["image"])
    # Nor a text that is not one (None was embedded as the word "None"), nor a batch size below one (-1 gave an
    # empty result).
    with pytest.raises(TypeError, match=r"must be a str, not NoneType"):
        tiny_model.encode("text", ["a dog", None])
    for size in (0, -1, 2.0):
        with pytest.raises(ValueError, match="batch_size must be a whole number"):
            tiny_model.encode("text", ["a dog"], batch_size=size)


def _decoding_threads(model, audio: Path, monkeypatch, alone: bool) -> tuple[list[int], int]:
    """(torch's thread count while each file was decoded, after), the encoder's process at 2 threads; `alone`: the
    program has no other thread (another one is started otherwise)."""
    import threading

    from bindsearch import media

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    seen: list[int] = []
    load = media.load

    def counted(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return load(*args, **kwargs)

    monkeypatch.setattr(media, "load", counted)
    if alone:  # as `bindsearch index` is; pytest may hold threads of its own
        monkeypatch.setattr("bindsearch.pipeline._alone", lambda: True)
    stop = threading.Event()
    other = None if alone else threading.Thread(target=stop.wait)
    if other is not None:
        other.start()
    try:
        batches = list(encode_files(model, "audio", [audio], workers=0))
        assert batches[0].vectors.shape == (1, model.dim)
        return seen, torch.get_num_threads()
    finally:
        stop.set()
        if other is not None:
            other.join()
        torch.set_num_threads(threads)


def test_files_decoded_in_the_encoders_process_take_one_thread(tiny_model, media_files, monkeypatch):
    """Without decoder processes, a file's small tensors got torch's every thread: the second one waited, for the
    first or for a core another program held (2x slower beside one busy process: benchmarks/decode_threads.py)."""
    assert _decoding_threads(tiny_model, media_files["audio"], monkeypatch, alone=True) == ([1], 2)  # encoder: 2


def test_decoding_keeps_torchs_threads_where_the_program_has_other_threads(tiny_model, media_files, monkeypatch):
    """torch takes a thread's count from the process's when that thread first runs torch: a thread of a web app's
    pool starting while `add` decoded on one thread kept one thread for good (found by a review)."""
    assert _decoding_threads(tiny_model, media_files["audio"], monkeypatch, alone=False) == ([2], 2)


def test_bindsearch_index_decodes_on_one_thread(media_files, tmp_path):
    """The command is the program the one-thread decoding is for: LanceDB's event loop thread (and tqdm's monitor)
    made it look shared, and it decoded on every thread."""
    import subprocess
    import sys

    script = """
import contextlib, sys, torch
from bindsearch import pipeline
from cli.main import main
decoded = pipeline._one_thread
seen = []

@contextlib.contextmanager
def spy():
    with decoded():
        seen.append(torch.get_num_threads())
        yield

pipeline._one_thread = spy
torch.set_num_threads(2)
sys.argv = ["bindsearch", "index", sys.argv[1], "-c", sys.argv[2], "--model", "random:tiny", "--workers", "0"]
try:
    main()
except SystemExit:
    pass
print(sorted(set(seen)))
"""
    done = subprocess.run([sys.executable, "-c", script, str(media_files["audio"].parent), str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "[1]", done.stdout + done.stderr

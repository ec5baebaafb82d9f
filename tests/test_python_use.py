"""The library as a notebook uses it: arguments of the wrong shape refused in words, vectors that behave as tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bindsearch import CatalogError, Collection, MediaError, classify, load_model, media
from bindsearch.labels import classify_files
from bindsearch.media.writers import write_video
from indexes import GemmSearch, VectorIndex


def test_one_string_where_a_list_is_asked_for_is_refused(tiny_model, media_files) -> None:
    with pytest.raises(TypeError, match=r"\['dog', 'cat'\]"):  # it ranked the letters d, o, g, ',' ...
        classify(tiny_model, media_files["image"], "dog,cat")
    with pytest.raises(TypeError, match="list of files"):
        next(iter(classify_files(tiny_model, str(media_files["image"]), ["dog", "cat"])))
    with pytest.raises(TypeError, match=r"\['image'\]"):  # it loaded every tower
        load_model("random:tiny", device="cpu", modalities="image")


def test_embed_gives_ordinary_tensors(tiny_model, media_files) -> None:
    x = media.load("image", media_files["image"], tiny_model.preprocess["image"])
    vectors = tiny_model.embed("image", x[None])
    assert not vectors.is_inference() and not vectors.requires_grad
    head = torch.nn.Linear(tiny_model.dim, 2)
    head(vectors).sum().backward()  # a linear probe on the vectors: inference tensors refused autograd
    assert head.weight.grad is not None
    vectors += 1  # and in-place updates


def test_home_folder_paths_are_expanded(tiny_model, media_files, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(media_files["image"].parent))
    by_home = tiny_model.encode("image", ["~/photo.png"])
    assert torch.equal(by_home, tiny_model.encode("image", [media_files["image"]]))
    assert media.load("image", "~/photo.png").shape == (3, 224, 224)
    assert classify(tiny_model, "~/photo.png", ["dog", "cat"])


def test_numpy_integers_are_whole_numbers(tiny_model, media_files, tmp_path: Path) -> None:
    col = Collection.open(tmp_path / "c", model=tiny_model)
    assert col.add([media_files["image"].parent], workers=0, batch_size=np.int64(2)).ok
    assert len(col.search(text="a photo", k=np.int64(3))) == 3  # FAISS's bindings refused numpy's int
    assert len(col.search_texts(["a photo"], k=np.int64(2))[0]) == 2
    assert tiny_model.encode("image", [media_files["image"]], batch_size=np.int64(2)).shape == (1, tiny_model.dim)
    with pytest.raises(ValueError, match="batch_size"):  # 0 was the default, silently
        col.add([media_files["image"].parent], workers=0, batch_size=0)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((40, 8)).astype(np.float32)
    index = VectorIndex(8, kind="flat")
    index.add(np.arange(40), vectors)
    assert index.search(vectors[:2], np.int64(3))[1].shape == (2, 3)
    assert GemmSearch(vectors, precision="fp32").search(vectors[:2], np.int64(3))[1].shape == (2, 3)


def test_gemm_search_refuses_nan() -> None:
    vectors = np.random.default_rng(0).standard_normal((70_000, 4)).astype(np.float32)
    vectors[69_000, 1] = np.nan  # in the last block of the norms: Python's max() dropped it there
    with pytest.raises(ValueError, match="NaN"):  # the NaN row was every query's best hit
        GemmSearch(vectors, precision="fp32")
    search = GemmSearch(vectors[:100], precision="fp32")
    with pytest.raises(ValueError, match="NaN"):
        search.search(np.full((1, 4), np.nan, np.float32), 3)


def test_a_collection_deleted_since_it_was_opened_says_so(tiny_model, media_files, tmp_path: Path) -> None:
    col = Collection.open(tmp_path / "c", model=tiny_model)
    col.add([media_files["image"]], workers=0)
    col.delete()
    for use in (lambda: col.add([media_files["image"]], workers=0), col.stats,
                lambda: col.remove([media_files["image"]])):
        with pytest.raises(CatalogError, match="is gone"):  # LanceDB's missing _versions, with a Rust path
            use()
    assert not (tmp_path / "c").exists()  # the writer lock made the folder anew


def test_wrong_types_name_the_argument(tiny_model, media_files, tmp_path: Path) -> None:
    col = Collection.open(tmp_path / "c", model=tiny_model)
    col.add([media_files["image"]], workers=0)
    with pytest.raises(TypeError, match="modality takes"):
        col.search(text="a photo", modality=5)
    with pytest.raises(TypeError, match="file: a path or a list of paths"):
        col.search(files=5)
    with pytest.raises(TypeError, match="under: a path or a list of paths"):
        col.search(text="a photo", under=5)
    with pytest.raises(TypeError, match="^file: a path or a list of paths, not bytes$"):  # iterated as ints
        col.search(files=str(media_files["image"]).encode())
    with pytest.raises(TypeError, match="^index: a path or a list of paths, not dict$"):  # its keys taken as paths
        col.add({str(media_files["image"]): 1}, workers=0)
    with pytest.raises(ValueError, match="use auto, cpu or cuda"):
        load_model("random:tiny", device="mps")


def test_a_video_window_past_the_end_is_an_error(tmp_path: Path) -> None:
    frames = np.stack([np.full((32, 32, 3), 30 * i, np.uint8) for i in range(8)])
    video = write_video(tmp_path / "two_seconds.mp4", frames, fps=4)
    assert media.load("video", video, window=(1.5, 2.0)).shape[1] == 8
    with pytest.raises(MediaError, match="lasts 2.0 s"):  # the last frame, repeated, came back
        media.load("video", video, window=(5, 6))
    with pytest.raises(ValueError, match="finite end"):  # OverflowError from deep inside
        media.load("video", video, window=(0, float("inf")))


def test_a_file_whose_name_starts_with_a_tilde_is_itself(tiny_model, media_files, tmp_path, monkeypatch) -> None:
    """`~draft.png` (an editor's `~$report.docx`) read as the home of a user 'draft.png': "Could not determine home
    directory" (found by a review of the ~ expansion)."""
    from bindsearch.files import absolute, missing_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "~draft.png").write_bytes(media_files["image"].read_bytes())
    assert media.load("image", "~draft.png").shape == (3, 224, 224)
    assert tiny_model.encode("image", ["~draft.png"]).shape == (1, tiny_model.dim)
    assert classify(tiny_model, "~draft.png", ["dog", "cat"])
    assert absolute("~draft.png") == tmp_path / "~draft.png" and missing_path(["~draft.png"]) is None
    assert missing_path(["~nobody-here/x.png"]) == tmp_path / "~nobody-here" / "x.png"

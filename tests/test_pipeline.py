"""Bulk encoding: order kept, bad files reported without losing the batch, same vectors as encode()."""

from __future__ import annotations

import torch

from bindsearch.pipeline import encode_files


def test_bad_file_is_reported_and_the_rest_of_its_batch_kept(tiny_model, media_files, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    video = media_files["video"]
    batches = list(encode_files(tiny_model, "video", [video, empty, video, video], batch_size=3, workers=1))
    assert [len(b.paths) for b in batches] == [2, 1]
    assert [str(e.path) for b in batches for e in b.failures] == [str(empty)]
    expected = tiny_model.encode("video", [video])
    for b in batches:
        assert torch.allclose(b.vectors, expected.expand(len(b.paths), -1), atol=1e-6)


def test_in_process_decoding_gives_the_same_vectors(tiny_model, media_files):
    paths = [media_files["audio"], media_files["audio"]]
    a = torch.cat([b.vectors for b in encode_files(tiny_model, "audio", paths, workers=0)])
    b = torch.cat([b.vectors for b in encode_files(tiny_model, "audio", paths, workers=1)])
    assert torch.equal(a, b)

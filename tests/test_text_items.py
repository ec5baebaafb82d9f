"""Text files as collection items: read and checked like media, searched X->text, reported when cut short."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bindsearch import Collection, media
from bindsearch.media import MediaError, read_text
from bindsearch.media.text import read_text as read_prefix
from bindsearch.world import make_world, read_scenes, same_on, shared_attributes


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BINDSEARCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# -- reading ---------------------------------------------------------------------------------------
def test_read_text_gives_the_words_and_names_every_bad_file(tmp_path):
    good = tmp_path / "note.txt"
    good.write_bytes("\ufeffa  dog\tbarking\n\n at night \n".encode())
    assert read_text(good) == "a dog barking at night"
    assert media.guess_modality(good) == ("text", "extension .txt")

    bad = [("nul.txt", b"abc\x00def", "binary data"),
           ("latin1.txt", "café au lait".encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 3)"),
           ("blank.txt", b" \n\t\n", "empty text file")]
    for name, data, cause in bad:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(MediaError, match=r"^" + str(tmp_path / name).replace(".", r"\.")) as caught:
            read_text(tmp_path / name)
        assert cause in caught.value.cause and "\n" not in str(caught.value)
    with pytest.raises(MediaError, match="no such file"):
        read_text(tmp_path / "missing.txt")
    # UTF-16 with its byte-order mark, as Notepad's "Unicode" and PowerShell 5 save: it was "binary data".
    for encoding in ("utf-16-le", "utf-16-be"):
        (tmp_path / f"{encoding}.txt").write_bytes("\ufeffnotes: café, 狗 barking\r\n".encode(encoding))
        assert read_text(tmp_path / f"{encoding}.txt") == "notes: café, 狗 barking"
    with pytest.raises(ValueError, match="read_text"):
        media.load("text", good)


def test_a_long_file_is_read_only_as_far_as_a_text_tower_could_use(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("é" * 50_000)  # 100,000 bytes of two-byte characters
    words = read_prefix(path, limit=1001)  # stops inside a character: that character is left out, no error
    assert words == "é" * 500


# -- collections -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def captioned(tmp_path_factory) -> tuple[Path, list]:
    """24 BindWorld scenes: each scene's image, and a caption of what an image shows in notes/<id>.txt."""
    root = tmp_path_factory.mktemp("captioned")
    make_world(root / "world", 24, seed=5)
    scenes = read_scenes(root / "world")
    (root / "media" / "notes").mkdir(parents=True)
    for scene in scenes:
        shutil.copy(scene.path(root / "world", "image"), root / "media" / f"{scene.id}.png")
        (root / "media" / "notes" / f"{scene.id}.txt").write_text(scene.modality_captions["image"][0] + "\n")
    return root / "media", scenes


def test_image_to_text_over_indexed_captions_finds_what_the_image_shows(captioned):
    folder, scenes = captioned
    col = Collection.open("notes", model="bindsearch-mini", device="cpu")
    report = col.add([folder])
    assert report.ok and report.new == 48 and col.stats()["modalities"] == {"image": 24, "text": 24}
    by_id = {s.id: s for s in scenes}
    shared = shared_attributes("image", "text")
    agree = []
    for scene in scenes:
        hits = col.search(files=[folder / f"{scene.id}.png"], modality="text", k=1)
        assert [h.modality for h in hits] == ["text"]
        agree.append(same_on(by_id[Path(hits[0].path).stem], scene, shared))
    # bindsearch-mini's image tower reads shape, size, position and colour; a caption names all four.
    assert np.mean(agree) >= 0.8, f"{np.mean(agree):.2f} of images found a caption of what they show"


def test_text_items_come_back_only_when_asked_for(captioned):
    folder, scenes = captioned
    col = Collection.open("notes2", model="bindsearch-mini", device="cpu")
    col.add([folder])
    caption = scenes[0].modality_captions["image"][0]
    # Text to text scores far above text to image: mixed in, the notes would crowd out every picture.
    assert {h.modality for h in col.search(text=caption, k=10)} == {"image"}
    asked = col.search(text=caption, modality="text", k=3)
    assert asked[0].path == str(folder / "notes" / f"{scenes[0].id}.txt") and asked[0].score > 0.99
    only_text = Collection.open("only-notes", model="bindsearch-mini", device="cpu")
    only_text.add([folder / "notes"])
    assert {h.modality for h in only_text.search(text=caption, k=5)} == {"text"}


def test_a_text_file_as_query_is_its_words_and_reuses_its_stored_vector(captioned, tmp_path):
    folder, scenes = captioned
    col = Collection.open("notes3", model="bindsearch-mini", device="cpu")
    col.add([folder / "notes"])
    note = folder / "notes" / f"{scenes[3].id}.txt"
    words = read_text(note)
    by_text = col.query_vector(text=words)
    fresh = Collection.open("notes3")
    assert np.abs(fresh.query_vector(files=[note]) - by_text).max() < 1e-5
    assert fresh._model is None  # indexed: its stored vector, no encoder loaded
    loose = tmp_path / "loose.txt"
    loose.write_text(f"  {words}\n")
    assert np.abs(col.query_vector(files=[loose]) - by_text).max() < 1e-5  # not indexed: read and encoded


def test_text_files_are_incremental_and_long_ones_reported(tmp_path, run_cli):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("a dog barking in the rain")
    (notes / "long.txt").write_text("word " * 100)  # CLIP reads 77 tokens, start and end of text included
    (notes / "blob.txt").write_bytes(b"\x89PNG\x00\x00")
    code, out, err = run_cli("index", notes, "-c", "t", "--model", "random:tiny", "--json")
    report = json.loads(out)
    assert code == 1 and report["new"] == 2
    assert [f["path"] for f in report["failed"]] == [str(notes / "blob.txt")]
    assert report["truncated"] == [str(notes / "long.txt")]

    (notes / "a.txt").write_text("a cat asleep in the sun")
    code, out, err = run_cli("index", notes, "-c", "t")
    assert code == 1 and "0 new, 1 changed, 1 unchanged" in out
    code, out, _ = run_cli("search", "a cat", "-c", "t", "--modality", "text", "-k", "1")
    assert code == 0 and out.rstrip().endswith(f'{notes / "a.txt"}  "a cat asleep in the sun"')  # words shown


def test_a_text_hit_has_its_words_only_while_its_file_is_as_indexed(tmp_path, run_cli):
    """Its score came from the words indexed: once the file changed, Python, the CLI (JSON and human) and the
    server give none (before: Python and the CLI printed the new words beside the old words' score)."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("a dog barking in the rain")
    col = Collection.open("t", model="random:tiny", device="cpu")
    assert col.add([notes], workers=0).ok
    [hit] = col.search("a dog", modality="text", k=1)
    assert hit.words() == "a dog barking in the rain"
    (notes / "a.txt").write_text("a cat asleep in the sun")  # not indexed again
    assert hit.words() is None and col.search("a dog", modality="text", k=1)[0].words() is None
    code, out, _ = run_cli("search", "a dog", "-c", "t", "--modality", "text", "-k", "1", "--json")
    assert code == 0 and json.loads(out)["hits"][0]["text"] is None
    code, out, _ = run_cli("search", "a dog", "-c", "t", "--modality", "text", "-k", "1")
    assert code == 0 and out.rstrip().endswith(str(notes / "a.txt"))  # the path alone, no words
    col.add([notes], workers=0)
    assert col.search("a dog", modality="text", k=1)[0].words() == "a cat asleep in the sun"


def test_classify_ranks_labels_for_a_text_file(tmp_path):
    from bindsearch import load_model
    from bindsearch.labels import classify

    note = tmp_path / "note.txt"
    model = load_model("bindsearch-mini", device="cpu", modalities=[])
    labels = ["a big crimson disc", "a little navy box"]  # neither is the file's wording
    note.write_text("a large red circle")
    assert classify(model, note, labels, templates=False)[0][0] == "a big crimson disc"
    note.write_text("a small blue square")  # the file's words, read now, decide
    ranking = classify(model, note, labels, templates=False)
    assert ranking[0][0] == "a little navy box" and ranking[0][1] > 0.5


def test_a_long_text_hit_shows_its_start_not_all_that_indexing_read(tmp_path):
    """200 long notes made a search's JSON 13 MB: 64 KiB of words a hit."""
    from bindsearch.hits import WORDS_BYTES

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "long.txt").write_text("the quick brown fox " * 5000)  # 100 KB
    col = Collection.open("long", model="random:tiny", device="cpu")
    col.add([notes], workers=0)
    words = col.search("a fox", modality="text", k=1)[0].words()
    assert words.startswith("the quick brown fox") and len(words.encode()) <= WORDS_BYTES < 100_000
    # Its first 4 KiB blank: its words, not None (shown as a file changed since it was indexed).
    (notes / "long.txt").write_text(" " * 5000 + "a fox at the gate")
    col.add([notes], workers=0)
    assert col.search("a fox", modality="text", k=1)[0].words() == "a fox at the gate"


def test_a_query_text_of_megabytes_is_tokenized_from_its_start_alone(tiny_model, monkeypatch):
    """A 17 MB JSON text held serve's one search lock for 7 s while all of it was tokenized; a tower reads 77
    tokens."""
    seen = []
    tokenize = type(tiny_model).tokenize
    monkeypatch.setattr(type(tiny_model), "tokenize", lambda self, texts: seen.extend(map(len, texts)) or
                        tokenize(self, texts))
    long = " " * 100 + "a dog barking " * 1_000_000
    np.testing.assert_allclose(tiny_model.encode("text", [long]), tiny_model.encode("text", [long.strip()[:5000]]),
                               atol=1e-6)
    assert max(seen) <= 64 << 10


def test_a_text_hit_is_printed_as_written_not_run_by_the_terminal(tmp_path, run_cli):
    """A note's clear-screen and colour codes, and a right-to-left override, went to the terminal raw."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "ansi.txt").write_text("\x1b[2J\x1b[31mRED\x1b[0m a dog \u202e barking")
    run_cli("index", tmp_path / "notes", "-c", "ansi", "--model", "random:tiny")
    code, out, _ = run_cli("search", "a dog", "-c", "ansi", "--modality", "text")
    assert code == 0 and "\x1b" not in out and "\u202e" not in out and "\\x1b[2J" in out and "\\u202e" in out

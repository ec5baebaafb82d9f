"""Collections: incremental, crash-safe ingest; search by text, by files, fused; the CLI around it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bindsearch import Collection, CollectionError
from bindsearch.media.writers import write_depth_png, write_image
from indexes import Catalog, CatalogError, CollectionLock, EncoderMismatchError, LockTimeout

ROOT = Path(__file__).parents[1]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BINDSEARCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _messy_folder(root: Path) -> dict[str, Path]:
    from conftest import make_media

    good = {}
    for i in range(2):
        for modality, path in make_media(root / f"set{i}", seed=i).items():
            good[f"{modality}{i}"] = path
    (root / "broken").mkdir()
    (root / "broken" / "empty.mp4").touch()
    wav = good["audio0"].read_bytes()
    (root / "broken" / "cut.wav").write_bytes(wav[: len(wav) // 3])
    (root / "broken" / "notes.png").write_text("this is text, not a picture")
    (root / "broken" / "gone.mp4").symlink_to(root / "nowhere.mp4")  # unreadable: a dangling link
    (root / "README.pdf").write_text("not media: ignored, not an error")
    (root / "also").symlink_to(root / "set0", target_is_directory=True)  # not followed: no file twice, no loop
    return good


@pytest.fixture
def cli(run_cli):
    """`cli(*args)` -> (exit code, stdout, stderr); `cli.ok(*args)` -> stdout of a command that must succeed."""

    class Cli:
        def __call__(self, *args):
            return run_cli(*args)

        def ok(self, *args):
            code, out, err = run_cli(*args)
            assert code == 0, err
            return out

        def json(self, *args):
            return json.loads(self.ok(*args, "--json"))

    return Cli()


def test_index_keeps_good_files_names_bad_ones_and_is_incremental(tmp_path, home, cli):
    good = _messy_folder(tmp_path / "media")
    code, out, _ = cli("index", tmp_path / "media", "-c", "mixed", "--model", "random:tiny", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["new"] == len(good) and report["changed"] == 0
    failed = {Path(f["path"]).name for f in report["failed"]}
    assert failed == {"empty.mp4", "cut.wav", "notes.png", "gone.mp4"}
    assert all(f["error"] and "\n" not in f["error"] for f in report["failed"])
    skipped = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert skipped.keys() == {"README.pdf", "also"} and "a link to a folder, not followed" in skipped["also"]
    rules = {(g["modality"], g["rule"]) for g in report["guessed"]}
    assert ("depth", "image inside a 'depth' folder") in rules

    second = json.loads(cli("index", tmp_path / "media", "-c", "mixed", "--json")[1])
    assert (second["new"], second["changed"], second["unchanged"]) == (0, 0, len(good))

    write_image(good["image0"], np.full((48, 64, 3), 200, np.uint8))
    good["depth1"].unlink()
    third = json.loads(cli("index", tmp_path / "media", "-c", "mixed", "--json")[1])
    assert (third["new"], third["changed"], third["removed"]) == (0, 1, 1)

    catalog = Catalog.open(home / "collections" / "mixed")
    paths = [item.path for item in catalog.items()]
    assert len(paths) == len(set(paths)) == len(good) - 1


def test_killed_ingest_resumes_with_every_file_exactly_once(tmp_path, home):
    folder = tmp_path / "many"
    rng = np.random.default_rng(0)
    for i in range(200):
        write_image(folder / f"{i:03d}.png", rng.integers(0, 255, (384, 384, 3), dtype=np.uint8))
    env = {**os.environ, "BINDSEARCH_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "index", str(folder), "-c", "big", "--model",
                             "random:tiny", "--batch-size", "4", "--workers", "1", "--commit-every", "0"],
                            cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    directory = home / "collections" / "big"
    deadline = time.monotonic() + 120
    count = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if (directory / "items.lance").exists():
            try:
                count = len(Catalog.open(directory))
            except Exception:
                count = 0
            if count >= 8:
                break
        time.sleep(0.02)
    assert proc.poll() is None, "indexing finished before it could be killed; the test needs a slower ingest"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(Catalog.open(directory))
    assert 0 < partial < 200

    col = Collection.open("big")
    report = col.add([folder])
    assert report.new == 200 - partial and report.unchanged == partial and not report.failed
    paths = [item.path for item in col.catalog.items()]
    assert len(paths) == len(set(paths)) == 200
    assert len(col.search(files=[folder / "007.png"], k=5)) == 5


def test_ingest_commits_every_few_seconds_and_compacts_a_catalog_left_in_pieces(tmp_path, tiny_model):
    from indexes.catalog import COMPACT_FRAGMENTS

    rng = np.random.default_rng(0)
    for i in range(COMPACT_FRAGMENTS + 8):
        write_image(tmp_path / "pics" / f"{i:02d}.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    few = Collection.open("few-commits", model=tiny_model)
    before = few.catalog.version
    few.add([tmp_path / "pics"], batch_size=1, workers=0, commit_seconds=600)
    assert few.catalog.version == before + 1  # forty batches, one commit
    many = Collection.open("many-commits", model=tiny_model)
    before = many.catalog.version
    report = many.add([tmp_path / "pics"], batch_size=1, workers=0, commit_seconds=0)
    assert many.catalog.version > before + COMPACT_FRAGMENTS  # a commit per batch...
    assert many.catalog.fragments() == 1  # ...and the pieces they left merged at the end
    assert report.new == len(many.catalog) == COMPACT_FRAGMENTS + 8
    query = tmp_path / "pics" / "07.png"  # compacted, the catalog answers as the one written in one go
    assert [h.path for h in many.search(files=[query], k=5)] == [h.path for h in few.search(files=[query], k=5)]


def test_a_file_with_a_new_mtime_and_the_same_bytes_is_hashed_once(tmp_path, tiny_model, monkeypatch):
    import bindsearch.ingest as ingest_module

    picture = write_image(tmp_path / "pics" / "a.png", np.full((32, 32, 3), 90, np.uint8))
    col = Collection.open("retimed", model=tiny_model)
    col.add([tmp_path / "pics"], workers=0)
    os.utime(picture, (1_000_000, 1_000_000))  # copied, checked out again: the same bytes, a new mtime
    hashed = []
    real_hash = ingest_module.content_hash
    monkeypatch.setattr(ingest_module, "content_hash", lambda path, *a: hashed.append(path) or real_hash(path))
    assert col.add([tmp_path / "pics"]).unchanged == 1 and hashed == [picture]
    assert [i.mtime for i in col.catalog.items()] == [1_000_000]
    assert col.add([tmp_path / "pics"]).unchanged == 1 and hashed == [picture]  # not hashed again


def test_a_file_rewritten_just_after_its_hash_is_seen_as_changed_next_time(tmp_path, tiny_model, monkeypatch):
    import bindsearch.ingest as ingest_module

    picture = write_image(tmp_path / "pics" / "a.png", np.full((32, 32, 3), 90, np.uint8))
    col = Collection.open("race", model=tiny_model)
    col.add([tmp_path / "pics"], workers=0)
    os.utime(picture, (1_000_000, 1_000_000))  # a new mtime: the next run hashes the file...
    real_hash = ingest_module.content_hash

    def hash_then_rewrite(path, *args):
        digest = real_hash(path)
        write_image(picture, np.full((32, 32, 3), 200, np.uint8))  # ...and it changes right after, same size
        return digest

    monkeypatch.setattr(ingest_module, "content_hash", hash_then_rewrite)
    assert col.add([tmp_path / "pics"]).unchanged == 1  # the bytes it hashed were the indexed ones
    monkeypatch.setattr(ingest_module, "content_hash", real_hash)
    assert col.add([tmp_path / "pics"]).changed == 1  # the mtime recorded was the one hashed, not the rewrite's


def test_rows_stored_under_another_spelling_give_way_to_the_one_spelling(tmp_path, tiny_model):
    picture = write_image(tmp_path / "pics" / "a.png", np.full((32, 32, 3), 90, np.uint8))
    (tmp_path / "other").mkdir()
    col = Collection.open("spelled", model=tiny_model)
    col.add([picture], workers=0)
    row = next(col.catalog.items())
    # As versions before the paths were normalised stored a file indexed from a sibling folder:
    old = replace(row, id=None, path=str(tmp_path / "other" / ".." / "pics" / "a.png"))
    col.catalog.add([old], col.catalog.get_vectors([row.id]))
    col.catalog.delete([row.id])
    report = col.add([tmp_path / "other" / ".." / "pics"])
    assert report.removed == 1 and report.new == 1
    assert [i.path for i in col.catalog.items()] == [str(picture)]
    assert col.remove([tmp_path / "pics"]) == 1 and len(col.catalog) == 0


def test_dot_dot_after_a_link_to_a_folder_leads_where_the_shell_goes(tmp_path):
    from bindsearch.collection import absolute

    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "real" / "photos").mkdir()
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "link").symlink_to(tmp_path / "real" / "sub", target_is_directory=True)
    assert absolute(tmp_path / "cwd" / "link" / ".." / "photos") == tmp_path / "real" / "photos"
    assert absolute(tmp_path / "cwd" / "link" / "x.png") == tmp_path / "cwd" / "link" / "x.png"  # links kept


def test_a_collection_deleted_and_made_again_is_not_taken_for_the_old_one(tmp_path, tiny_model, media_files):
    col = Collection.open(tmp_path / "again", model=tiny_model)
    col.add([media_files["image"]], workers=0)
    col.search(text="a dog", k=1)  # holds the old collection's index
    shutil.rmtree(tmp_path / "again")
    Collection.open(tmp_path / "again", model=tiny_model).add([media_files["audio"]], workers=0)
    with pytest.raises(CatalogError, match="was deleted and created again since it was opened; open it again"):
        col.search(text="a dog", k=1)
    assert [h.path for h in Collection.open(tmp_path / "again").search(text="a dog", k=5)] == [
        str(media_files["audio"])]


def test_exact_search_equals_brute_force_over_the_catalog(tmp_path, tiny_model):
    from conftest import make_media

    for i in range(4):
        make_media(tmp_path / f"s{i}", seed=i)
    col = Collection.open("exact", model=tiny_model)
    col.add([tmp_path], workers=0)
    ids, vectors = zip(*col.catalog.iter_vectors(), strict=True)
    ids, vectors = np.concatenate(ids), np.concatenate(vectors)
    query = col.query_vector(text="a video of waves")
    hits = col.search(text="a video of waves", k=7)
    order = np.argsort(-(vectors @ query), kind="stable")[:7]
    assert [h.id for h in hits] == ids[order].tolist()
    assert np.allclose([h.score for h in hits], (vectors @ query)[order], atol=1e-5)

    video_hits = col.search(text="a video of waves", modality="video", k=3)
    assert {h.modality for h in video_hits} == {"video"} and len(video_hits) == 3


def test_file_queries_fuse_and_exclude_themselves(tmp_path, tiny_model):
    from conftest import make_media

    files = [make_media(tmp_path / f"s{i}", seed=i) for i in range(3)]
    col = Collection.open("fuse", model=tiny_model)
    col.add([tmp_path], workers=0)
    depth, image = files[0]["depth"], files[0]["image"]
    hits = col.search(files=[depth], modality="infrared", k=3)  # emergent depth -> infrared
    assert {h.modality for h in hits} == {"infrared"}
    fused = col.query_vector(files=[depth, image])
    a, b = col.query_vector(files=[depth]), col.query_vector(files=[image])
    expected = (a + b) / np.linalg.norm(a + b)
    assert np.allclose(fused, expected, atol=1e-6)
    assert str(depth) not in {h.path for h in col.search(files=[depth], k=20)}
    # A depth map outside the collection, named .png: --file-modality says what it is.
    outside = tmp_path.parent / "q.png"
    outside.write_bytes(depth.read_bytes())
    q1 = col.query_vector(files=[outside], file_modality="depth")
    assert np.allclose(q1, a, atol=1e-5)


def test_python_misuse_is_a_typed_error_saying_what_was_expected(tmp_path, tiny_model, run_cli):
    """`load_model(123)` and `search(text=123)` were "'int' object is not iterable"; `at="0:00.5"` was "'<' not
    supported" though search --at and serve take it, `at=nan` was searched, and an unknown modality a bare
    ValueError."""
    from conftest import make_media

    from bindsearch import load_model

    files = make_media(tmp_path / "media")
    col = Collection.open(tmp_path / "misuse", model=tiny_model)
    col.add([tmp_path / "media"], workers=0)
    with pytest.raises(TypeError, match=r"a model spec is a str \('languagebind:video_ft'.* not int$"):
        load_model(123)
    with pytest.raises(TypeError, match="a model spec is a str .* not int$"):
        load_model(["random:tiny", 3])
    for text, kind in ((123, "int"), (["a dog", 3], "int"), (b"a dog", "bytes")):
        with pytest.raises(TypeError, match=f"^text takes a str or a list of str, not {kind}$"):
            col.search(text=text)
    video = files["video"]
    assert np.array_equal(col.query_vector(files=[video], at="0:00.5"), col.query_vector(files=[video], at=0.5))
    for at in (float("nan"), -1, "soon", True):
        with pytest.raises(CollectionError, match=r"^at: '\S+' is not a time: give seconds \(80\) or m:ss"):
            col.search(files=[video], at=at)
    with pytest.raises(CollectionError, match="^unknown modality 'bogus'; expected one of image, video"):
        col.search(text="a dog", modality="bogus")
    # The same mistake in the other places a modality is named: it was a bare ValueError there.
    with pytest.raises(CollectionError, match="^unknown modality 'bogus'"):
        col.search(files=[video], file_modality="bogus")
    with pytest.raises(CollectionError, match="^unknown modality 'bogus'"):
        col.add([video], modality="bogus")
    for misuse in (lambda: col.search(text="a dog", modality=["image", 5]), lambda: col.add([video], modality=5),
                   lambda: col.search(files=[video], file_modality=5)):  # AttributeError: 'int' has no 'lower'
        with pytest.raises(TypeError, match="^a modality is a name such as 'video', not int$"):
            misuse()
    code, _, err = run_cli("search", "a dog", "-c", tmp_path / "misuse", "--modality", "bogus")
    assert code == 1 and err.strip() == ("error: unknown modality 'bogus'; expected one of image, video, audio, "
                                         "depth, infrared, text")


def test_searches_read_an_index_from_disk_once_until_the_collection_changes(tiny_model, media_files, monkeypatch):
    from indexes import VectorIndex

    col = Collection.open("held", model=tiny_model)
    col.add([media_files["image"], media_files["audio"]], workers=0)  # leaves its indexes cached, and held
    loads = []
    real_load = VectorIndex.load.__func__
    monkeypatch.setattr(VectorIndex, "load", classmethod(lambda cls, *a, **kw: loads.append(a) or real_load(cls, *a,
                                                                                                             **kw)))
    scans = []  # which modalities a catalog holds is a scan of a column: once per version, not per search
    real_modalities = Catalog.modalities
    monkeypatch.setattr(Catalog, "modalities", lambda self: scans.append(1) or real_modalities(self))
    first = col.search(text="a dog", k=2)
    assert [col.search(text="a dog", k=2) for _ in range(3)] == [first] * 3 and loads == [] and len(scans) == 1
    col.add([media_files["video"]], workers=0)  # a commit: the held indexes are brought up to date, once
    assert len(loads) == 2  # image and audio from their caches (video is new: built, not loaded)
    assert {h.modality for h in col.search(text="a dog", k=3)} == {"image", "audio", "video"} and len(loads) == 2
    other = Collection.open("held")  # as another process sees it: its first search reads the caches, once
    assert [other.search(text="a dog", k=3) for _ in range(2)] == [col.search(text="a dog", k=3)] * 2
    assert len(loads) == 5


def test_a_file_gone_while_indexing_does_not_stop_the_run(tmp_path, tiny_model):
    rng = np.random.default_rng(0)
    files = [write_image(tmp_path / "pics" / f"{i}.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
             for i in range(5)]

    def delete_two(done: int, total: int) -> None:
        if done == 1:  # one batch committed: the next is decoded already (a worker reads ahead), the last is not
            files[1].unlink()
            files[-1].unlink()

    col = Collection.open("vanish", model=tiny_model)
    report = col.add([tmp_path / "pics"], batch_size=1, workers=1, progress=delete_two)
    # Each vanished file was either embedded before it went (described before it was decoded) or named as gone.
    assert report.new + len(report.failed) == 5 and set(e.path for e in report.failed) <= {files[1], files[-1]}
    assert all("gone or unreadable while indexing" in e.cause or "no such file" in e.cause for e in report.failed)
    assert col.add([tmp_path / "pics"]).ok  # the next run forgets what is gone
    assert sorted(i.path for i in col.catalog.items()) == [str(f) for f in (files[0], *files[2:4])]


def _pictures(folder: Path, names: list[str], seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    return [write_image(folder / name, rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for name in names]


def test_files_indexed_by_name_that_a_folder_walk_leaves_out_stay(tmp_path, tiny_model):
    """A hidden file or a file behind a link to a folder, indexed by name, exists: re-indexing the folder they are
    in does not take them for gone."""
    shown, hidden = _pictures(tmp_path / "w", ["a.png", ".hidden.png"])
    (real,) = _pictures(tmp_path / "real", ["s.png"], seed=1)
    (tmp_path / "w" / "linked").symlink_to(tmp_path / "real", target_is_directory=True)
    col = Collection.open("walked", model=tiny_model)
    assert col.add([hidden, tmp_path / "w" / "linked" / "s.png"], workers=0).new == 2
    report = col.add([tmp_path / "w"], workers=0)
    assert (report.new, report.removed) == (1, 0)
    assert sorted(i.path for i in col.catalog.items()) == sorted(
        [str(shown), str(hidden), str(tmp_path / "w" / "linked" / "s.png")])
    hidden.unlink()
    assert col.add([tmp_path / "w"], workers=0).removed == 1  # gone for real: forgotten


def test_a_dead_link_or_a_file_that_no_longer_decodes_leaves_no_stale_hit(tmp_path, tiny_model):
    good, target, changing = _pictures(tmp_path / "w", ["good.png", "target.png", "changing.png"])
    link = tmp_path / "w" / "link.png"
    link.symlink_to(target)
    col = Collection.open("stale", model=tiny_model)
    assert col.add([tmp_path / "w"], workers=0).new == 4
    target.unlink()  # the link now points nowhere
    changing.write_bytes(os.urandom(300))  # overwritten with bytes that are no image
    report = col.add([tmp_path / "w"], workers=0)
    assert report.removed == 3 and report.new == 0  # target's row, the link's, and the changed file's old one
    causes = {e.path.name: e.cause for e in report.failed}
    assert causes["link.png"].endswith("which does not exist: restore its target or delete the link")
    assert causes["changing.png"].endswith("; the vector of its earlier content was removed")
    assert [i.path for i in col.catalog.items()] == [str(good)]


def test_a_folder_that_is_empty_now_keeps_its_rows_and_says_so(tmp_path, tiny_model):
    nas = tmp_path / "media" / "nas"  # a drive mounted below the folder indexed
    files = _pictures(nas / "2024", [f"{i}.png" for i in range(10)])
    (kept,) = _pictures(tmp_path / "media" / "local", ["c.png"], seed=1)
    col = Collection.open("mounted", model=tiny_model)
    col.add([tmp_path / "media"], workers=0)
    saved = [f.read_bytes() for f in files]
    shutil.rmtree(nas / "2024")  # as the mount point looks once the drive is unmounted: there, and empty
    for roots in ([tmp_path / "media"], [tmp_path / "media", nas]):  # nested roots agree
        report = col.add(roots, workers=0)
        assert report.ok and report.removed == 0 and len(col.catalog) == 11
        assert report.warnings == [
            f"{nas} is empty now, but 10 indexed file(s) were in it (an unmounted drive?); they were kept: if they "
            f"are gone, run: bindsearch remove {nas} -c {col.directory}"]
    (nas / "2024").mkdir()
    files[0].write_bytes(saved[0])  # back, but not all: the others are really gone
    report = col.add([tmp_path / "media"], workers=0)
    assert report.ok and (report.unchanged, report.removed) == (2, 9) and not report.warnings
    (one,) = _pictures(tmp_path / "media" / "single", ["only.png"], seed=3)
    col.add([tmp_path / "media"], workers=0)
    one.unlink()  # the one picture of its folder, deleted: gone, not a drive out of reach
    report = col.add([tmp_path / "media"], workers=0)
    assert report.ok and report.removed == 1 and not report.warnings
    shutil.rmtree(nas)  # a folder deleted with its files: they are gone
    report = col.add([tmp_path / "media"], workers=0)
    assert report.ok and report.removed == 1 and not report.warnings
    assert [i.path for i in col.catalog.items()] == [str(kept)]
    usb = _pictures(tmp_path / "usb", ["a.png", "b.png", "c.png"], seed=4)  # a folder given itself: kept at any count
    col.add([tmp_path / "usb"], workers=0)
    for f in usb:
        f.unlink()
    report = col.add([tmp_path / "usb"], workers=0)
    assert report.removed == 0 and "3 indexed file(s) were in it (an unmounted drive?)" in report.warnings[0]


def test_a_run_that_waits_for_the_lock_lists_the_folder_once_it_has_it(tmp_path, tiny_model):
    import threading

    first, gone = _pictures(tmp_path / "w", ["first.png", "gone.png"])
    col = Collection.open("waiting", model=tiny_model)
    reports = []
    with CollectionLock(col.directory).acquire():
        waiter = threading.Thread(target=lambda: reports.append(col.add([tmp_path / "w"], workers=0, wait=30)))
        waiter.start()
        time.sleep(1.0)  # the waiter is blocked on the lock by now
        gone.unlink()
        (added,) = _pictures(tmp_path / "w", ["added.png"], seed=2)
    waiter.join(timeout=60)
    assert reports and reports[0].ok and reports[0].new == 2
    assert sorted(i.path for i in col.catalog.items()) == [str(added), str(first)]


def test_a_second_writer_is_refused_while_searches_still_work(tmp_path, tiny_model, media_files):
    col = Collection.open("locked", model=tiny_model)
    col.add([media_files["image"]], workers=0)
    with CollectionLock(col.directory).acquire():
        with pytest.raises(LockTimeout, match="is being written elsewhere in this process"):
            Collection.open("locked").add([media_files["audio"]], workers=0)
        assert len(col.search(text="anything", k=1)) == 1


def test_other_encoder_is_refused_and_missing_collection_explained(media_files):
    from bindsearch import load_model

    Collection.open("enc", model="random:tiny").add([media_files["image"]], workers=0)
    fixture = Path(__file__).parent / "fixtures" / "parity" / "image"
    with pytest.raises(EncoderMismatchError, match="was built with encoder random:tiny"):
        Collection.open("enc", model=load_model(str(fixture)))
    with pytest.raises(CollectionError, match="bindsearch index PATH -c nothing"):
        Collection.open("nothing", create=False)
    media = media_files["image"].parent  # a folder of other files: told so, not told to index into it
    with pytest.raises(CollectionError, match="holds other files, so no collection can be made there"):
        Collection.open(media, create=False)


def test_cli_refuses_bad_options_and_files_in_one_line_before_creating_anything(tmp_path, cli, media_files):
    code, _, err = cli("index", media_files["image"], "-c", "typo", "--model", "random:tiny", "--modality", "smell")
    assert code == 2 and err.strip() == ("error: unknown modality 'smell'; expected one of image, video, audio, "
                                         "depth, infrared, text")
    code, _, err = cli("index", media_files["image"], "-c", "typo", "--model", "random:tiny", "--device", "gpu")
    assert code == 2 and err.strip() == "error: unknown device 'gpu'; use auto, cpu or cuda"
    code, _, err = cli("index", media_files["image"], "-c", "typo", "--model", "random:tiny", "--window", "0.3")
    assert code == 2 and "a window must be 0 (whole files) or at least 0.5 s long" in err
    assert "typo" not in cli.ok("list")
    latin = tmp_path / "labels.txt"
    latin.write_bytes("café\nthé\n".encode("latin-1"))
    code, _, err = cli("classify", media_files["image"], "--labels-file", latin, "--model", "random:tiny")
    assert code == 2 and f"{latin}: not UTF-8 text" in " ".join(err.replace("│", " ").split())  # boxed, wrapped


def test_cli_search_classify_info_remove(tmp_path, cli):
    from conftest import make_media

    files = make_media(tmp_path / "m")
    cli.ok("index", tmp_path / "m", "-c", "cli", "--model", "random:tiny")
    text = cli.json("search", "a dog barking", "-c", "cli", "--modality", "audio")
    assert [h["path"] for h in text["hits"]] == [str(files["audio"])]
    fused = cli.json("search", "warm", "-c", "cli", "--file", files["depth"], "--file", files["image"],
                     "--modality", "infrared")
    assert [h["modality"] for h in fused["hits"]] == ["infrared"]
    with pytest.MonkeyPatch.context() as here:  # a query file named relative to the cwd is echoed absolute
        here.chdir(files["depth"].parent)
        relative = cli.json("search", "-c", "cli", "--file", files["depth"].name, "--modality", "infrared")
        assert relative["query"]["files"] == [str(files["depth"])]
    probs = cli.json("classify", files["audio"], "--labels", "dog,cat,rain")
    assert sorted(p["label"] for p in probs["labels"]) == ["cat", "dog", "rain"]
    assert abs(sum(p["probability"] for p in probs["labels"]) - 1) < 1e-5
    # Labels as written (X->text over a list of sentences): softmax of the scaled cosines to the labels themselves.
    from bindsearch import load_model

    plain = cli.json("classify", files["audio"], "--labels", "dog,cat,rain", "--no-templates", "--model", "random:tiny")
    tiny = load_model("random:tiny", device="cpu")
    labels = tiny.encode("text", ["dog", "cat", "rain"]).double().numpy()
    cosines = labels @ tiny.encode("audio", [files["audio"]]).double().numpy()[0]
    assert float(tiny.logit_scales["audio"]) == pytest.approx(np.log(1 / 0.07), abs=1e-4)  # CLIP's initial scale
    logits = cosines / 0.07
    want = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    got = {p["label"]: p["probability"] for p in plain["labels"]}
    assert [got[label] for label in ("dog", "cat", "rain")] == pytest.approx(want.tolist(), abs=1e-5)
    # Several files in one run: a ranking per file (one JSON line each), the unreadable one named and skipped.
    (tmp_path / "cut.wav").write_bytes(files["audio"].read_bytes()[:100])
    code, out, err = cli("classify", files["audio"], tmp_path / "cut.wav", files["image"], "--labels", "dog,cat,rain",
                         "--top", "2", "--json")
    rankings = {json.loads(line)["file"]: json.loads(line)["labels"] for line in out.splitlines()}
    assert code == 1 and set(rankings) == {str(files["audio"]), str(files["image"])}
    alone = probs["labels"][:2]  # the same as the file alone
    assert [p["label"] for p in rankings[str(files["audio"])]] == [p["label"] for p in alone]
    assert [p["probability"] for p in rankings[str(files["audio"])]] == pytest.approx([p["probability"] for p in alone])
    assert err.count("\n") == 1 and "cut.wav" in err and err.rstrip().endswith("skipped")
    info = cli.json("info", "-c", "cli")
    assert info["items"] == 5 and info["encoder"]["spec"] == "random:tiny"
    with pytest.MonkeyPatch.context() as env:  # the collection from the environment alone (before: the help page)
        env.setenv("BINDSEARCH_COLLECTION", "cli")
        code, out, _ = cli("info")
        assert code == 0 and out.startswith("cli  (")
    # Reading a collection's catalog loads no model: info (and list) never import torch.
    check = ("import sys\nfrom cli.main import main\nsys.argv = ['bindsearch', 'info', '-c', 'cli']\n"
             "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code\n"
             "assert 'torch' not in sys.modules, 'info imported torch'\n")
    run = subprocess.run([sys.executable, "-c", check], env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "files    5" in run.stdout, run.stderr[-2000:]
    assert cli.json("remove", files["video"], "-c", "cli")["removed"] == 1
    assert cli.json("list")["collections"] == ["cli"]
    code, _, err = cli("search", "x", "-c", "nope")
    assert code == 1 and err.strip().count("\n") == 0 and "no collection 'nope'" in err
    code, _, err = cli("index", tmp_path / "typo", "-c", "fresh", "--model", "random:tiny")
    assert code == 1 and "typo does not exist; give files or folders to index" in err
    assert "fresh" not in cli.json("list")["collections"]  # a mistyped path leaves no empty collection behind

    # Many queries, one model load: each line's hits are those of the same query alone.
    (tmp_path / "queries.txt").write_text("a dog barking\n\nwarm light\n")
    lines = cli.ok("search", "-c", "cli", "--queries", tmp_path / "queries.txt", "-k", "3", "--json").splitlines()
    assert [json.loads(line)["query"]["text"] for line in lines] == ["a dog barking", "warm light"]
    for line in lines:
        alone = cli.json("search", json.loads(line)["query"]["text"], "-c", "cli", "-k", "3")
        assert [h["id"] for h in json.loads(line)["hits"]] == [h["id"] for h in alone["hits"]]
    listing = cli.ok("search", "-c", "cli", "--queries", tmp_path / "queries.txt", "-k", "1")
    assert listing.splitlines()[0] == "# a dog barking" and listing.count("# ") == 2
    # Saved by Notepad, a byte-order mark first: no part of the first query, from a file or standard input.
    (tmp_path / "bom.txt").write_text("a dog barking\nwarm light\n", encoding="utf-8-sig")
    lines = cli.ok("search", "-c", "cli", "--queries", tmp_path / "bom.txt", "-k", "3", "--json").splitlines()
    assert [json.loads(line)["query"]["text"] for line in lines] == ["a dog barking", "warm light"]
    with pytest.MonkeyPatch.context() as env:
        env.setattr("sys.stdin", io.StringIO("\ufeffa dog barking\n"))
        line = cli.ok("search", "-c", "cli", "--queries", "-", "-k", "3", "--json")
        assert json.loads(line)["query"]["text"] == "a dog barking"
    code, _, err = cli("search", "x", "-c", "cli", "--queries", tmp_path / "queries.txt")
    assert code == 2
    code, _, err = cli("search", "-c", "cli", "--queries", tmp_path / "missing.txt")
    assert code == 1 and err.count("\n") == 1 and "missing.txt: no such file; give --queries a file of queries" in err
    code, _, err = cli("classify", files["image"], "--labels-file", tmp_path / "missing.txt", "--model",
                       "random:tiny")
    assert code == 1 and err == (f"error: {tmp_path / 'missing.txt'}: no such file; give --labels-file a file of "
                                 "labels, one per line\n")
    code, out, err = cli("search", "-c", "cli", "--queries", "/dev/null")  # there, and empty: was "no such file"
    assert code == 0 and not out and err == "warning: /dev/null holds no query (no line with words): nothing searched\n"
    (tmp_path / "latin.txt").write_bytes("café\n".encode("latin-1"))
    code, _, err = cli("search", "-c", "cli", "--queries", tmp_path / "latin.txt")
    assert code == 2 and "latin.txt: not UTF-8 text" in " ".join(err.replace("│", " ").split())
    code, _, _ = cli("search", "-c", "cli")
    assert code == 2


def test_index_in_bf16_with_compiled_towers_finds_what_fp32_finds(tmp_path, cli):
    """`index --dtype bfloat16 --compile` stores vectors that score the collection as fp32 ones do."""
    folder = tmp_path / "pics"
    for i in range(6):
        write_image(folder / f"p{i}.png", np.random.default_rng(i).integers(0, 255, (48, 64, 3), np.uint8))
    fast = cli.json("index", folder, "-c", "fast", "--model", "random:tiny", "--dtype", "bfloat16", "--compile")
    assert fast["new"] == 6 and not fast["failed"]
    cli.json("index", folder, "-c", "exact", "--model", "random:tiny")
    from closeness import assert_same_vectors

    stored = {}
    for name in ("fast", "exact"):
        catalog = Collection.open(name).catalog
        paths = {i.id: i.path for i in catalog.items()}
        ids, vectors = map(np.concatenate, zip(*catalog.iter_vectors(), strict=True))
        stored[name] = dict(zip([paths[int(i)] for i in ids], vectors, strict=True))
    assert stored["fast"].keys() == stored["exact"].keys()
    paths = sorted(stored["exact"])
    assert_same_vectors([stored["fast"][p] for p in paths], [stored["exact"][p] for p in paths])
    ranked = {name: [h["path"] for h in cli.json("search", "-c", name, "--file", folder / "p3.png", "-k", "3")["hits"]]
              for name in ("fast", "exact")}
    assert ranked["fast"] == ranked["exact"] and len(ranked["fast"]) == 3


def test_help_and_list_answer_without_loading_torch_or_the_index_layer(tmp_path):
    """A command that needs no model imports none: `--help` and `list` stay quick however heavy torch is."""
    check = ("import sys\nfrom cli.main import main\n"
             "for argv in (['--help'], ['search', '--help'], ['list', '--json']):\n"
             "    sys.argv = ['bindsearch', *argv]\n"
             "    try:\n        main()\n    except SystemExit as exit:\n        assert not exit.code, exit.code\n"
             "heavy = sorted({'torch', 'lancedb', 'faiss'} & set(sys.modules))\n"
             "print('heavy:', heavy)\n")
    env = {**os.environ, "BINDSEARCH_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("heavy: []"), run.stdout[-500:]
    assert '"collections": []' in run.stdout


def test_searches_and_re_runs_load_only_the_towers_they_need(tmp_path, monkeypatch):
    """A collection of several LanguageBind checkpoints reads, for a text query, the text tower alone; a query file
    of another modality adds that tower; a re-run of ingest over unchanged files loads no tower, and a changed
    file loads its own."""
    import warnings

    import torch
    from conftest import make_media

    from bindsearch.models import LanguageBindModel

    def small_vocabulary(self, texts):  # the fixtures read 1000 token ids, not CLIP's BPE
        ids = torch.zeros(len(texts), 77, dtype=torch.int64)
        for row, text in enumerate(texts):
            words = [1 + sum(map(ord, w)) % 997 for w in text.split()]
            ids[row, : len(words) + 1] = torch.tensor([*words, 999])  # 999: the largest id ends the text
        return ids

    monkeypatch.setattr(LanguageBindModel, "tokenize", small_vocabulary)
    fixtures = ROOT / "tests" / "fixtures" / "parity"
    files = make_media(tmp_path / "m")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixtures' text towers differ (random weights); the first one's is used
        built = Collection.open(tmp_path / "c", model=f"{fixtures / 'depth'},{fixtures / 'image'}")
        built.add([files["image"]])
        col = Collection.open(tmp_path / "c")
        assert col.search(text="a warm room", k=5) == built.search(text="a warm room", k=5)
        assert col.encoder(()).modalities == ("text",)  # no image or depth tower was read for that query
        by_depth = col.search(files=[files["depth"]], k=5)  # not indexed: encoded with the depth tower
        assert col.encoder(()).modalities == ("text", "depth")
        assert by_depth == built.search(files=[files["depth"]], k=5)
        assert col.model.modalities == ("text", "depth", "image")

        again = Collection.open(tmp_path / "c")
        assert again.add([files["image"], files["audio"]]).unchanged == 1 and again._model is None
        assert again.add([files["depth"]]).new == 1 and again.encoder(()).modalities == ("text", "depth")
        report = again.add([files["audio"]])  # no audio tower in this spec: named and skipped, as before
        assert report.skipped and "has no audio encoder" in report.skipped[0][1]
        assert report.unencodable == {"audio": [files["audio"]]}  # told apart from files that are not media


def test_a_collection_whose_creation_was_killed_is_created_anew(tmp_path, home, tiny_model):
    """A run killed while it created a collection leaves a catalog folder with no version committed: that is no
    collection (not listed; `index` without --model picks the default model), and the next run creates it."""
    from bindsearch.home import list_collections

    (home / "collections" / "half" / "items.lance").mkdir(parents=True)
    assert list_collections() == []
    with pytest.raises(CollectionError, match="no collection 'half'"):
        Collection.open("half")
    picture = write_image(tmp_path / "pics" / "a.png", np.full((32, 32, 3), 90, np.uint8))
    created = Collection.open("half", default_model="random:tiny")  # as `index` without --model opens it
    assert created.add([picture], workers=0).new == 1
    assert list_collections() == ["half"]
    again = Collection.open("half", default_model="no-such-model")  # a collection that exists keeps its own
    assert again._model is None and len(again.catalog) == 1
    assert again.search("a picture", k=1)[0].path == str(picture)


def test_a_checkpoint_folder_is_recorded_by_its_absolute_path(tmp_path, monkeypatch, media_files):
    """A collection indexed with `--model runs/m` opens from any folder (before: only from the one it was indexed
    in); one recorded relative by an earlier version opens given the same weights by another path, and is
    recorded by that path from then on."""
    from bindsearch import load_model
    from bindsearch.models.specs import MINI_DIR

    shutil.copytree(MINI_DIR, tmp_path / "runs" / "m")
    monkeypatch.chdir(tmp_path)
    col = Collection.open(tmp_path / "c", model="runs/m", device="cpu")
    assert col.catalog.encoder.name == str(tmp_path / "runs" / "m")
    col.add([media_files["image"]], workers=0)
    monkeypatch.chdir(media_files["image"].parent)
    hits = Collection.open(tmp_path / "c").search(files=[media_files["depth"]], k=1)  # loads runs/m from here
    assert [h.path for h in hits] == [str(media_files["image"])]

    monkeypatch.chdir(tmp_path)
    old = load_model("runs/m", device="cpu")
    old.spec = "runs/m"  # as bindsearch 0.3.0 recorded it
    Collection.open(tmp_path / "old", model=old).add([media_files["image"]], workers=0)
    monkeypatch.chdir(media_files["image"].parent)
    again = Collection.open(tmp_path / "old", model=load_model(str(tmp_path / "runs" / "m"), device="cpu"))
    assert again.catalog.encoder.name == str(tmp_path / "runs" / "m")  # before: refused, "built with runs/m"
    assert Collection.open(tmp_path / "old").catalog.encoder.name == str(tmp_path / "runs" / "m")
    (media_files["image"].parent / "bindsearch-mini").mkdir()  # a folder named like a model does not shadow it
    assert load_model("bindsearch-mini", device="cpu").spec == "bindsearch-mini"


def test_files_that_are_not_media_are_counted_by_kind():
    """An iPhone export's sidecars (.AAE) must not be the only example beside photos that were skipped too."""
    from bindsearch.report import IngestReport

    report = IngestReport(skipped=[(Path("a/IMG_1.AAE"), "unknown extension .AAE"),
                                   (Path("a/IMG_2.aae"), "unknown extension .aae"),
                                   (Path("a/notes.xmp"), "unknown extension .xmp"),
                                   (Path("a/clip.wav"), "no audio tower")],
                          unencodable={"audio": [Path("a/clip.wav")]})
    lines = report.messages("random:tiny")
    assert "skipped 3 file(s) that are not media: 2 .aae, 1 .xmp (e.g. a/IMG_1.AAE: unknown extension .AAE)" in lines
    assert any(line.startswith("warning: skipped 1 audio file(s): model random:tiny has no audio") for line in lines)
    assert report.to_json("c")["skipped"][3] == {"path": "a/clip.wav", "reason": "no audio tower"}


def test_delete_removes_the_whole_collection(tmp_path, home, tiny_model):
    from bindsearch.home import list_collections

    picture = write_image(tmp_path / "pics" / "a.png", np.full((32, 32, 3), 90, np.uint8))
    col = Collection.open("gone", model=tiny_model)
    assert col.add([picture], workers=0).new == 1 and list_collections() == ["gone"]
    col.delete()
    assert list_collections() == [] and not col.directory.exists() and picture.exists()
    with pytest.raises(CollectionError, match="no collection 'gone'"):
        Collection.open("gone")


def test_index_with_nothing_changed_imports_no_torch(tmp_path, home, cli):
    """A cron job re-running `index` over a library: torch (1.5 s to import) and the model only when something
    changed. bindsearch-mini's towers are read from its config."""
    for i in range(3):
        write_image(tmp_path / "pics" / f"{i}.png", np.full((32, 32, 3), 40 * i, np.uint8))
    assert cli.json("index", tmp_path / "pics", "-c", "cron", "--model", "bindsearch-mini")["new"] == 3
    check = ("import sys\nfrom cli.main import main\n"
             f"sys.argv = ['bindsearch', 'index', {str(tmp_path / 'pics')!r}, '-c', 'cron', '--json']\n"
             "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code\n"
             "assert 'torch' not in sys.modules, 'index imported torch'\n")
    run = subprocess.run([sys.executable, "-c", check], env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and '"unchanged": 3' in run.stdout, run.stderr[-2000:]


def test_sigterm_stops_serve_as_ctrl_c_does(tmp_path, home, tiny_model):
    """`kill` (systemd, a container's stop) killed the process on the spot: no socket closed, and an `index`'s
    decoder process outlived it. It now leaves as Ctrl-C does."""
    import signal

    picture = write_image(tmp_path / "pics" / "a.png", np.full((32, 32, 3), 90, np.uint8))
    Collection.open("term", model=tiny_model).add([picture], workers=0)
    run = [sys.executable, "-c", "import sys; from cli.main import console; sys.argv[0] = 'bindsearch'; console()"]
    server = subprocess.Popen([*run, "serve", "-c", "term", "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert server.stderr.readline().startswith("serving term")
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0  # closed as after Ctrl-C (by default: -15, killed)
    finally:
        server.kill()


@pytest.mark.parametrize("when", ["before", "after_in_parent"])
def test_sigterm_while_the_decoders_are_forked_stops_index(tmp_path, home, when: str):
    """A SIGTERM that came while the DataLoader forked a decoder process raised its KeyboardInterrupt in one of the
    fork's hooks, where Python drops it: `index` ran on to the end (4 runs in 30 with SIGTERM sent as the first
    decoder appeared). Raised again in the next frame, between the fork and multiprocessing's note of its child, it
    left a decoder running after `index` returned and printed torch's traceback. Sent here from a hook of the first
    decoder's fork, before it and after it, the exact points."""
    for i in range(24):
        write_image(tmp_path / "pics" / f"{i}.png", np.full((32, 32, 3), 10 * i, np.uint8))
    script = ("import os, signal, sys\nfrom cli.main import console\n"
              "def during_fork():\n"
              "    if sys._getframe(1).f_code.co_name == '_launch':  # multiprocessing's fork, not a subprocess's\n"
              "        os.kill(os.getpid(), signal.SIGTERM)\n"
              f"os.register_at_fork({when}=during_fork)\n"
              "sys.argv[0] = 'bindsearch'\nconsole()\n")
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        command = subprocess.Popen([sys.executable, "-c", script, "index", str(tmp_path / "pics"), "-c", "term",
                                    "--model", "random:tiny", "--workers", "2"], stdout=out, stderr=err,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    try:
        command.wait(timeout=120)
        with pytest.raises(ProcessLookupError):  # no decoder left in its session
            os.killpg(command.pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(command.pid, signal.SIGKILL)
    stderr, stdout = (tmp_path / "err").read_text(), (tmp_path / "out").read_text()
    assert command.returncode == 130 and "interrupted: what was committed is kept" in stderr, stderr[-2000:]
    assert "Exception ignored" not in stderr and "24 new" not in stdout, stderr[-2000:]


def test_sigterm_to_the_whole_process_group_stops_index_without_a_traceback(tmp_path, home):
    """`timeout`, systemd's stop and a terminal's hangup signal the whole process group: the decoders died of the
    SIGTERM, and under its "interrupted" line `index` printed torch's "DataLoader worker is killed by signal"
    traceback (5 runs in 6). Sent here once the first batch is embedded, the decoders at work."""
    for i in range(40):
        write_image(tmp_path / "pics" / f"{i}.png", np.full((32, 32, 3), 5 * i, np.uint8))
    # From another process: torch's decoders take a SIGTERM from their parent as its own shutdown.
    stop = "import os, signal, sys; os.killpg(int(sys.argv[1]), signal.SIGTERM)"
    script = ("import os, subprocess, sys\nimport bindsearch.pipeline as pipeline\nfrom cli.main import console\n"
              "embed = pipeline._encode_batches\n"
              "def first_then_stop(*args):\n"
              "    for i, batch in enumerate(embed(*args)):\n"
              "        if i == 0:\n"
              f"            subprocess.run([sys.executable, '-c', {stop!r}, str(os.getpgid(0))])\n"
              "        yield batch\n"
              "pipeline._encode_batches = first_then_stop\n"
              "sys.argv[0] = 'bindsearch'\nconsole()\n")
    done = subprocess.run([sys.executable, "-c", script, "index", str(tmp_path / "pics"), "-c", "group", "--model",
                           "random:tiny", "--workers", "2", "--batch-size", "8"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    assert done.returncode == 130 and "interrupted: what was committed is kept" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr[-2000:]


def test_ties_at_the_kth_hit_come_back_by_id_at_every_k(tmp_path):
    """Copies of two photos, interleaved: the index's heap chose which of the tied copies of the second filled the
    last place (id 3 at k=5, where id 1 is due), so the first page changed with k. More rows are fetched until none
    left unfetched ties the k-th."""
    rng = np.random.default_rng(5)
    a, b = (rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(2))
    for i in range(7):
        write_image(tmp_path / "photos" / f"{i}.png", a if i % 2 == 0 else b)
    col = Collection.open(tmp_path / "col", model="random:tiny", device="cpu")
    assert col.add([tmp_path / "photos"], workers=0).new == 7
    by_name = {Path(i.path).name: i.id for i in col.catalog.items()}
    query = col.catalog.get_vectors([by_name["0.png"]])
    pages = {k: [h.id for h in col.search_vectors(query, "image", k=k)[0]] for k in range(1, 8)}
    order = [by_name[f"{i}.png"] for i in (0, 2, 4, 6, 1, 3, 5)]  # a's copies, then b's, each by id
    for k, ids in pages.items():
        assert ids == order[:k], k


def test_a_search_reads_many_rows_only_for_ties(tmp_path, monkeypatch):
    """A row past the k-th hit may tie it: one search of 4k rows looks (as before ties were seen to); only copies
    still tied then fetch up to `_TIED_ROWS` in one more search. Every plain search had paid 1,024 rows."""
    import bindsearch.collection as collection_module
    from indexes import Item

    col = Collection.open(tmp_path / "rows", model="random:tiny", device="cpu")
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((600, col.model.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.vstack([vectors, np.repeat(vectors[:1], 300, 0)])  # 300 copies of the first
    col.catalog.add([Item(path=f"/p/{i:04d}.png", modality="image", size=1, mtime=0.0, content_hash=str(i))
                     for i in range(len(vectors))], vectors)
    asked = []
    search_exact = collection_module.search_exact

    def counted(snapshot, index, queries, k):
        asked.append(k)
        return search_exact(snapshot, index, queries, k)

    monkeypatch.setattr(collection_module, "search_exact", counted)
    col.search_vectors(vectors[1:6], "image", k=10)
    assert asked == [10, 40]
    asked.clear()
    hits = col.search_vectors(vectors[:1], "image", k=10)[0]
    assert asked == [10, 40, 900] and [h.path for h in hits] == [f"/p/{i:04d}.png" for i in (0, *range(600, 609))]


def test_threads_searching_under_folders_while_another_adds_files(tmp_path, tiny_model):
    """The caches of folder indexes changed under other threads' searches ('OrderedDict mutated during
    iteration'), and threads saving one index's cache at once deleted each other's files."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(0)
    for folder in ("a", "b"):
        for i in range(6):
            write_image(tmp_path / folder / f"{i}.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    col = Collection.open("threads", model=tiny_model)
    col.add([tmp_path / "a", tmp_path / "b"], workers=0)
    query = col.query_vector(text="a red circle")

    def search(i: int) -> list:
        return col.search_vector(query, k=3, under=tmp_path / "ab"[i % 2])

    with ThreadPoolExecutor(4) as pool:
        searches = [pool.submit(lambda: [search(i) for i in range(30)]) for _ in range(4)]
        for i in range(4):  # commits under the searches: each changes every cache key
            write_image(tmp_path / "a" / f"new{i}.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
            col.add([tmp_path / "a"], workers=0, commit_seconds=0)
        for done in searches:
            assert all(len(hits) == 3 for hits in done.result())
    assert [h.id for h in search(0)] == [h.id for h in Collection.open("threads").search_vector(query, k=3,
                                                                                               under=tmp_path / "a")]


def test_vectors_and_k_given_from_python_are_checked_and_a_gone_modality_leaves_no_cache(tmp_path, tiny_model):
    rng = np.random.default_rng(1)
    write_image(tmp_path / "pics" / "a.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "n.txt").write_text("a note\n")
    col = Collection.open("checked", model=tiny_model)
    col.add([tmp_path], workers=0)
    unit_query = col.query_vector(text="a picture")
    hit = col.search_vector(unit_query, k=1)[0]
    # A query that is not unit is made one: its score is the cosine, as documented.
    assert col.search_vector(5 * unit_query, k=1)[0].score == pytest.approx(hit.score, abs=1e-6)
    assert col.search_vector(list(unit_query), k=1)[0].id == hit.id
    with pytest.raises(CollectionError, match="zero or holds NaN"):
        col.search_vector(np.zeros_like(unit_query))
    with pytest.raises(CollectionError, match=r"must be \(n, \d+\)"):
        col.search_vector(unit_query[:-1])
    for k in ("3", 0, 2.5, True):
        with pytest.raises(CollectionError, match="k must be a whole number"):
            col.search_vector(unit_query, k=k)
    with pytest.raises(CollectionError, match="text query 1 of 2 is empty"):
        col.search_texts(["a picture", "  "])
    caches = col.directory / "indexes"
    assert {p.name for p in caches.glob("*.faiss")} == {"image.faiss", "text.faiss"}
    (tmp_path / "notes" / "n.txt").unlink()
    col.add([tmp_path], workers=0)
    assert {p.name for p in caches.glob("*.faiss")} == {"image.faiss"}


def test_a_video_container_that_changes_what_it_holds_is_guessed_again(tmp_path, tiny_model):
    """A voice memo replaced by a video kept its audio row for good beside the new video row; a video replaced by
    sound alone failed ('no video stream') and was missing for a run."""
    from test_media import write_voice_memo

    from bindsearch.media.writers import write_video

    folder = tmp_path / "phone"
    folder.mkdir()
    clip = folder / "clip.mp4"
    col = Collection.open("reguess", model=tiny_model)

    def indexed_as() -> list[str]:
        return sorted(i.modality for i in col.catalog.items())

    write_voice_memo(clip)
    col.add([folder], workers=0)
    assert indexed_as() == ["audio"]
    ids = [i.id for i in col.catalog.items()]
    for when, write, kind in ((2e9, lambda: write_video(clip, np.zeros((4, 32, 32, 3), np.uint8)), "video"),
                              (2.1e9, lambda: write_voice_memo(clip), "audio")):
        write()
        os.utime(clip, (when, when))
        report = col.add([folder], workers=0)
        assert (report.failed, report.changed, indexed_as()) == ([], 1, [kind])
        assert [i.id for i in col.catalog.items()] == ids  # the row itself, taken by the new guess
        assert col.add([folder], workers=0).unchanged == 1


def test_a_missing_collection_given_as_a_path_is_told_the_path_to_give(tmp_path, monkeypatch):
    """A Path("c1") from Python is the folder ./c1; `-c c1` names the collection c1 in the home, another one."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CollectionError, match=rf"no collection 'c1' at {tmp_path}/c1; .* -c {tmp_path}/c1`"):
        Collection.open(Path("c1"), create=False)
    with pytest.raises(CollectionError, match=r"-c c1`"):
        Collection.open("c1", create=False)


def test_a_query_by_an_indexed_file_reads_one_version_while_a_writer_removes_it(tmp_path, tiny_model, monkeypatch):
    """Its rows were looked up in one version and read in the next, from which a writer had removed them: a
    KeyError, a 500 from the server."""
    rng = np.random.default_rng(2)
    for i in range(3):
        write_image(tmp_path / "pics" / f"{i}.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    query = tmp_path / "pics" / "0.png"
    Collection.open("versions", model=tiny_model).add([tmp_path / "pics"], workers=0)
    reader, writer = Collection.open("versions"), Collection.open("versions")
    lookup = Catalog.lookup_paths
    removed = []

    def looked_up_then_removed(self, paths):
        found = lookup(self, paths)
        if not removed:
            removed.append(writer.remove([query]))
        return found

    monkeypatch.setattr(Catalog, "lookup_paths", looked_up_then_removed)
    hits = reader.search(files=[query], k=5)
    assert removed == [1] and str(query) not in {h.path for h in hits} and len(hits) == 2


def test_a_video_indexed_as_its_sound_gains_its_video_row_from_a_plain_run(tmp_path, tiny_model):
    """--modality adds a modality: an unchanged video indexed by --modality audio is read as video too by the
    next plain run (guessing it again had kept it as audio alone)."""
    import av

    clip = tmp_path / "talk" / "clip.mp4"
    clip.parent.mkdir()
    with av.open(str(clip), mode="w") as container:
        video = container.add_stream("libx264", rate=8)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        sound = container.add_stream("aac", rate=16000)
        for i in range(16):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 16 * i, np.uint8), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode())
        tone = av.AudioFrame.from_ndarray(np.zeros((1, 32000), np.float32), format="fltp", layout="mono")
        tone.sample_rate = 16000
        container.mux([*sound.encode(tone), *sound.encode()])
    col = Collection.open("both", model=tiny_model)
    col.add([clip], modality="audio", workers=0)
    report = col.add([clip.parent], workers=0)
    assert (report.new, report.unchanged) == (1, 1)
    assert sorted(i.modality for i in col.catalog.items()) == ["audio", "video"]


def test_a_search_never_takes_the_held_index_back_a_version(tmp_path, tiny_model, monkeypatch):
    """A search pinned before its query was encoded reached the indexes after another had moved them to the next
    commit, and took them back a version, saving the cache each way."""
    import bindsearch.collection as collection_module

    rng = np.random.default_rng(3)
    for i in range(3):
        write_image(tmp_path / "pics" / f"{i}.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    col = Collection.open("forward", model=tiny_model)
    col.add([tmp_path / "pics"], workers=0)
    writer = Collection.open("forward")
    opened, query = [], Collection._query

    def slow_query(self, *args):  # while this query is encoded, a writer commits and another search runs
        out = query(self, *args)
        if not opened:
            write_image(tmp_path / "pics" / "new.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
            writer.add([tmp_path / "pics"], workers=0)
            col.search(text="another", k=1)
        return out

    def recorded(snapshot, modality, **options):
        opened.append(snapshot.version)
        return open_index(snapshot, modality, **options)

    open_index = collection_module.open_index
    monkeypatch.setattr(collection_module, "open_index", recorded)
    monkeypatch.setattr(Collection, "_query", slow_query)
    col.search(text="a picture", k=1)
    assert opened and opened == sorted(opened)


def test_a_picture_keeps_its_folder_guess_whichever_folder_is_given(tmp_path, home, tiny_model):
    """A depth map below a `depth` folder is depth when that folder's parent is given to `index`. Given beside a
    folder below it, it was guessed from the innermost one (a photo); given that folder alone later, the unchanged
    depth map gained an image row for good, and image searches returned it."""
    scans = tmp_path / "scans"
    depth_map = write_depth_png(scans / "depth" / "kitchen" / "a.png", np.full((32, 32), 1500.0))
    write_image(scans / "photo.png", np.full((32, 32, 3), 90, np.uint8))
    both = Collection.open(tmp_path / "both", model=tiny_model)
    both.add([scans, depth_map.parent], workers=0)
    assert sorted(i.modality for i in both.catalog.items()) == ["depth", "image"]

    col = Collection.open(tmp_path / "col", model=tiny_model)
    col.add([scans], workers=0)
    for given in (depth_map, depth_map.parent):  # the file alone, the folder below `depth`
        report = col.add([given], workers=0)
        assert (report.new, report.unchanged) == (0, 1)
    write_depth_png(depth_map, np.full((32, 32), 2500.0))  # changed: embedded again as what it is indexed as
    report = col.add([depth_map.parent], workers=0)
    assert report.changed == 1 and list(report.guessed) == [("depth", "its modality when indexed")]
    assert sorted(i.modality for i in col.catalog.items()) == ["depth", "image"]
    col.add([depth_map], modality="infrared", workers=0)  # --modality adds one
    assert sorted(i.modality for i in col.catalog.items() if i.path == str(depth_map)) == ["depth", "infrared"]

    # The other way round: read as photos from the folder below `depth` (or by --modality image: the catalog
    # cannot tell), then given the folder above, they stay photos: a photo taken for a depth map was deleted.
    below = Collection.open(tmp_path / "below", model=tiny_model)
    below.add([depth_map.parent], workers=0)
    report = below.add([scans], workers=0)
    assert (report.new, report.unchanged, report.removed) == (1, 1, 0)
    assert sorted(i.modality for i in below.catalog.items()) == ["image", "image"]


def test_a_moved_folder_keeps_its_vectors_and_leaves_no_rows_behind(tmp_path, home, cli, monkeypatch):
    """A folder renamed or moved was embedded again (hours of video, for a rename) and its old rows stayed as hits
    for files that are gone, every hit twice. Files new under their path whose bytes are indexed under a path where
    no file is any more take over those rows, ids and vectors; a copy is embedded, its original kept."""
    import bindsearch.pipeline as pipeline

    rng = np.random.default_rng(5)
    trip = tmp_path / "media" / "trip"
    for i in range(3):
        write_image(trip / f"{i}.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    write_image(tmp_path / "media" / "other.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    assert cli.json("index", tmp_path / "media", "-c", "mv", "--model", "random:tiny")["new"] == 4
    before = {Path(i.path).name: (i.id, i.content_hash) for i in Catalog.open(home / "collections" / "mv").items()}
    embedded = []
    encode_files = pipeline.encode_files
    monkeypatch.setattr(pipeline, "encode_files", lambda model, kind, files, *a, **k: embedded.extend(files) or
                        encode_files(model, kind, files, *a, **k))

    trip.rename(tmp_path / "media" / "trip 2024")  # renamed inside the folder given
    report = cli.json("index", tmp_path / "media", "-c", "mv")
    assert (report["new"], report["moved"], report["removed"], report["unchanged"]) == (0, 3, 0, 1)
    (tmp_path / "media" / "trip 2024").rename(tmp_path / "elsewhere")  # moved out of it, and indexed there
    assert cli.json("index", tmp_path / "elsewhere", "-c", "mv")["moved"] == 3
    shutil.copy(tmp_path / "elsewhere" / "0.png", tmp_path / "copy.png")  # a copy: its original is still there
    assert cli.json("index", tmp_path / "copy.png", "-c", "mv")["new"] == 1
    assert [p.name for p in embedded] == ["copy.png"]
    after = {i.path: (i.id, i.content_hash) for i in Catalog.open(home / "collections" / "mv").items()}
    assert {p: after[str(tmp_path / "elsewhere" / p)] for p in ("0.png", "1.png", "2.png")} == \
        {p: before[p] for p in ("0.png", "1.png", "2.png")}
    assert sorted(after) == sorted(map(str, [tmp_path / "media" / "other.png", tmp_path / "copy.png",
                                             *(tmp_path / "elsewhere" / f"{i}.png" for i in range(3))]))
    hits = cli.json("search", "-c", "mv", "--file", tmp_path / "elsewhere" / "1.png", "-k", "9")["hits"]
    assert all(Path(h["path"]).exists() for h in hits)

    # A folder given that is gone, with files indexed from it, says how to drop them.
    code, _, err = cli("index", tmp_path / "media" / "trip 2024", "-c", "mv")
    assert code == 1 and "does not exist" in err and "index it where it is now" not in err
    shutil.rmtree(tmp_path / "elsewhere")
    code, _, err = cli("index", tmp_path / "elsewhere", "-c", "mv")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "3 file(s) indexed from it are in mv" in err and f"bindsearch remove {tmp_path / 'elsewhere'} -c mv" in err


def test_a_collection_inside_the_media_is_not_walked_and_a_bare_name_points_to_one_here(tmp_path, home, cli,
                                                                                       monkeypatch):
    """`-c ./col` inside the folder indexed listed the catalog's own files as 'not media', more every run; and
    `-c col` where ./col is a collection made or named another one under the home."""
    write_image(tmp_path / "media" / "a.png", np.full((32, 32, 3), 40, np.uint8))
    monkeypatch.chdir(tmp_path / "media")
    cli.ok("index", ".", "-c", "./col", "--model", "random:tiny")
    for _ in range(2):
        code, out, err = cli("index", ".", "-c", "./col")
        assert code == 0 and "not media" not in err and "0 new, 0 changed, 1 unchanged" in out
    for command in (("index", ".", "-c", "col"), ("search", "a", "-c", "col")):
        code, _, err = cli(*command)
        assert code == 1 and "./col here is one: give -c ./col" in err
    assert not (home / "collections" / "col").exists()


def test_a_k_far_beyond_the_collection_asks_for_no_more_than_it_holds(tmp_path, tiny_model):
    """-k 10000000 over 30 files took 2.7 GB and 32 s, -k 1000000000 was killed for memory, k=10**15 from Python
    raised numpy's MemoryError: every round asked the index for k rows."""
    for i in range(3):
        write_image(tmp_path / "pics" / f"{i}.png", np.full((32, 32, 3), 60 * i, np.uint8))
    col = Collection.open(tmp_path / "col", model=tiny_model)
    col.add([tmp_path / "pics"], workers=0)
    assert len(col.search(text="a picture", k=10**15)) == 3
    assert len(col.search(files=[tmp_path / "pics" / "0.png"], k=2**62, every_window=True)) == 2


def test_an_indexed_file_that_cannot_be_read_now_still_queries_by_its_vector(tmp_path, home, cli, monkeypatch):
    """`search --file` refused an indexed, unchanged file the user may not read ('is not readable'), where the
    library and serve query by its stored vector."""
    for i in range(2):
        write_image(tmp_path / "m" / f"{i}.png", np.full((32, 32, 3), 100 * i, np.uint8))
    cli.ok("index", tmp_path / "m", "-c", "locked", "--model", "random:tiny")
    locked = str(tmp_path / "m" / "0.png")
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **k: os.fspath(path) != locked and access(path, mode, **k))
    hits = cli.json("search", "-c", "locked", "--file", locked)["hits"]
    assert [Path(h["path"]).name for h in hits] == ["1.png"]


def test_a_query_file_leaves_out_its_other_names_not_its_copies(tmp_path, tiny_model):
    """A link to the query file (or a hard link) indexed beside it came back as the query's own best hit, +1.0;
    a copy of its bytes is another file, and stays."""
    rng = np.random.default_rng(9)
    photo = write_image(tmp_path / "m" / "photo.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    write_image(tmp_path / "m" / "other.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    (tmp_path / "m" / "link.png").symlink_to(photo)
    os.link(photo, tmp_path / "m" / "hard.png")
    shutil.copy(photo, tmp_path / "m" / "copy.png")
    col = Collection.open(tmp_path / "col", model=tiny_model)
    col.add([tmp_path / "m"], workers=0)
    for query in (photo, tmp_path / "m" / "link.png"):
        assert sorted(Path(h.path).name for h in col.search(files=[query], k=5)) == ["copy.png", "other.png"]
    outside = shutil.copy(photo, tmp_path / "not-indexed.png")  # not indexed: encoded, and still no name of it
    (tmp_path / "m" / "link-out.png").symlink_to(outside)
    col.add([tmp_path / "m"], workers=0)
    assert "link-out.png" not in {Path(h.path).name for h in col.search(files=[outside], k=9)}


def test_a_backup_copy_of_a_file_on_an_unmounted_drive_does_not_take_its_row(tmp_path, home, cli):
    """A card's folder empty (unmounted) and one of its photos copied elsewhere: the copy took the photo's row, the
    card fell under the count of files that keeps an emptied folder's rows, and the other nine were deleted (all
    embedded again when the card came back)."""
    rng = np.random.default_rng(6)
    card = tmp_path / "media" / "card"
    for i in range(10):
        write_image(card / f"{i}.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    cli.ok("index", tmp_path / "media", "-c", "cards", "--model", "random:tiny")
    card.rename(tmp_path / "away")
    card.mkdir()  # the mount point, empty
    (tmp_path / "media" / "backup").mkdir()
    shutil.copy(tmp_path / "away" / "4.png", tmp_path / "media" / "backup" / "4.png")
    report = cli.json("index", tmp_path / "media", "-c", "cards")
    assert (report["new"], report["moved"], report["removed"]) == (1, 0, 0)
    assert [w.split(",")[0] for w in report["warnings"]] == [f"1 file(s) indexed in {card}", f"{card} is empty now"]
    assert "10 indexed file(s) were in it (an unmounted drive?)" in report["warnings"][1]
    card.rmdir()
    (tmp_path / "away").rename(card)
    assert cli.json("index", tmp_path / "media", "-c", "cards")["unchanged"] == 11
    # Every file of a folder moved out of it (an inbox emptied into an archive): moved, though the folder is empty.
    (tmp_path / "media" / "archive").mkdir()
    for f in card.iterdir():
        f.rename(tmp_path / "media" / "archive" / f.name)
    report = cli.json("index", tmp_path / "media", "-c", "cards")
    assert (report["new"], report["moved"], report["removed"], report["warnings"]) == (0, 10, 0, [])
    # A file indexed as two modalities moves with both rows, and an emptied folder of it is all there (the count of
    # its files was per modality: held for good); one moved where it would be guessed otherwise keeps its modality.
    archive, inbox = tmp_path / "media" / "archive", tmp_path / "media" / "inbox"
    inbox.mkdir()
    write_depth_png(inbox / "both.png", np.full((32, 32), 1200.0))
    cli.ok("index", inbox, "-c", "cards")
    cli.ok("index", inbox / "both.png", "-c", "cards", "--modality", "depth")
    for f in inbox.iterdir():
        f.rename(archive / f.name)
    report = cli.json("index", tmp_path / "media", "-c", "cards")
    assert (report["new"], report["moved"], report["removed"], report["warnings"]) == (0, 1, 0, [])
    rows = Catalog.open(home / "collections" / "cards").lookup_paths([str(archive / "both.png")])
    assert sorted(i.modality for i in rows[str(archive / "both.png")]) == ["depth", "image"]


def test_a_large_file_hashes_its_size_and_its_start_middle_and_end(tmp_path):
    """Above `full_below` the hash reads 4 MiB at the start, middle and end, and the size: an edit in the middle of
    a long video changes it; two files of zeros of different lengths differ."""
    from bindsearch.files import content_hash

    big = tmp_path / "big.bin"
    big.write_bytes(bytes(13 << 20))
    before = content_hash(big, full_below=1 << 20)
    with open(big, "r+b") as f:
        f.seek(13 << 19)  # the middle
        f.write(b"edited")
    assert content_hash(big, full_below=1 << 20) != before
    (tmp_path / "longer.bin").write_bytes(bytes(14 << 20))
    (tmp_path / "zeros.bin").write_bytes(bytes(13 << 20))
    assert content_hash(tmp_path / "longer.bin", full_below=1 << 20) != content_hash(tmp_path / "zeros.bin",
                                                                                      full_below=1 << 20)


def test_search_vectors_leaves_out_a_path_however_it_is_spelt(tmp_path, tiny_model, media_files, monkeypatch):
    """`exclude` took only the catalog's own str: a Path, or a relative spelling, was passed over in silence."""
    col = Collection.open(tmp_path / "spelt", model=tiny_model)
    assert col.add([media_files["image"], media_files["infrared"], media_files["depth"]], workers=0).ok
    query = col.query_vector(files=[media_files["image"]])
    top = col.search_vector(query, k=1)[0].path
    assert top == str(media_files["image"])
    monkeypatch.chdir(media_files["image"].parent)
    for spelt in (Path(top), top, media_files["image"].name, [media_files["image"].name], {Path(top)},
                  np.array([top])):  # an array: "truth value ... is ambiguous"
        assert top not in [h.path for h in col.search_vector(query, k=5, exclude=spelt)], spelt
        assert len(col.search_vectors(query[None], k=5, exclude=spelt)[0]) == 2
    assert len(col.search_vector(query, k=5, exclude=np.array([], dtype=str))) == 3

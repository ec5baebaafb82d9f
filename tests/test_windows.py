"""Long video and audio as windows: decoding a window, cutting a file, and finding the moment a query describes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pytest
import torch

from bindsearch import Collection, media
from bindsearch.collection import CollectionError
from bindsearch.media import MediaError, WindowPlan, format_clock, parse_clock
from bindsearch.media.audio import _read_with_av, read_audio
from bindsearch.media.video import _read_av, _read_decord, read_frames
from bindsearch.media.writers import write_audio, write_video
from bindsearch.world import make_reel, make_world, read_scenes, same_on, shared_attributes
from indexes import Catalog, EncoderInfo, Item
from indexes.catalog import _LEGACY_NAMES, _schema


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BINDSEARCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# -- planning and decoding -------------------------------------------------------------------------
def test_long_files_are_cut_into_equal_windows_that_cover_them():
    plan = WindowPlan(10.0)
    assert plan.windows(30.0) is None  # up to three windows long: whole
    assert plan.windows(None) is None  # length unknown: whole
    windows = plan.windows(95.0)
    assert len(windows) == 10 and windows[0] == (0.0, 9.5) and windows[-1] == (85.5, 95.0)
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))
    assert WindowPlan(0).windows(3600.0) is None
    assert len(WindowPlan(2.0, longer_than=0).windows(5.0)) == 2  # 2.5 s each
    for bad in (-1, 0.1, float("nan")):
        with pytest.raises(ValueError, match=r"0 \(whole files\) or at least 0.5 s long"):
            WindowPlan(bad)
    assert [format_clock(t) for t in (0, 9.5, 75.5, 3600, 3725)] == ["0:00", "0:09.5", "1:15.5", "1:00:00",
                                                                        "1:02:05"]
    assert [parse_clock(t) for t in ("80", "80.5", "1:20", "1:02:03.5", " 0:05 ")] == [80, 80.5, 80, 3723.5, 5]
    for bad in ("", "soon", "1:75", "-3", "1::2", "1:2:3:4", "nan", "-0:30", "-0"):
        with pytest.raises(ValueError, match="is not a time"):
            parse_clock(bad)


def test_a_video_window_decodes_the_frames_shown_during_it(tmp_path):
    frames = np.zeros((48, 32, 32, 3), np.uint8)
    frames[:] = (np.arange(48) * 5)[:, None, None, None]  # frame i is grey level 5 i
    path = write_video(tmp_path / "ramp.mp4", frames, fps=4)  # 12 s
    assert media.duration("video", path) == pytest.approx(12.0)
    levels = read_frames(path, 8, (2.0, 4.0))[:, 0, 0, 0].astype(int)
    assert np.abs(levels - np.arange(8, 16) * 5).max() <= 3  # frames 8..15, within H.264's error
    last = read_frames(path, 8, (10.0, 12.0))[:, 0, 0, 0].astype(int)
    assert np.abs(last - np.arange(40, 48) * 5).max() <= 3
    mkv = write_video(tmp_path / "ramp.mkv", frames, fps=4)  # a container that does not count its frames
    for video in (path, mkv):
        for window in ((2.0, 4.0), (10.0, 12.0), (3.3, 9.7)):  # PyAV, where decord refuses a file: seeks, same frames
            assert np.array_equal(_read_av(video, 8, window), _read_decord(video, 8, window))
    assert media.load("video", path, window=(2.0, 4.0)).shape == media.load("video", path).shape


def test_an_audio_window_is_the_samples_of_that_window(tmp_path):
    rate = 16000
    wave = np.sin(2 * np.pi * 440 * np.arange(6 * rate) / rate) * np.repeat([0.1, 0.5, 0.9], 2 * rate)
    path = write_audio(tmp_path / "steps.wav", wave, rate)
    whole, _ = read_audio(path)
    part, got_rate = read_audio(path, (2.0, 4.0))
    assert got_rate == rate and part.shape == (1, 2 * rate)
    assert np.array_equal(part.numpy(), whole[:, 2 * rate:4 * rate].numpy())
    by_av, _ = _read_with_av(path, (2.5, 4.0))  # PyAV's road, for what soundfile cannot read: seek, then cut
    assert np.allclose(by_av.numpy(), whole[:, int(2.5 * rate):4 * rate].numpy(), atol=1e-4)
    assert media.duration("audio", path) == pytest.approx(6.0)


def test_an_aac_window_read_by_seeking_is_the_same_samples_as_the_whole_file_read(tmp_path):
    rate = 16000
    t = np.arange(20 * rate) / rate
    wave = (0.5 * np.sin(2 * np.pi * (300 + 20 * t) * t)).astype(np.float32)  # a rising tone: any shift shows
    path = write_audio(tmp_path / "tone.m4a", wave, rate)  # AAC: its decoder needs the frame before a seek
    whole, _ = read_audio(path)
    for window in ((5.0, 7.0), (12.3, 14.0)):
        part, _ = read_audio(path, window)
        assert torch.allclose(part, whole[:, round(window[0] * rate):round(window[1] * rate)], atol=1e-4)


def test_a_window_error_names_the_file_and_the_moment(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 4096)
    with pytest.raises(MediaError, match=r"broken\.mp4: at 0:10-0:20: ") as caught:
        media.load("video", broken, window=(10.0, 20.0))
    assert "\n" not in str(caught.value)
    assert media.duration("video", broken) is None  # unknown: the file is kept whole, and its decoder names it
    with pytest.raises(ValueError, match="no time axis"):
        media.load("image", broken, window=(0.0, 1.0))
    with pytest.raises(ValueError, match="later, finite end"):
        media.load("video", broken, window=(5.0, 5.0))


# -- collections -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reels(tmp_path_factory) -> tuple[Path, list]:
    """A 12-scene reel (24 s of video and of sound, a scene every 2 s) and 4 of the scenes as short clips."""
    root = tmp_path_factory.mktemp("reels")
    make_world(root / "world", 16, seed=11)
    scenes = read_scenes(root / "world")
    reel = make_reel(root / "media" / "long", scenes[:12], seed=11)
    (root / "media" / "clips").mkdir()
    for scene in scenes[12:]:
        shutil.copy(scene.path(root / "world", "video"), root / "media" / "clips")
    return root, reel


def test_text_finds_the_moment_in_a_long_video(reels):
    root, reel = reels
    col = Collection.open("moments", model="bindsearch-mini", device="cpu")
    report = col.add([root / "media"], window=2.0)
    assert (report.new, report.split, report.windows) == (6, 2, 24)  # 4 clips whole; each reel as 12 windows
    stats = col.stats()  # files per modality; vectors ("items") a window each
    assert (stats["files"], stats["items"], stats["windows"]) == (6, 28, 24)
    assert stats["modalities"] == {"video": 5, "audio": 1}  # the reel as video and as sound, 4 short clips
    found = 0
    for scene, _, _ in reel.timeline:
        caption = scene.modality_captions["video"][0]
        top = col.search(text=caption, modality="video", k=1)[0]
        if top.path == str(reel.video):
            found += same_on(reel.at(top.start), scene, shared_attributes("text", "video"))
            assert top.end - top.start == pytest.approx(2.0)
    # bindsearch-mini's video tower finds the window of the scene a caption describes (12/12 when written).
    assert found >= 10


def test_a_long_file_is_one_hit_unless_every_window_is_asked_for(reels):
    root, reel = reels
    col = Collection.open("moments2", model="bindsearch-mini", device="cpu")
    col.add([root / "media"], window=2.0)
    caption = reel.timeline[0][0].modality_captions["video"][0]
    hits = col.search(text=caption, modality="video", k=5)
    assert len(hits) == 5 and [h.path for h in hits].count(str(reel.video)) == 1
    windows = col.search(text=caption, modality="video", k=5, every_window=True)
    assert [h.score for h in windows] == sorted((h.score for h in windows), reverse=True)
    assert [h.path for h in windows].count(str(reel.video)) >= 2
    assert hits[0] == windows[0]  # a file's one hit is its best window

    # The reel as a query: its windows averaged, and none of them among its own hits (the index is asked for
    # more rows until k other files are found).
    by_reel = col.search(files=[reel.video], modality="video", k=4)
    assert len(by_reel) == 4 and str(reel.video) not in {h.path for h in by_reel}


def test_a_moment_of_a_file_is_a_query_and_only_that_moment_is_left_out(reels, tmp_path):
    root, reel = reels
    col = Collection.open("moments-at", model="bindsearch-mini", device="cpu")
    col.add([root / "media"], window=2.0)
    windows = {i.start: i.id for i in col.catalog.items("video") if i.path == str(reel.video)}
    # Indexed as windows: the window holding the moment is the query, as stored.
    assert np.array_equal(col.query_vector(files=[reel.video], at=10.5), col.catalog.get_vectors([windows[10.0]])[0])
    hits = col.search(files=[reel.video], at=10.5, modality="video", k=30, every_window=True)
    assert windows[10.0] not in {h.id for h in hits} and len(hits) == 11 + 4  # the other windows, and the clips
    # Not in the collection: WINDOW_SECONDS (10 s) decoded from the moment, or near its end, its last 10 s.
    copy = shutil.copy(reel.video, tmp_path / "copy.mp4")
    model = col.encoder(["video"])

    def window(start, end):
        return model.embed("video", media.load("video", copy, model.preprocess["video"], window=(start, end))[None])

    assert np.allclose(col.query_vector(files=[copy], at=3.0), window(3.0, 13.0)[0].numpy(), atol=1e-6)
    assert np.allclose(col.query_vector(files=[copy], at=22.0), window(14.0, 24.0)[0].numpy(), atol=1e-6)
    with pytest.raises(CollectionError, match=r"lasts 24 s: a moment at 30 s is not in it"):
        col.search(files=[reel.video], at=30)
    with pytest.raises(CollectionError, match="lasts 24 s"):
        col.search(files=[copy], at=24)
    with pytest.raises(CollectionError, match="a moment is of one file, and 2 were given"):
        col.search(files=[reel.video, reel.audio], at=1)
    image = root / "world" / "image" / "s000000.png"
    with pytest.raises(CollectionError, match="a moment is of a video or audio file, not of image"):
        col.search(files=[image], at=1)
    # A clip indexed whole is not another moment of itself.
    clip = next((root / "media" / "clips").iterdir())
    assert str(clip) not in {h.path for h in col.search(files=[clip], at=0.5, modality="video", k=30)}
    # Naming the modality it was indexed as reads it as indexed, and leaves that moment out too (it came back
    # first, at cosine 1, from 10 s decoded again).
    assert np.array_equal(col.query_vector(files=[reel.video], file_modality="video", at=10.5),
                          col.catalog.get_vectors([windows[10.0]])[0])
    named = col.search(files=[reel.video], file_modality="video", at=10.5, modality="video", k=30, every_window=True)
    assert windows[10.0] not in {h.id for h in named} and len(named) == 11 + 4


def test_a_moment_is_found_at_the_start_a_hit_shows_and_as_the_file_is_named(reels):
    """Windows of a recording whose length is not a multiple of the window start at 10.03 s, shown as 0:10: --at
    0:10 took the window before. A video indexed as its sound too was read at a moment as whichever came first."""
    from bindsearch.collection import _rows_as
    from bindsearch.moments import window_at
    from indexes import Item

    def row(i: int, modality: str = "audio", start: float | None = None, end: float | None = None) -> Item:
        return Item("/r.wav", modality, 1, 1.0, "h", id=i, start=start, end=end)

    windows = [row(i, start=10.03 * i, end=10.03 * (i + 1)) for i in range(10)]
    assert [window_at(Path("r.wav"), windows, at).id for at in (0, 9.9, 10.0, 10.03, 20.03, 100.2)] == \
        [0, 0, 1, 1, 2, 9]
    _, reel = reels
    both = [row(0, "audio", 0.0, 35.0), row(1, "video", 0.0, 25.0), row(2, "video", 25.0, 50.0)]
    assert [i.id for i in _rows_as(both, reel.video, None)] == [1, 2]  # an .mp4 holding a picture: its video
    assert [i.id for i in _rows_as(both, reel.video, "audio")] == [0]


def test_re_indexing_a_long_file_keeps_its_ids_and_drops_windows_it_lost(reels, tmp_path):
    root, reel = reels
    folder = tmp_path / "long"
    shutil.copytree(root / "media" / "long", folder)
    col = Collection.open("moments3", model="bindsearch-mini", device="cpu")
    col.add([folder], window=2.0)
    before = {i.start: i.id for i in col.catalog.items("video")}
    assert len(before) == 12

    again = col.add([folder], window=2.0)
    assert (again.unchanged, again.new, again.changed, again.windows, again.warnings) == (2, 0, 0, 0, [])
    # Another --window leaves unchanged files as they are, and says so (it had no effect, silently).
    other = col.add([folder], window=3.0)
    assert other.unchanged == 2 and len(other.warnings) == 1
    assert other.warnings[0].startswith("2 unchanged file(s) keep the windows they were indexed with")

    shorter = make_reel(folder, [s for s, _, _ in reel.timeline[:8]], seed=11)  # 16 s: 8 windows
    report = col.add([folder], window=2.0)
    assert (report.changed, report.windows) == (2, 16)
    after = {i.start: i.id for i in col.catalog.items("video")}
    assert after == {start: before[start] for start in after} and len(after) == 8
    top = col.search(text=reel.timeline[7][0].modality_captions["video"][0], modality="video", k=1,
                     every_window=True)[0]
    assert top.path == str(shorter.video) and top.end <= 16.0
    assert col.remove([shorter.video]) == 1 and col.catalog.count("video") == 0  # files, not windows


def test_every_decoder_process_takes_windows_of_one_long_file(reels):
    root, reel = reels
    alone = Collection.open("moments-alone", model="bindsearch-mini", device="cpu")
    alone.add([reel.video], window=2.0, workers=0)
    shared = Collection.open("moments-shared", model="bindsearch-mini", device="cpu")
    report = shared.add([reel.video], window=2.0, workers=2)
    assert (report.new, report.windows) == (1, 12)
    rows = {c: sorted(col.catalog.items(), key=lambda i: i.start) for c, col in (("alone", alone), ("shared", shared))}
    assert [(i.start, i.end) for i in rows["alone"]] == [(i.start, i.end) for i in rows["shared"]]
    assert [i.id for i in rows["shared"]] == list(range(12))  # ids in the order of the windows
    assert np.allclose(alone.catalog.get_vectors([i.id for i in rows["alone"]]),
                       shared.catalog.get_vectors([i.id for i in rows["shared"]]), atol=1e-5)


def _process(path: Path) -> int:
    return os.getpid()


def test_a_long_file_that_changes_while_its_windows_are_read_is_refused(reels):
    from bindsearch import load_model
    from bindsearch.pipeline import encode_files

    _, reel = reels
    model = load_model("bindsearch-mini", device="cpu", modalities=["video"])
    # Each decoder process describes the file as its process id: two processes, two descriptions of one file.
    batches = list(encode_files(model, "video", [reel.video], workers=2, describe=_process, windows=WindowPlan(2.0)))
    assert [str(e) for b in batches for e in b.failures] == [
        f"{reel.video}: changed while it was being indexed (read twice, it differed); run index again"]
    assert not any(b.paths for b in batches)
    kept = list(encode_files(model, "video", [reel.video], workers=2, windows=WindowPlan(2.0)))
    assert sum(len(b.paths) for b in kept) == 12 and not any(b.failures for b in kept)


def test_a_long_file_whose_length_reads_differently_in_two_workers_is_refused(reels, monkeypatch):
    from torch.utils.data import get_worker_info

    from bindsearch import load_model
    from bindsearch.pipeline import encode_files

    _, reel = reels
    model = load_model("bindsearch-mini", device="cpu", modalities=["audio"])
    length = media.duration
    for grown in (3.0, -3.0, -20.0):  # more windows, fewer, and none (kept whole) in the second worker's eyes
        def duration(modality, path, grown=grown):
            seconds = length(modality, path)
            return seconds + grown if get_worker_info() is not None and get_worker_info().id == 1 else seconds

        monkeypatch.setattr(media, "duration", duration)
        batches = list(encode_files(model, "audio", [reel.audio], workers=2, windows=WindowPlan(2.0)))
        failures = [e for b in batches for e in b.failures]
        assert [e.path for e in failures] == [reel.audio] and not any(b.paths for b in batches)
        if grown < 0:  # (a longer plan may first fail to decode a window past the end of the bytes)
            assert failures[0].cause == "changed while it was being indexed (read twice, it differed); run index again"


def test_a_file_with_a_window_that_fails_is_skipped_whole(reels, tmp_path, monkeypatch):
    root, reel = reels
    load = media.load

    def failing(modality, path, preprocess=None, window=None):
        if window is not None and window[0] >= 10.0:
            raise MediaError(path, f"at {format_clock(window[0])}-{format_clock(window[1])}: damaged")
        return load(modality, path, preprocess, window)

    monkeypatch.setattr(media, "load", failing)
    col = Collection.open("moments4", model="bindsearch-mini", device="cpu")
    for workers in (0, 2):  # one process; and two, each with windows of the file (forked: they see the patch)
        report = col.add([root / "media" / "long"], window=2.0, workers=workers)
        assert sorted(str(e.path) for e in report.failed) == sorted([str(reel.audio), str(reel.video)])
        assert all("damaged" in e.cause and e.cause.startswith("at 0:1") for e in report.failed)
        assert len(col.catalog) == 0  # no window of a file that failed is kept

    monkeypatch.setattr(media, "load", load)
    retry = col.add([root / "media" / "long"], window=2.0, workers=0)
    assert retry.ok and retry.new == 2 and len(col.catalog) == 24


def test_the_cli_shows_moments_and_json_carries_them(reels, run_cli):
    root, reel = reels
    code, out, _ = run_cli("index", root / "media" / "long", "-c", "cli-moments", "--window", "2", "--json")
    assert code == 0 and json.loads(out)["windows"] == 24
    caption = reel.timeline[3][0].modality_captions["video"][0]
    code, out, _ = run_cli("search", caption, "-c", "cli-moments", "--modality", "video", "--every-window", "-k", "3")
    assert code == 0 and len(out.splitlines()) == 3 and all(" @ 0:" in line for line in out.splitlines())
    code, out, _ = run_cli("search", caption, "-c", "cli-moments", "--json")
    hits = json.loads(out)["hits"]
    assert {h["modality"] for h in hits} == {"video", "audio"} and len(hits) == 2
    assert all(h["end"] - h["start"] == pytest.approx(2.0) for h in hits)
    from bindsearch.media import format_window

    assert all(h["moment"] == format_window((h["start"], h["end"])) for h in hits)  # what the web page shows
    code, out, _ = run_cli("info", "-c", "cli-moments")
    assert "24 of them windows of long files" in out
    code, out, _ = run_cli("search", "-c", "cli-moments", "--file", reel.video, "--at", "0:07", "--json",
                           "--every-window", "-k", "2")
    answer = json.loads(out)
    assert code == 0 and answer["query"]["at"] == 7.0 and len(answer["hits"]) == 2
    assert (answer["hits"][0]["start"], answer["hits"][0]["path"]) != (6.0, str(reel.video))
    code, _, err = run_cli("search", "-c", "cli-moments", "--file", reel.video, "--at", "soon")
    assert code == 2 and "'soon' is not a time" in err
    code, _, err = run_cli("search", "-c", "cli-moments", "--file", reel.video, "--at", "1:00")
    assert code == 1 and "lasts 24 s: a moment at 60 s is not in it" in err


def test_the_server_lists_windows_when_asked(reels):
    import threading
    from urllib.parse import quote_plus

    from test_server import call

    from bindsearch.server import SearchServer

    root, reel = reels
    col = Collection.open("served-moments", model="bindsearch-mini", device="cpu")
    col.add([root / "media" / "long"], window=2.0)
    server = SearchServer(col, port=0, log=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        caption = reel.timeline[5][0].modality_captions["video"][0]
        status, best = call(server, f"/search?q={quote_plus(caption)}&modality=video&k=3")
        assert status == 200 and len(best["hits"]) == 1 and best["hits"][0]["start"] == 10.0
        status, every = call(server, f"/search?q={quote_plus(caption)}&modality=video&k=3&every_window=1")
        assert status == 200 and len(every["hits"]) == 3 and every["hits"][0] == best["hits"][0]
        status, by_json = call(server, "/search", json_body={"text": caption, "k": 3, "modality": "video",
                                                             "every_window": 1})
        assert status == 200 and by_json["hits"] == every["hits"]
        status, moment = call(server, "/search", json_body={"paths": [str(reel.video)], "at": "0:10", "k": 2,
                                                            "every_window": True, "modality": "video"})
        assert status == 200 and moment["query"]["at"] == 10.0 and len(moment["hits"]) == 2
        status, bad = call(server, "/search", json_body={"paths": [str(reel.video)], "at": "soon"})
        assert status == 400 and "at: 'soon' is not a time" in bad["error"]
        # The reel's bytes uploaded: only its window at 0:10 is left out, as for the indexed path above.
        status, upload = call(server, "/search?name=reel.mp4&at=0:10&k=3&every_window=1&modality=video",
                              body=reel.video.read_bytes())
        starts = [h["start"] for h in upload["hits"] if h["path"] == str(reel.video)]
        assert status == 200 and starts and 10.0 not in starts
        # And it queries by that stored window, as the path does: it decoded 10 s from 0:10 afresh.
        status, by_path = call(server, "/search", json_body={"paths": [str(reel.video)], "at": "0:10", "k": 3,
                                                             "every_window": True, "modality": "video"})
        assert status == 200 and upload["hits"] == by_path["hits"]
        # Without a moment, by the mean of its windows, not the whole file seen as LanguageBind sees a clip.
        status, whole = call(server, "/search?name=reel.mp4&modality=audio", body=reel.video.read_bytes())
        status, whole_by_path = call(server, "/search", json_body={"paths": [str(reel.video)], "modality": "audio"})
        assert status == 200 and whole["hits"] == whole_by_path["hits"] and len(whole["hits"]) == 1
    finally:
        server.shutdown()
        server.server_close()


def test_a_search_over_fewer_files_than_k_stops_once_it_has_them_all(tmp_path, monkeypatch):
    from indexes import VectorIndex

    # Three long files of 400 windows each, as random unit vectors: a search for k = 10 can return three files (two
    # when one is left out), each at its best window, and need not read all 1,200 rows to learn that.
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((1200, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [Item(f"/long{f}.wav", "audio", 1, 1.0, "h", start=float(j), end=j + 1.0)
             for f in range(3) for j in range(400)]
    Catalog.open(tmp_path / "col", EncoderInfo("random:tiny", "abc", 16)).add(items, vectors)
    col = Collection.open(tmp_path / "col", device="cpu")
    asked = []
    search = VectorIndex.search
    monkeypatch.setattr(VectorIndex, "search", lambda self, q, k: asked.append(k) or search(self, q, k))
    query = rng.standard_normal(16).astype(np.float32)
    query /= np.linalg.norm(query)
    best = {}  # brute force: each file's best window
    for item, score in zip(items, vectors @ query, strict=True):
        best[item.path] = max(best.get(item.path, -2.0), float(score))
    for exclude in (set(), {"/long1.wav"}):
        asked.clear()
        hits = col.search_vector(query, k=10, exclude=exclude)
        expected = sorted((p for p in best if p not in exclude), key=best.get, reverse=True)
        assert [h.path for h in hits] == expected
        assert np.allclose([h.score for h in hits], [best[p] for p in expected], atol=1e-5)
        assert max(asked) <= 40


def test_classify_ranks_labels_window_by_window(reels, run_cli):
    from bindsearch import load_model
    from bindsearch.labels import classify_files

    _, reel = reels
    model = load_model("bindsearch-mini", device="cpu")
    materials = ["wood", "metal", "glass", "rubber"]
    timeline = list(classify_files(model, [reel.audio], materials, window=2.0, workers=0))
    assert [r.window for r in timeline] == [(start, end) for _, start, end in reel.timeline]
    right = sum(r.ranking[0][0] == reel.at(r.window[0]).attributes["material"] for r in timeline)
    assert right >= 10  # bindsearch-mini's audio tower hears the material (12/12 when written)
    whole = list(classify_files(model, [reel.audio], materials, workers=0))
    assert len(whole) == 1 and whole[0].window is None

    code, out, _ = run_cli("classify", reel.video, "--labels", "red,orange,yellow,green,blue,purple,pink",
                           "--window", "2", "--top", "1", "--json", "--model", "bindsearch-mini")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [(r["start"], r["end"]) for r in lines] == [(s, e) for _, s, e in reel.timeline]
    assert sum(r["labels"][0]["label"] == reel.at(r["start"]).attributes["colour"] for r in lines) >= 10
    code, out, _ = run_cli("classify", reel.video, "--labels", "red,blue", "--window", "2", "--top", "1",
                           "--model", "bindsearch-mini")
    assert code == 0 and out.splitlines()[0] == f"# {reel.video} @ 0:00-0:02" and len(out.splitlines()) == 24


def test_classify_answers_in_the_order_given_whatever_the_decoders_and_modalities(reels, tmp_path, monkeypatch):
    """Decoder processes finish a long file's windows in their own order, and files went by modality: a machine
    with more cores printed another order (a, c, b for a.png b.wav c.png)."""
    import bindsearch.pipeline
    from bindsearch import load_model
    from bindsearch.labels import classify, classify_files
    from bindsearch.media.writers import write_image

    _, reel = reels
    model = load_model("bindsearch-mini", device="cpu")
    pictures = [write_image(tmp_path / f"{name}.png", np.full((48, 48, 3), 40 * i, np.uint8))
                for i, name in enumerate("ac")]
    given = [pictures[0], reel.audio, pictures[1]]
    real = bindsearch.pipeline.encode_files

    def shuffled(*args, **kwargs):  # batches as several decoders may finish them: the last first
        return reversed(list(real(*args, **kwargs)))

    monkeypatch.setattr(bindsearch.pipeline, "encode_files", shuffled)
    results = list(classify_files(model, given, ["wood", "metal"], window=2.0, workers=0))
    assert [r.path for r in results] == [given[0], *[reel.audio] * len(reel.timeline), given[2]]
    windows = [r.window for r in results if r.window is not None]
    assert windows == sorted(windows)
    batches = []  # a run over one modality still answers as its batches are done, not all at the end

    def counted(*args, **kwargs):
        for batch in real(*args, **kwargs):
            batches.append(batch)
            yield batch

    monkeypatch.setattr(bindsearch.pipeline, "encode_files", counted)
    monkeypatch.setitem(model.batch_size, "image", 2)
    many = [write_image(tmp_path / f"m{i}.png", np.full((48, 48, 3), 9 * i, np.uint8)) for i in range(6)]
    answers = classify_files(model, many, ["red", "blue"], workers=0)
    first = next(answers)
    assert first.path == many[0] and len(batches) == 1 and len(list(answers)) == 5
    ranked = classify(model, pictures[0], ["red", "red", "blue"])  # a label twice is one label, not two halves
    assert sorted(label for label, _ in ranked) == ["blue", "red"] and abs(sum(p for _, p in ranked) - 1) < 1e-5
    with pytest.raises(ValueError, match="labels must be words"):
        classify(model, pictures[0], ["red", " "])
    with pytest.raises(ValueError, match="unknown modality 'bogus'"):
        classify(model, pictures[0], ["red"], modality="bogus")


def test_a_catalog_from_before_windows_is_read_and_given_them_on_first_write(tmp_path):
    encoder = EncoderInfo("random:tiny", "abc", 4)
    legacy = _schema(4)
    legacy = pa.schema([legacy.field(name) for name in _LEGACY_NAMES])
    catalog = Catalog.open(tmp_path, encoder)  # made new, then swapped for a table in the old layout
    vectors = np.eye(4, dtype=np.float32)[:2]
    rows = catalog._arrow([Item("/a.mp4", "video", 1, 1.0, "h", id=0), Item("/b.mp4", "video", 1, 1.0, "h", id=1)],
                          vectors).select(_LEGACY_NAMES)
    metadata = catalog.table.schema.metadata
    db = lancedb.connect(tmp_path)
    db.drop_table("items")
    db.create_table("items", schema=legacy.with_metadata(metadata)).add(rows)

    reopened = Catalog.open(tmp_path, encoder)
    assert [(i.path, i.start) for i in reopened.items()] == [("/a.mp4", None), ("/b.mp4", None)]
    assert reopened.count_windows() == 0
    reopened.add([Item("/c.mp4", "video", 1, 1.0, "h", start=0.0, end=9.5)], np.eye(4, dtype=np.float32)[2:3])
    assert reopened.table.schema.names == _schema(4).names
    assert {i.path: (i.start, i.end) for i in reopened.items()} == {"/a.mp4": (None, None), "/b.mp4": (None, None),
                                                                   "/c.mp4": (0.0, 9.5)}
    assert np.array_equal(reopened.get_vectors([0, 1]), vectors)


def test_a_catalog_migrated_by_another_handle_is_seen_as_migrated(tmp_path):
    encoder = EncoderInfo("random:tiny", "abc", 4)
    catalog = Catalog.open(tmp_path, encoder)
    rows = catalog._arrow([Item("/a.mp4", "video", 1, 1.0, "h", id=0)], np.eye(4, dtype=np.float32)[:1])
    metadata = catalog.table.schema.metadata
    db = lancedb.connect(tmp_path)
    db.drop_table("items")
    db.create_table("items", schema=pa.schema([_schema(4).field(n) for n in _LEGACY_NAMES]).with_metadata(metadata)
                    ).add(rows.select(_LEGACY_NAMES))
    first, second = Catalog.open(tmp_path, encoder), Catalog.open(tmp_path, encoder)  # two processes, say
    first.add([Item("/b.mp4", "video", 1, 1.0, "h", start=0.0, end=10.0)], np.eye(4, dtype=np.float32)[1:2])
    second.add([Item("/b.mp4", "video", 1, 1.0, "h", start=10.0, end=20.0)], np.eye(4, dtype=np.float32)[2:3])
    assert second.count_windows() == 2
    assert [(i.start, i.end) for i in second.lookup_paths(["/b.mp4"])["/b.mp4"]] == [(0.0, 10.0), (10.0, 20.0)]


def test_an_upsert_that_drops_windows_is_one_commit(tmp_path):
    catalog = Catalog.open(tmp_path, EncoderInfo("random:tiny", "abc", 4))
    vectors = np.eye(4, dtype=np.float32)
    catalog.add([Item("/a.mp4", "video", 1, 1.0, "h", id=i, start=2.0 * i, end=2.0 * i + 2) for i in range(4)],
                vectors)
    before = catalog.version
    catalog.upsert([Item("/a.mp4", "video", 2, 2.0, "h2", id=i, start=3.0 * i, end=3.0 * i + 3) for i in range(2)],
                   vectors[:2], delete=[0, 1, 2, 3])  # ids it keeps are not deleted
    # One commit of rows; the one before it records the next id, as the largest goes (see Catalog.next_id).
    assert catalog.version == before + 2
    between = Catalog.open(tmp_path).table
    between.checkout(before + 1)
    assert between.count_rows() == 4
    assert [(i.id, i.start, i.content_hash) for i in catalog.items()] == [(0, 0.0, "h2"), (1, 3.0, "h2")]


def _long_wav(path: Path, seconds: float = 40.0, seed: int = 0) -> Path:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    rate = 16000
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * (200 + 40 * np.floor(t / 2)) * t)  # a new pitch every 2 s
    noise = 0.01 * np.random.default_rng(seed).standard_normal(t.shape)
    soundfile.write(path, (tone + noise).astype(np.float32), rate)
    return path


def _interrupt_after(monkeypatch, model, calls: int) -> list[int]:
    """Make `model.embed` raise KeyboardInterrupt on its `calls`-th audio batch (as Ctrl-C would); returns the sizes
    of the audio batches it embedded."""
    sizes, embed = [], model.embed

    def counted(modality, batch):
        if modality == "audio":
            if len(sizes) + 1 == calls:
                sizes.append(0)  # interrupted once
                raise KeyboardInterrupt
            sizes.append(len(batch))
        return embed(modality, batch)

    monkeypatch.setattr(model, "embed", counted)
    return sizes


def test_a_killed_ingest_of_a_long_file_resumes_at_its_next_window(tmp_path, tiny_model, monkeypatch):
    wav = _long_wav(tmp_path / "media" / "talk.wav")
    col = Collection.open(tmp_path / "resumed", model=tiny_model)
    first = _interrupt_after(monkeypatch, tiny_model, calls=5)
    with pytest.raises(KeyboardInterrupt):
        col.add([tmp_path / "media"], batch_size=2, workers=0, window=2.0, commit_seconds=0)
    kept = list(col.catalog.items())
    assert sum(first) == 8 and len(kept) == 8  # every embedded window was committed
    assert all(i.content_hash.startswith("partial:") for i in kept)
    assert col.search(text="a tone", k=1)[0].path == str(wav)  # what was kept is searchable meanwhile
    assert col.stats()["partial"] == 1  # and `info` says the file is not finished
    # A moment the kept windows skip is read from the file (it was 'max() arg is an empty sequence'): with two
    # decoder processes a killed run keeps every other window.
    gap = next(i for i in kept if i.start == 0.0)
    vector = col.catalog.get_vectors([gap.id])
    col.catalog.delete([gap.id])
    assert len(col.search(files=[wav], at=1.0, k=3, every_window=True)) == 3
    col.catalog.add([gap], vector)  # as it was, for the run that resumes

    monkeypatch.undo()
    second = _interrupt_after(monkeypatch, tiny_model, calls=10**6)
    col = Collection.open(tmp_path / "resumed", model=tiny_model)  # as the next run opens it
    report = col.add([tmp_path / "media"], batch_size=2, workers=0, window=2.0)
    assert sum(second) == 12 and report.ok and (report.new, report.split, report.windows) == (1, 1, 20)
    rows = sorted(col.catalog.items(), key=lambda i: i.start)
    assert len(rows) == 20 and not any(i.content_hash.startswith("partial:") for i in rows)
    assert col.stats()["partial"] == 0
    assert {i.id for i in kept} <= {i.id for i in rows}  # the kept windows keep their ids
    whole = Collection.open(tmp_path / "whole", model=tiny_model)
    whole.add([tmp_path / "media"], batch_size=2, workers=0, window=2.0)
    clean = sorted(whole.catalog.items(), key=lambda i: i.start)
    assert [(i.start, i.end) for i in rows] == [(i.start, i.end) for i in clean]
    np.testing.assert_allclose(col.catalog.get_vectors([i.id for i in rows]),
                               whole.catalog.get_vectors([i.id for i in clean]), atol=1e-6)
    assert Collection.open(tmp_path / "resumed").add([tmp_path / "media"], window=2.0).unchanged == 1


def test_a_re_run_with_the_same_window_warns_of_nothing_for_lengths_stored_to_the_millisecond(tmp_path,
                                                                                               tiny_model):
    """Ends are stored to the millisecond: 30.0002 s, cut as three windows, read back as 30.0 s, which is left
    whole, and every re-run warned that --window had changed."""
    import soundfile

    folder = tmp_path / "media"
    folder.mkdir()
    for name, samples in (("just_over_30.wav", 30 * 16000 + 3), ("85.wav", 85 * 16000 + 1)):
        soundfile.write(folder / name, np.zeros(samples, np.float32) + 0.01, 16000)
    col = Collection.open(tmp_path / "ms", model=tiny_model)
    col.add([folder], workers=0)
    again = col.add([folder], workers=0)
    assert again.unchanged == 2 and again.warnings == []


def test_kept_windows_of_a_file_changed_since_are_dropped_and_a_failing_file_keeps_none(tmp_path, tiny_model,
                                                                                        monkeypatch):
    wav = _long_wav(tmp_path / "media" / "talk.wav")
    col = Collection.open(tmp_path / "changed", model=tiny_model)
    _interrupt_after(monkeypatch, tiny_model, calls=3)
    with pytest.raises(KeyboardInterrupt):
        col.add([tmp_path / "media"], batch_size=2, workers=0, window=2.0, commit_seconds=0)
    assert len(col.catalog) == 4
    monkeypatch.undo()
    _long_wav(wav, seed=1)  # new bytes, same length
    embedded = _interrupt_after(monkeypatch, tiny_model, calls=10**6)
    report = col.add([tmp_path / "media"], batch_size=2, workers=0, window=2.0)
    assert sum(embedded) == 20 and report.new == 1 and len(col.catalog) == 20

    other = _long_wav(tmp_path / "more" / "broken.wav", seed=2)
    load = media.load

    def failing(modality, path, prep=None, window=None, **options):
        if path == other and window is not None and window[0] >= 30:
            raise MediaError(path, "cannot be decoded at 0:30")
        return load(modality, path, prep, window=window, **options)

    monkeypatch.setattr(media, "load", failing)
    report = col.add([tmp_path / "more"], batch_size=2, workers=0, window=2.0, commit_seconds=0)
    assert [str(e.path) for e in report.failed] == [str(other)] and report.new == 0
    assert not [i for i in col.catalog.items() if i.path == str(other)]  # its first 15 windows were dropped too


def test_kept_windows_survive_a_new_window_length_only_where_they_fit_and_a_moment_reads_the_file(
        tmp_path, tiny_model, monkeypatch):
    wav = _long_wav(tmp_path / "media" / "talk.wav")
    col = Collection.open(tmp_path / "rewindowed", model=tiny_model)
    _interrupt_after(monkeypatch, tiny_model, calls=4)
    with pytest.raises(KeyboardInterrupt):
        col.add([tmp_path / "media"], batch_size=2, workers=0, window=2.0, commit_seconds=0)
    assert len(col.catalog) == 6  # windows 0-2, 2-4, ... 10-12 kept
    monkeypatch.undo()
    hit = col.search(files=[wav], at=20.0, k=1)  # a moment past the kept windows: read from the file
    assert len(hit) == 1
    report = col.add([tmp_path / "media"], batch_size=2, workers=0, window=4.0, commit_seconds=0)
    assert report.ok and (report.new, report.windows) == (1, 10)
    rows = sorted(col.catalog.items(), key=lambda i: i.start)
    assert [(i.start, i.end) for i in rows] == [(4.0 * n, 4.0 * n + 4.0) for n in range(10)]
    assert not any(i.content_hash.startswith("partial:") for i in rows)

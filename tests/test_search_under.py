"""Searching only the files in some folders (`under`): the same hits as brute force over those rows alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bindsearch.collection as collection_module
from bindsearch import Collection


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BINDSEARCH_HOME", str(tmp_path / "home"))


@pytest.fixture
def folders(tmp_path, tiny_model):
    """Five folders of one file per modality; `s1` and `s10` share a prefix that is not a folder boundary."""
    from conftest import make_media

    media = tmp_path / "media"
    for i, name in enumerate(["s0", "s1", "s10", "s2", "s3"]):
        make_media(media / name, seed=i)
    col = Collection.open("under", model=tiny_model)
    assert col.add([media], workers=0).ok
    return media, col


def brute_force(col: Collection, query: np.ndarray, allowed, modalities: set[str], k: int) -> list[int]:
    """Ids of the k best rows of these modalities whose path `allowed` accepts, best first."""
    items = {i.id: i for i in col.catalog.items()}
    ids, vectors = map(np.concatenate, zip(*col.catalog.iter_vectors(), strict=True))
    keep = np.array([allowed(items[int(i)].path) and items[int(i)].modality in modalities for i in ids])
    ids, scores = ids[keep], vectors[keep] @ query
    return ids[np.argsort(-scores, kind="stable")][:k].tolist()


@pytest.mark.parametrize("route", ["rows alone", "whole index, rows outside passed over"])
def test_hits_under_folders_are_brute_force_over_those_files_alone(folders, route, monkeypatch):
    media, col = folders
    if route != "rows alone":
        monkeypatch.setattr(collection_module, "SUBSET_ROWS", 0)
    s1, one_file = media / "s1", media / "s10" / "photo.png"
    query = col.query_vector(text="a video of waves")

    def allowed(path: str) -> bool:
        return path.startswith(f"{s1}/") or path == str(one_file)

    media_kinds = {"image", "infrared", "depth", "audio", "video"}
    for k in (1, 3, 6, 20):  # 6 files pass the filter: k=20 asks for more than there are
        hits = col.search(text="a video of waves", k=k, under=[s1, one_file])
        assert [h.id for h in hits] == brute_force(col, query, allowed, media_kinds, k)
        assert len(hits) == min(k, 6)
    assert {h.path for h in col.search(text="waves", k=20, under=[s1])} == {
        str(p) for p in (s1 / "photo.png", s1 / "ir" / "frame.png", s1 / "depth" / "room.png", s1 / "tone.wav",
                         s1 / "clip.mp4")}
    # A query file is still left out, and a modality filter still holds, under folders too.
    hits = col.search(files=[s1 / "photo.png"], modality=["image", "depth"], k=10, under=[media / "s1"])
    assert [h.path for h in hits] == [str(s1 / "depth" / "room.png")]
    # Batched text queries take the same path.
    texts = ["a video of waves", "a loud tone"]
    batched = col.search_texts(texts, k=4, under=[s1])
    assert [[h.id for h in hits] for hits in batched] == [
        [h.id for h in col.search(text=t, k=4, under=[s1])] for t in texts]


def test_a_folder_with_nothing_indexed_gives_no_hits(folders, tmp_path):
    media, col = folders
    assert col.search(text="waves", under=[tmp_path / "elsewhere"]) == []
    assert col.search(text="waves", under=[media / "s"]) == []  # a prefix of folder names is not a folder
    assert len(col.search(text="waves", k=50, under=[media])) == 25  # the top folder holds everything


def test_cli_and_server_take_under(folders, run_cli):
    import threading
    import urllib.request

    from bindsearch.server import SearchServer

    media, col = folders
    code, out, err = run_cli("search", "waves", "-c", "under", "--under", media / "s2", "--json", "-k", "50")
    answer = json.loads(out)
    assert code == 0 and answer["query"]["under"] == [str(media / "s2")]
    assert len(answer["hits"]) == 5 and all(h["path"].startswith(f"{media / 's2'}/") for h in answer["hits"])
    code, out, err = run_cli("search", "waves", "-c", "under", "--under", media / "nothing-here")
    assert code == 0 and out == "" and f"nothing of that modality is indexed under {media / 'nothing-here'}" in err

    srv = SearchServer(col, port=0, log=False)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with urllib.request.urlopen(f"{srv.url}/search?q=waves&k=50&under={media / 's3'}", timeout=60) as response:
            served = json.loads(response.read())
        assert {h["path"] for h in served["hits"]} == {
            h.path for h in col.search(text="waves", k=50, under=[media / "s3"])}
        assert len(served["hits"]) == 5
        request = urllib.request.Request(f"{srv.url}/search", data=json.dumps(
            {"text": "waves", "under": "relative/folder"}).encode(), headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        assert refused.value.code == 400
        assert "under: relative/folder: give an absolute path" in json.loads(refused.value.read())["error"]
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_search_under_folders_keeps_its_own_exact_indexes_between_searches(folders, monkeypatch):
    """Five modalities of a row each under s1, with room for two rows held: the search still keeps all five of its
    own (before, each one built pushed an older one out, and every repeat rebuilt them all)."""
    media, col = folders
    monkeypatch.setattr(collection_module, "SUBSET_ROWS", 1)
    built = []
    real = collection_module.subset_index
    monkeypatch.setattr(collection_module, "subset_index", lambda *a: built.append(a[1]) or real(*a))
    first = col.search(text="waves", k=5, under=[media / "s1"])
    assert sorted(built) == ["audio", "depth", "image", "infrared", "video"]
    assert [h.id for h in col.search(text="waves", k=5, under=[media / "s1"])] == [h.id for h in first]
    assert len(built) == 5  # nothing built again
    col.search(text="waves", k=5, under=[media / "s2"])  # other folders: the older ones give way
    assert [folders for _, _, folders in col._subsets] == [(str(media / "s2"),)] * 5


def test_one_path_alone_is_one_path_and_a_link_matches_what_it_points_to(folders, tmp_path):
    """`under="/x"` once filtered by each of its characters ("/": everything); a folder or query file given
    through a symlink found nothing under it, and the query file came back as its own best hit."""
    media, col = folders
    s1 = media / "s1"
    assert col.search(text="waves", k=20, under=str(s1)) == col.search(text="waves", k=20, under=[s1])
    photo = s1 / "photo.png"
    assert col.search(files=str(photo), k=3) == col.search(files=[photo], k=3)
    with pytest.raises(TypeError, match=r"pass \['a dog'\]"):
        col.search_texts("a dog")

    link = tmp_path / "link"
    link.symlink_to(media)
    by_link = col.search(text="waves", k=20, under=link / "s1")
    assert by_link == col.search(text="waves", k=20, under=s1) and by_link
    hits = col.search(files=[link / "s1" / "photo.png"], modality="image", k=3)
    assert str(photo) not in {h.path for h in hits}
    assert hits == col.search(files=[photo], modality="image", k=3)


def test_an_ivf_index_probes_more_lists_until_k_files_are_found(tmp_path, tiny_model, monkeypatch):
    """IVF returns only what its probed lists hold: with 40 windows a file crowding the top, a search collapsed to
    files found 1-5 of 10 (recall 0.3), and under one file's windows often none."""
    import indexes.kinds
    from indexes import Item

    monkeypatch.setattr(indexes.kinds, "EXACT_BELOW", 500)
    monkeypatch.setattr(indexes.kinds, "_default_memory_budget", lambda: 10_000)  # IVF-PQ, as at millions of rows
    col = Collection.open("ivf", model=tiny_model)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((50, tiny_model.dim)).astype(np.float32)
    vectors = centres.repeat(40, axis=0) + 0.15 * rng.standard_normal((2000, tiny_model.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [Item(path=str(tmp_path / f"v{f:02d}.mp4"), modality="video", size=1, mtime=0.0, content_hash=f"{f}",
                  start=10.0 * w, end=10.0 * w + 10) for f in range(50) for w in range(40)]
    col.catalog.add(items, vectors)
    queries = rng.standard_normal((20, tiny_model.dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index = col._index(col.catalog.pinned(), "video")
    assert index.nlist > 1 and index.lossy  # the kind the shortfall came from
    nprobe = index.nprobe
    hits = col.search_vectors(queries, "video", k=10)
    assert [len(h) for h in hits] == [10] * 20
    best = {str(tmp_path / f"v{f:02d}.mp4") for f in np.argsort(-(queries[0] @ vectors.T).reshape(50, 40).max(1))[:10]}
    assert len({h.path for h in hits[0]} & best) >= 8
    assert index.nprobe == nprobe  # widened for that search alone
    one_file = col.search_vectors(queries, "video", k=3, under=[tmp_path / "v07.mp4"], every_window=True)
    assert [len(h) for h in one_file] == [3] * 20
    # Asked for every row at once, the index still holds back the lists it did not probe: it probes them all.
    everything = col.search_vectors(queries[:2], "video", k=2000, every_window=True)
    assert [len(h) for h in everything] == [2000, 2000] and index.nprobe == nprobe
    assert [len(h) for h in col.search_vectors(queries[:2], "video", k=60)] == [50, 50]  # each file once


def test_an_ivf_search_under_a_small_folder_probes_as_deep_as_it_fetches(tmp_path, tiny_model, monkeypatch):
    """A folder holding 1 % of an IVF index's rows (above SUBSET_ROWS, so searched through the index): the rows
    asked for grew with the folder's share, the lists probed did not, and recall@10 was 0.5-0.7 (found by an
    audit)."""
    import indexes.kinds
    from indexes import Item

    monkeypatch.setattr(indexes.kinds, "EXACT_BELOW", 500)
    monkeypatch.setattr(indexes.kinds, "_default_memory_budget", lambda: 10_000)  # IVF-PQ, as at millions of rows
    monkeypatch.setattr(collection_module, "SUBSET_ROWS", 10)
    col = Collection.open("ivf", model=tiny_model)
    rng = np.random.default_rng(0)
    n, dim = 8000, tiny_model.dim
    centres = rng.standard_normal((200, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres[rng.integers(200, size=n)] + 0.15 * rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    folder = [f"{tmp_path}/{'small' if j % 100 == 0 else 'rest'}/i{j}.png" for j in range(n)]
    col.catalog.add([Item(path=p, modality="image", size=1, mtime=0.0, content_hash=str(j))
                     for j, p in enumerate(folder)], vectors)
    index = col._index(col.catalog.pinned(), "image")
    assert index.nlist > 1 and index.lossy and index.nprobe < index.nlist
    inside = np.array([p.startswith(f"{tmp_path}/small/") for p in folder])
    recalls = []
    for _ in range(30):
        query = centres[rng.integers(200)] + 0.18 * rng.standard_normal(dim).astype(np.float32)
        query /= np.linalg.norm(query)
        best = {folder[j] for j in np.argsort(-np.where(inside, vectors @ query, -9))[:10]}
        hits = col.search_vectors(query[None], "image", k=10, under=[tmp_path / "small"])[0]
        recalls.append(len({h.path for h in hits} & best) / 10)
    assert np.mean(recalls) >= 0.95, recalls

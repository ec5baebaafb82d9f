"""`bindsearch serve`: the HTTP API answers as `search --json` does, and every bad request in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bindsearch import Collection
from bindsearch.collection import search_result
from bindsearch.server import SearchServer

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """A random:tiny collection of one file per modality plus a text note; its folder and the collection."""
    from conftest import make_media

    root = tmp_path_factory.mktemp("served")
    files = make_media(root / "media")
    (root / "media" / "note.txt").write_text("a dog barking at the door")
    files["text"] = root / "media" / "note.txt"
    col = Collection.open(root / "collection", model="random:tiny", device="cpu")
    assert col.add([root / "media"], workers=0).ok
    return files, col


@pytest.fixture(scope="module")
def server(indexed):
    _, col = indexed
    srv = SearchServer(col, port=0, max_upload=1 << 20, log=False)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def call(server, path: str, body: bytes | None = None, json_body: object = None, method: str | None = None
         ) -> tuple[int, dict]:
    headers = {}
    if json_body is not None:
        body = json_body if isinstance(json_body, bytes) else json.dumps(json_body).encode()
        headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(server.url + path, data=body, headers=headers,
                                     method=method or ("POST" if body is not None else "GET"))
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_text_search_answers_what_search_json_prints(server, indexed, run_cli):
    _, col = indexed
    status, answer = call(server, "/search?q=a+dog+barking&k=3&modality=video&modality=audio")
    assert status == 200
    expected = col.search("a dog barking", modality=["video", "audio"], k=3)
    assert answer == search_result(col.name, "a dog barking", [], expected)
    code, out, _ = run_cli("search", "a dog barking", "-c", col.directory, "-k", "3", "--modality", "video",
                           "--modality", "audio", "--json")
    assert code == 0 and json.loads(out)["hits"] == answer["hits"]
    status, health = call(server, "/health")
    assert (status, health) == (200, {"ok": True, "collection": col.name, "items": 6})
    assert call(server, "/info")[1]["modalities"]["text"] == 1


def test_an_upload_is_a_query_by_example_and_an_indexed_path_is_left_out_of_its_hits(server, indexed):
    files, col = indexed
    status, answer = call(server, "/search?name=query.wav&k=5", body=files["audio"].read_bytes())
    assert status == 200 and answer["query"]["files"] == ["query.wav"]
    status, by_path = call(server, "/search", json_body={"paths": [str(files["audio"])], "k": 5})
    assert call(server, "/search", json_body={"paths": str(files["audio"]), "k": 5}) == (status, by_path)  # one path
    assert status == 200 and str(files["audio"]) not in [h["path"] for h in by_path["hits"]]  # itself left out
    # The upload holds the indexed wav's bytes: it is that file, left out as a query by its path leaves it out
    # (before: it came first, at cosine 1), whatever modality it is read as.
    assert [h["path"] for h in answer["hits"]] == [h["path"] for h in by_path["hits"]]
    status, as_image = call(server, "/search?name=s.png&file_modality=image", body=files["depth"].read_bytes())
    assert status == 200 and str(files["depth"]) not in [h["path"] for h in as_image["hits"]]
    status, moment = call(server, "/search?name=q.wav&at=1", body=files["audio"].read_bytes())  # indexed whole
    assert status == 200 and str(files["audio"]) not in [h["path"] for h in moment["hits"]]
    status, other = call(server, "/search?name=q.wav", body=files["audio"].read_bytes() + b"\0")  # another file
    assert status == 200 and other["hits"][0]["path"] == str(files["audio"])
    # `paths` echoed as the collection saw them, absolute and normalised, as search --json echoes --file.
    spelt = str(files["audio"].parent / ".." / files["audio"].parent.name) + "//" + files["audio"].name
    status, echoed = call(server, "/search", json_body={"paths": [spelt], "k": 5})
    assert status == 200 and echoed["query"]["files"] == [str(files["audio"])] and echoed["hits"] == by_path["hits"]
    status, texts = call(server, "/search", json_body={"paths": [str(files["video"])], "modality": "text"})
    assert status == 200 and texts["hits"][0]["text"] == "a dog barking at the door"


@pytest.mark.parametrize(("path", "body", "json_body", "status", "says"), [
    ("/search?q=x&modality=smell", None, None, 400, "unknown modality 'smell'"),
    ("/search?q=x&k=0", None, None, 400, "k must be between 1 and 10000"),
    ("/search?q=x&k=10001", None, None, 400, "k must be between 1 and 10000 on this server, not 10001 (bindsearch "
                                             "search -k and Collection.search take more)"),
    # An empty parameter is refused, as --under "" is: dropped, under= searched every folder.
    ("/search?q=x&under=", None, None, 400, "under= is empty; give it a value, or leave under= out"),
    ("/search?q=x&under=/a&under=", None, None, 400, "under= is empty"),
    ("/search?q=x&modality=", None, None, 400, "modality= is empty"),
    ("/search?q=x&k=", None, None, 400, "k= is empty"),
    ("/search?q=x&every_window", None, None, 400, "every_window= is empty"),
    ("/search?q=", None, None, 400, "needs ?q=TEXT"),
    ("/search?name=query.png&under=", b"bytes", None, 400, "under= is empty"),
    ("/search?name=query.png&q=", b"bytes", None, 400, "q is empty: give words to search for"),
    ("/search", None, {"text": "x", "every_window": ""}, 400, "every_window must be true or false"),
    ("/search?q=x&every_window=maybe", None, None, 400, "every_window must be true or false"),
    ("/search", None, {"text": "x", "every_window": "all"}, 400, "every_window must be true or false"),
    ("/search", None, None, 400, "needs ?q=TEXT"),
    ("/search?name=clip.mp4", b"not a video", None, 400, "clip.mp4: not a readable video"),
    ("/search?name=big.png", b"x" * (5 << 19), None, 413, "over this server's limit"),
    ("/search", None, {"paths": ["/etc/passwd"]}, 400, "/etc/passwd is not in the collection"),
    ("/search", None, {"paths": ["relative.wav"]}, 400, "relative.wav: give the absolute path"),
    ("/search", None, {"text": 3}, 400, '"text" must be a string'),
    ("/search", None, {"text": "x", "modalitiy": "video"}, 400, "unknown field 'modalitiy' in the JSON body; it takes "
                                                              "text, paths, modality, k, every_window, at, under"),
    ("/search", None, {"text": "x", "modality": [1]}, 400, '"modality" must be a modality name or a list'),
    ("/search", None, b'{"text": "x", "k": 1e400}', 400, "k must be a whole number"),
    pytest.param("/search", None, b"[" * 100_000 + b"]" * 100_000, 400, "the body is not JSON (maximum recursion",
                 id="json-nested-too-deep"),
    ("/search", None, {"text": ""}, 400, "text is empty: give words to search for"),
    ("/search", None, {"text": " \t\n"}, 400, "text is empty: give words to search for"),
    ("/search?q=%20%20", None, None, 400, "needs ?q=TEXT"),
    ("/search?name=query.png&q=%20", b"bytes", None, 400, "q is empty: give words to search for"),
    ("/search", None, b'{"text": "\\ud800"}', 400, "text is not valid UTF-8"),
    ("/search", None, b'{"paths": ["/a\\ud800.png"]}', 400, "paths is not valid UTF-8"),
    ("/search", None, b'{"text": "x", "under": "/a\\ud800"}', 400, "under is not valid UTF-8"),
    ("/search?q=x&at=5", None, None, 400, "at picks a moment of one query file"),
    ("/search", None, {"text": "x", "at": 5}, 400, "a moment is of one file, and 0 were given"),
    ("/search?name=..", b"bytes", None, 400, "needs ?name=FILE"),
    ("/elsewhere", None, None, 404, "no route GET /elsewhere"),
    ("/file?id=99999999999999999999999", None, None, 404, "no item 99999999999999999999999 in the collection"),
    ("/file?id=%C2%B2", None, None, 400, "/file needs ?id=N"),  # '²' passes str.isdigit, not int()
    ("/search?q=x&k=%C2%B2", None, None, 400, "k must be a whole number"),
    ("/search", b"", None, 405, "PUT is not served"),
    # A misspelt or misplaced parameter would search without it (a dropped under= shows excluded folders).
    ("/search?q=x&modalty=video", None, None, 400, "GET /search takes no modalty=; it takes q, modality"),
    ("/search?name=a.png&modalities=video", b"bytes", None, 400, "POST /search with a file takes no modalities="),
    ("/search?k=1&modality=video", None, {"text": "x"}, 400, "k= in the query string: a JSON body holds every field"),
    ("/file?id=1&range=0-9", None, None, 400, "/file takes no range=; it takes id"),
    ("/search?q=%ff%fe", None, None, 400, "the query string is not UTF-8"),
    ("/search", None, {"text": "x", "under": ["/a"] * 101}, 400, "101 folders in under: give at most 100"),
    ("/search", None, {"paths": ["/a"] * 101}, 400, "101 paths: a query fuses at most 100"),
    # The last of a repeated parameter was searched, the first dropped; an empty JSON list searched unfiltered.
    ("/search?q=dog&q=cat", None, None, 400, "q= is given 2 times; it takes one value"),
    ("/search?q=dog&k=1&k=2", None, None, 400, "k= is given 2 times"),
    ("/file?id=1&id=2", None, None, 400, "id= is given 2 times"),
    ("/search", None, {"text": "dog", "under": []}, 400, "under must be a path or a non-empty list of paths"),
    ("/search", None, {"text": "dog", "paths": []}, 400, "\"paths\" must be a non-empty list of paths"),
    ("/search", None, {"text": "dog", "paths": None, "k": 0}, 400, "k must be between"),  # null paths: none
    ("/search", None, {"text": "dog", "under": "/a\u0000b"}, 400, "under: a path holds a NUL character"),
])
def test_a_bad_request_gets_its_status_and_one_line(server, path, body, json_body, status, says):
    got, answer = call(server, path, body, json_body, method="PUT" if status == 405 else None)
    assert got == status and says in answer["error"] and "\n" not in answer["error"]
    assert "bindsearch-upload-" not in answer["error"]  # an upload is named as the client named it
    assert call(server, "/health")[0] == 200  # and the server is still answering


def test_an_upload_of_unknown_modality_is_told_the_query_parameter_that_names_it(server, indexed):
    files, _ = indexed
    copy = files["image"].read_bytes() + b"\0"  # not the indexed photo's bytes, but a picture of it all the same
    status, answer = call(server, "/search?name=blob", body=copy)
    assert status == 400 and answer["error"].startswith("blob: cannot tell its modality")
    assert "file_modality=MODALITY to the query string" in answer["error"] and "--file-modality" not in answer["error"]
    status, answer = call(server, "/search?name=blob&file_modality=image&k=1", body=copy)
    assert status == 200 and answer["hits"][0]["path"] == str(files["image"])  # and that advice works
    # The indexed photo's own bytes are that photo, whose modality the collection knows: its stored vector queries.
    status, answer = call(server, "/search?name=blob&k=1", body=files["image"].read_bytes())
    assert status == 200 and answer["hits"][0]["path"] != str(files["image"])


def test_http_edge_cases_are_answered_in_json_and_never_confuse_the_next_request(server):
    import http.client
    import socket

    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request("GET", "/health", body=b"hello", headers={"Content-Length": "5"})  # a GET with a body
    assert connection.getresponse().read() and connection.sock is None  # closed: its body is never read as a request
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request("HEAD", "/health")  # uptime monitors, curl -I: GET's status and length, no body
    response = connection.getresponse()
    assert response.status == 200 and int(response.getheader("Content-Length")) > 0 and not response.read()
    connection.request("HEAD", "/search")  # the same connection: nothing was left unread
    response = connection.getresponse()
    assert response.status == 400 and response.getheader("Content-Type") == "application/json" and not response.read()
    assert call(server, "/search?name=" + "a" * 300 + ".png", body=b"x")[1]["error"].endswith("send another ?name=")
    assert call(server, "/search?name=a%00.png", body=b"x")[1]["error"].startswith("'a\\x00.png': cannot be stored")
    for method in ("OPTIONS", "TRACE", "BREW"):  # http.server's own refusals are JSON too
        connection = http.client.HTTPConnection(host, port, timeout=30)
        connection.request(method, "/search")
        response = connection.getresponse()
        assert response.status in (405, 501) and response.getheader("Content-Type") == "application/json"
        assert "error" in json.loads(response.read())
    with socket.create_connection((host, port), timeout=30) as raw:  # a request line that is not HTTP: the
        raw.sendall(b"GARBAGE\r\n\r\n")  # answer is HTTP/0.9's, a body without a status line
        assert json.loads(raw.recv(4096)) == {"error": "Bad request syntax ('GARBAGE')"}
    with socket.create_connection((host, port), timeout=30) as raw:  # two lengths: which one is meant?
        raw.sendall(b"POST /search?name=a.png HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n"
                    b"Content-Length: 2\r\n\r\nxy")
        assert b"400 Bad Request" in raw.recv(4096).split(b"\r\n")[0]


def test_an_ipv6_address_is_served(indexed):
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    srv = SearchServer(indexed[1], host="::1", port=0, log=False)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        assert srv.url == f"http://[::1]:{srv.server_address[1]}"
        with urllib.request.urlopen(srv.url + "/health", timeout=30) as response:
            assert json.loads(response.read())["ok"] is True
    finally:
        srv.shutdown()
        srv.server_close()


def test_an_indexed_file_gone_from_the_disk_still_queries_by_its_stored_vector(server, indexed, tmp_path):
    files, col = indexed
    gone = tmp_path / "gone.png"
    gone.write_bytes(files["image"].read_bytes())
    col.add([gone], workers=0)
    gone.unlink()
    status, answer = call(server, "/search", json_body={"paths": [str(gone)], "modality": "image", "k": 1})
    assert status == 200 and answer["hits"][0]["path"] == str(files["image"])  # same bytes, so the same vector
    col.remove([gone])


def test_a_taken_port_is_said_in_one_line_before_the_model_loads(server, indexed):
    from bindsearch.server import ServeError, serve

    _, col = indexed
    fresh = Collection.open(col.directory)
    with pytest.raises(ServeError, match=r"cannot listen on 127\.0\.0\.1:\d+ .*choose another --port"):
        serve(fresh, port=server.server_address[1])
    assert fresh._model is None


def test_serve_command_starts_and_answers(indexed, tmp_path):
    _, col = indexed
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "-c", str(col.directory), "--port", "0"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()  # "serving NAME (N items) at http://127.0.0.1:PORT; try ..."
        assert line.startswith(f"serving {col.name} (6 items) at http://127.0.0.1:"), line
        url = line.split(" at ")[1].split(";")[0]
        with urllib.request.urlopen(url + "/search?q=a+dog&k=2", timeout=60) as response:
            assert len(json.loads(response.read())["hits"]) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def fetch(server, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(server.url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_page_and_the_indexed_files_it_shows(server, indexed):
    import io
    import shutil

    import numpy as np
    from PIL import Image

    files, col = indexed
    status, headers, page = fetch(server, "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"<script>" in page and b"/search?" in page and b"/preview?id=" in page
    if shutil.which("node"):  # the page's script parses (a syntax slip would leave a blank page)
        script = page.split(b"<script>")[1].split(b"</script>")[0]
        check = subprocess.run(["node", "--check", "-"], input=script, capture_output=True, timeout=60)
        assert check.returncode == 0, check.stderr.decode()
    rows = {i.modality: i for i in col.catalog.items()}
    for modality, item in rows.items():
        data = Path(item.path).read_bytes()
        status, headers, body = fetch(server, f"/file?id={item.id}")
        assert (status, body, headers["Accept-Ranges"]) == (200, data, "bytes"), modality
        status, headers, body = fetch(server, f"/file?id={item.id}", {"Range": "bytes=10-19"})
        assert (status, body, headers["Content-Range"]) == (206, data[10:20], f"bytes 10-19/{len(data)}")
        status, _, body = fetch(server, f"/file?id={item.id}", {"Range": "bytes=-5"})
        assert (status, body) == (206, data[-5:])
    assert headers["Content-Type"] in ("image/png", "audio/x-wav", "video/mp4", "text/plain")
    assert fetch(server, f"/file?id={rows['video'].id}")[1]["Content-Type"] == "video/mp4"
    # A 16-bit depth map in millimetres shows near black as it is: the preview spans its own range in 8 bits.
    status, headers, body = fetch(server, f"/preview?id={rows['depth'].id}")
    preview = Image.open(io.BytesIO(body))
    depth = np.asarray(Image.open(files["depth"]))
    assert status == 200 and preview.mode == "L" and preview.size == (depth.shape[1], depth.shape[0])
    pixels = np.asarray(preview).astype(float)
    assert pixels.min() == 0 and pixels.max() == 255
    assert np.corrcoef(pixels.ravel(), depth.ravel().astype(float))[0, 1] > 0.999
    assert fetch(server, f"/preview?id={rows['image'].id}")[2] == files["image"].read_bytes()
    # Only indexed files, by id.
    for path, status, says in [("/file?id=999999", 404, "no item 999999"), ("/file?id=../etc/passwd", 400, "?id=N"),
                               ("/file", 400, "?id=N")]:
        got, _, body = fetch(server, path)
        assert got == status and says in json.loads(body)["error"]
    got, _, body = fetch(server, f"/file?id={rows['image'].id}", {"Range": "bytes=99999-"})
    assert got == 416 and "outside the file" in json.loads(body)["error"]


def test_preloading_a_tower_the_model_lacks_is_refused(tmp_path, monkeypatch):
    from bindsearch.server import SearchServer, ServeError, serve

    monkeypatch.setattr(SearchServer, "serve_forever", lambda self: None)  # were it not refused: no hang

    col = Collection.open(tmp_path / "depth-only", model=str(ROOT / "tests" / "fixtures" / "parity" / "depth"),
                          device="cpu")
    with pytest.raises(ServeError, match=r"--preload video: .* has no video tower \(it encodes text, depth\)"):
        serve(col, port=0, preload=("video",))


def test_an_empty_queries_file_says_nothing_was_searched(indexed, tmp_path, run_cli):
    _, col = indexed
    (tmp_path / "none.txt").write_text("\n  \n")
    code, out, err = run_cli("search", "-c", col.directory, "--queries", tmp_path / "none.txt")
    assert code == 0 and not out and "holds no query (no line with words): nothing searched" in err


def test_a_collection_deleted_or_made_anew_under_the_server_is_a_503_in_one_line(indexed, tmp_path):
    """Its folder deleted: /health says not ok and every search 503 with one line (before: 500s with LanceDB's
    Rust source paths, and /health ok). Made anew at the same place: the same, since what the server holds is of
    the old one."""
    import shutil

    files, col = indexed
    copy = tmp_path / "copy"
    shutil.copytree(col.directory, copy)
    srv = SearchServer(Collection.open(copy, model=col.model), port=0, log=False)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        assert call(srv, "/search?q=dog")[0] == 200 and call(srv, "/health") == (200, {
            "ok": True, "collection": "copy", "items": len(col.catalog)})
        shutil.rmtree(copy)
        for path in ("/health", "/search?q=dog", "/info", "/file?id=0", "/preview?id=0"):
            status, answer = call(srv, path)
            assert status == 503 and "is gone (deleted or moved)" in answer["error"], (path, answer)
        assert not copy.exists()  # asking made no empty folder in its place: moving it back still works
        status, answer = call(srv, "/search", json_body={"paths": [str(files["image"])]})
        assert status == 503 and "\n" not in answer["error"] and ".rs:" not in answer["error"]
        Collection.open(copy, model=col.model).add([files["image"]], workers=0)  # another collection, same place
        for path in ("/health", "/search?q=dog", "/file?id=0", "/info"):  # /info too: not the new one's figures
            status, answer = call(srv, path)
            assert status == 503 and "deleted and created again" in answer["error"], (path, answer)
        status, answer = call(srv, "/search?name=query.png", body=files["image"].read_bytes())  # an upload too
        assert status == 503 and "deleted and created again" in answer["error"]
        assert call(srv, "/health")[1]["ok"] is False
    finally:
        srv.shutdown()
        srv.server_close()


def test_files_are_served_whole_as_they_were_indexed_and_previews_show_in_a_browser(tmp_path):
    """A file of any size comes whole with 200 when no range is asked (it came cut at 16 MiB, as a 206); a Range
    this server does not take is ignored, as HTTP says; pictures a browser cannot show (16-bit infrared, TIFF) are
    previewed as 8-bit PNGs; and an indexed file swapped for a link elsewhere is not read."""
    import http.client
    import io
    import socket

    import numpy as np
    from PIL import Image

    media, secret = tmp_path / "media", tmp_path / "secret.txt"
    (media / "infrared").mkdir(parents=True)
    raw = (6825 + np.arange(48 * 64).reshape(48, 64) % 1096).astype(np.uint16)  # a raw thermal frame, 16 bits
    Image.fromarray(raw).save(media / "infrared" / "raw.png")
    Image.fromarray(np.full((40, 56, 3), 120, np.uint8)).save(media / "scan.tif")
    Image.fromarray(np.full((40, 56, 3), 200, np.uint8)).save(media / "photo.jpg")
    (media / "long.txt").write_text("words of a long transcript " * 700_000)  # 18.9 MB
    (media / "note.txt").write_text("a note about a dog")
    (media / "windows.txt").write_bytes("\ufeffa note saved by Notepad".encode("utf-16-le"))
    secret.write_text("the host's secret")
    col = Collection.open(tmp_path / "collection", model="random:tiny", device="cpu")
    assert col.add([media], workers=0).ok
    srv = SearchServer(col, port=0, log=False)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        ids = {Path(i.path).name: i.id for i in col.catalog.items()}
        data = (media / "long.txt").read_bytes()
        status, headers, body = fetch(srv, f"/file?id={ids['long.txt']}")
        assert status == 200 and body == data and "Content-Range" not in headers
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert fetch(srv, f"/file?id={ids['windows.txt']}")[1]["Content-Type"] == "text/plain; charset=utf-16"
        for ignored in ("items=0-5", "bytes=0-1,5-6"):
            assert fetch(srv, f"/file?id={ids['long.txt']}", {"Range": ignored})[:3:2] == (200, data)
        status, headers, _ = fetch(srv, f"/file?id={ids['long.txt']}", {"Range": f"bytes={len(data)}-"})
        assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"

        status, headers, body = fetch(srv, f"/preview?id={ids['raw.png']}")
        shown = np.asarray(Image.open(io.BytesIO(body)))
        assert status == 200 and headers["Content-Type"] == "image/png" and shown.dtype == np.uint8
        assert shown.min() == 0 and shown.max() == 255 and shown.shape == raw.shape  # stretched, not near black
        status, headers, body = fetch(srv, f"/preview?id={ids['scan.tif']}")
        assert (status, Image.open(io.BytesIO(body)).format) == (200, "PNG")
        assert fetch(srv, f"/preview?id={ids['photo.jpg']}")[2] == (media / "photo.jpg").read_bytes()

        hits = call(srv, "/search?q=dog&modality=text")[1]["hits"]
        assert {h["text"] for h in hits} >= {"a note about a dog"}
        (media / "note.txt").unlink()
        (media / "note.txt").symlink_to(secret)  # someone with write access to an indexed folder
        status, answer = call(srv, f"/file?id={ids['note.txt']}")
        assert status == 409 and "changed since it was indexed; run bindsearch index again" in answer["error"]
        hits = call(srv, "/search?q=dog&modality=text")[1]["hits"]
        assert "secret" not in json.dumps(hits)
        assert [h["text"] for h in hits if h["path"].endswith("note.txt")] == [None]

        (media / "scan.tif").unlink()
        os.mkfifo(media / "scan.tif")  # opened as the file it replaced, a pipe would hold the thread for a writer
        status, answer = call(srv, f"/file?id={ids['scan.tif']}")
        assert status == 404 and "is no longer a file" in answer["error"]

        host, port = srv.server_address[:2]
        with socket.create_connection((host, port), timeout=30) as sock:  # a client that stops mid-upload
            sock.sendall(b"POST /search?name=a.png HTTP/1.1\r\nHost: localhost\r\nContent-Length: 20\r\n\r\n12345")
            sock.shutdown(socket.SHUT_WR)
            answer = sock.makefile("rb").read()
        assert b" 400 " in answer.split(b"\r\n")[0] and b"the body ended after 5 of its 20 bytes" in answer
        connection = http.client.HTTPConnection(host, port, timeout=30)
        connection.request("HEAD", f"/file?id={ids['long.txt']}")
        response = connection.getresponse()
        assert response.status == 200 and int(response.getheader("Content-Length")) == len(data) and not response.read()
    finally:
        srv.shutdown()
        srv.server_close()


def test_words_sent_unencoded_are_searched_as_utf8_and_a_client_that_leaves_is_no_error(server, capfd, monkeypatch):
    """curl sends 'q=café' as its UTF-8 bytes: searched as 'cafÃ©'. A body that stops coming was a 500 after a
    minute, a client that left mid-upload two tracebacks in the log."""
    import socket

    from bindsearch import server as server_module

    host, port = server.server_address[:2]

    def ask(raw_request: bytes) -> bytes:
        with socket.create_connection((host, port), timeout=30) as raw:
            raw.sendall(raw_request)
            return raw.makefile("rb").read()

    for query in ("café".encode(), b"caf%C3%A9"):
        answer = ask(b"GET /search?q=" + query + b"&k=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["query"]["text"] == "café"
    assert b" 400 " in ask(b"GET /search?q=caf\xe9 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")[:20]

    monkeypatch.setattr(server_module._Handler, "timeout", 1)
    stalled = ask(b"POST /search?name=a.png HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\n\r\n" + b"x" * 100)
    assert b" 408 " in stalled[:20] and b"the body stopped coming for 1 s" in stalled
    with socket.create_connection((host, port), timeout=30) as raw:  # a cancelled upload: reset mid-body
        raw.sendall(b"POST /search?name=a.png HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n"
                    + b"x" * 1000)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # Over the limit (1 MiB here), its bytes read and dropped: stalled or reset there, it was a 500 and a traceback.
    over = b"POST /search?name=a.png HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 1000
    assert b" 413 " in ask(over)[:20]
    with socket.create_connection((host, port), timeout=30) as raw:
        raw.sendall(over)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert call(server, "/health")[0] == 200
    assert "Traceback" not in capfd.readouterr().err


def test_a_page_of_another_site_naming_the_server_by_its_own_host_is_refused(server, monkeypatch):
    """DNS rebinding: a site points its own name at 127.0.0.1, and its page then reads a loopback server as its own
    origin, every indexed file included. Its requests name it as Host."""
    import socket

    host, port = server.server_address[:2]

    def ask(name: bytes) -> tuple[bytes, bytes]:
        with socket.create_connection((host, port), timeout=30) as raw:
            raw.sendall(b"GET /health HTTP/1.1\r\nHost: " + name + b"\r\nConnection: close\r\n\r\n")
            head, _, body = raw.makefile("rb").read().partition(b"\r\n\r\n")
            return head.split(b"\r\n")[0], body

    status, body = ask(b"attacker.example:%d" % port)
    assert b" 403 " in status and json.loads(body)["error"].startswith("Host 'attacker.example:")
    for name in (b"localhost:%d" % port, b"127.0.0.1:%d" % port, b"[::1]:%d" % port, b"LOCALHOST", b"a.localhost"):
        assert b" 200 " in ask(name)[0], name
    monkeypatch.setattr(server, "allow_hosts", {"search.example.org"})  # serve --allow-host: a proxy's name
    assert b" 200 " in ask(b"Search.Example.org:443")[0] and b" 403 " in ask(b"attacker.example")[0]
    monkeypatch.setattr(server, "loopback", False)  # serve --host 0.0.0.0: reached by any name, as asked
    assert b" 200 " in ask(b"attacker.example:%d" % port)[0]


def test_an_upload_of_an_indexed_file_reads_as_its_name_says_and_one_of_a_gone_file_still_searches(tmp_path):
    """An upload queries by an indexed copy's stored rows: those of the modality its own name says (a picture
    indexed as infrared by its folder and as a photo too), and, the copy gone, only where they answer the query:
    a moment of a sound indexed whole, or another modality, said "no such file" (found by a review)."""
    from conftest import make_media

    files = make_media(tmp_path / "media")
    col = Collection.open(tmp_path / "collection", model="random:tiny", device="cpu")
    assert col.add([tmp_path / "media"], workers=0).ok
    assert col.add([files["infrared"]], modality="image", workers=0).ok  # ir/frame.png: infrared and image
    srv = SearchServer(col, port=0, log=False)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        expected = col.search(files=[files["infrared"]], file_modality="image", modality="image", k=5)
        status, answer = call(srv, "/search?name=frame.png&modality=image&k=5", body=files["infrared"].read_bytes())
        assert status == 200 and answer["hits"] == search_result(col.name, None, ["frame.png"], expected)["hits"]
        sound, picture = files["audio"].read_bytes(), files["image"].read_bytes()
        files["audio"].unlink()
        files["image"].unlink()
        status, answer = call(srv, "/search?name=mine.wav&at=1&k=2", body=sound)  # indexed whole: 10 s decoded
        assert status == 200 and len(answer["hits"]) == 2, answer
        status, answer = call(srv, "/search?name=mine&at=1&k=2", body=sound)  # read as the copy was indexed
        assert status == 200 and len(answer["hits"]) == 2, answer
        status, answer = call(srv, "/search?name=mine.png&file_modality=infrared&k=2", body=picture)
        assert status == 200 and len(answer["hits"]) == 2, answer
        status, answer = call(srv, "/search?name=mine.png&k=2", body=picture)  # its stored row answers: it is used
        assert status == 200 and answer["hits"] == search_result(col.name, None, ["mine.png"], col.search(
            files=[files["image"]], k=2))["hits"]
    finally:
        srv.shutdown()
        srv.server_close()


def test_an_indexed_page_is_served_as_words_that_run_nothing(tmp_path):
    """An .html or .svg indexed as text was served as a page, its scripts run on the server's origin."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "page.html").write_text("<script>fetch('/file?id=0')</script> a dog")
    (tmp_path / "notes" / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>')
    col = Collection.open(tmp_path / "collection", model="random:tiny", device="cpu")
    assert col.add([tmp_path / "notes"], modality="text", workers=0).ok
    srv = SearchServer(col, port=0, log=False)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        for item in col.catalog.pinned().items():
            with urllib.request.urlopen(f"{srv.url}/file?id={item.id}", timeout=30) as response:
                assert response.headers["Content-Type"] == "text/plain; charset=utf-8", item.path
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert response.headers["Content-Security-Policy"] == "sandbox"
                assert response.read() == Path(item.path).read_bytes()
    finally:
        srv.shutdown()
        srv.server_close()


def test_each_request_is_logged_in_one_write(indexed, monkeypatch):
    """Threads answering at once wrote the text of one line and the newline of another between them."""
    import io

    _, col = indexed
    writes: list[str] = []

    class Recorder(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    monkeypatch.setattr("sys.stderr", Recorder())
    srv = SearchServer(col, port=0, log=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        assert call(srv, "/health")[0] == 200 and call(srv, "/search?q=dog&k=1")[0] == 200
    finally:
        srv.shutdown()
        srv.server_close()
    logged = [w for w in writes if w.startswith(("GET ", "POST "))]
    assert len(logged) == 2 and all(w.endswith(" ms\n") and w.count("\n") == 1 for w in logged), writes


def test_allow_host_takes_a_name_not_a_url(indexed, run_cli):
    """A URL was taken whole and matched no Host header: every request through the proxy was refused."""
    _, col = indexed
    for given in ("http://search.example.org:8080", "user@search.example.org", "search.example.org/bindsearch", " "):
        code, _, err = run_cli("serve", "-c", col.directory, "--port", "0", "--allow-host", given)
        assert code == 2 and "give a host name as a browser sends it" in " ".join(err.replace("│", " ").split()), err

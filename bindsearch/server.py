"""`bindsearch serve`: one collection behind a small HTTP JSON API, its model loaded once.

A search from the command line pays seconds to import torch and LanceDB and load the encoder before the tens of
milliseconds the search itself takes; a server pays them once. Routes (every answer is JSON):

- `GET /`: a search page for people (text or a dropped file, hits with their images, players and words);
- `GET /file?id=N`: the bytes of indexed file N (byte ranges too, so that players seek), while it is the file
  indexed (the same size and mtime; 409 once changed), as inert content (a text item as text/plain, whatever its
  name, and no script of it run); `GET /preview?id=N` the same, but what a browser cannot
  show as an 8-bit PNG: a depth map scaled to its own range (a 16-bit one in millimetres shows near black), a
  16-bit infrared frame stretched, a TIFF, HEIC or AVIF converted;
- `GET /health`: `{"ok": true, "collection", "items"}`; status 503 and `"ok": false` with an `error` while the
  collection cannot be read (its folder deleted, moved, or made anew since the server opened it);
- `GET /info`: `Collection.stats()`, as `bindsearch info --json` prints it;
- `GET /search?q=TEXT&modality=M&k=K`: text -> X; `modality` repeatable (default: every modality but text);
- `POST /search` with a JSON body `{"text", "paths", "modality", "k"}`: text and indexed items fused into one
  query (a field it does not take is a 400: a misspelt one would search without it);
- `POST /search?name=FILE&modality=M&k=K` with a file's bytes as the body: query by example with any file of a
  modality the encoder has (`file_modality=` when its extension does not say which); `q=` adds text. Indexed files
  holding the upload's bytes (the same size and content hash) are left out of its hits, and the upload queries as
  their path does (a long file by the mean of its windows, with `at` by its window there), as a search by an
  indexed path leaves that file out.

Listening on a loopback address, the server answers only requests naming this machine as their `Host` (403
otherwise): a page of another site could point its own name at 127.0.0.1 and read every indexed file.

Every search takes `every_window` (`every_window=1`, or `true` in JSON) to list each matching window of a long
file, not only its best, and a search by one file takes `at` (`at=1:20`, or seconds in JSON) to query by that
moment of it. Every search takes `under` (`under=/abs/folder`, repeatable; a string or list in JSON) to keep only
files in those folders. Searches answer in the schema of `bindsearch search --json` (`query.files`: the `paths`
absolute and normalised, as the CLI echoes its files; an upload by its `name`). A bad request gets status 400 and
`{"error": "one line"}`, naming the upload by its `name`: a parameter given empty (`under=`) too, since searching
without it would answer another question; so is `k` over `MAX_K`. A collection that cannot be read gets 503.
`paths` must be in the collection (their stored vectors are used): the server reads no file of its host but those
the collection indexes. Searches run one at a time; the rest wait their turn.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import mimetypes
import os
import re
import socket
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from bindsearch.collection import Collection, absolute, search_result
from bindsearch.errors import catalog_advice, is_catalog_error
from bindsearch.files import NotAsIndexed, as_indexed, content_hash
from bindsearch.media import MediaError
from indexes import Item

__all__ = ["DEFAULT_PORT", "SearchServer", "ServeError", "serve"]

DEFAULT_PORT = 8765


class ServeError(RuntimeError):
    """The server cannot start: its address is taken or cannot be bound."""


class RequestError(ValueError):
    """What the client asked for cannot be answered: status 400 (or the given one) and one line."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class SearchServer(ThreadingHTTPServer):
    """A threading HTTP server over one open `Collection`; `serve_forever()` runs it."""

    daemon_threads = True
    request_queue_size = 128  # connections waiting to be accepted: socketserver's 5 reset a burst of 20 uploads

    def __init__(self, collection: Collection, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 max_upload: int = 256 << 20, log: bool = True, allow_hosts: tuple[str, ...] = ()):
        if ":" in host:  # an IPv6 address, such as ::1
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)
        self.loopback = _is_loopback(self.server_address[0])
        """Listening for this machine alone: requests must name it (Host), see `_Handler._check_host`."""
        self.allow_hosts = {_host_name(h).lower().rstrip(".") for h in allow_hosts}
        """Other names a loopback server answers to: those a proxy in front of it passes on (`--allow-host`)."""
        self.collection = collection
        self.max_upload = max_upload
        self.log = log
        self.lock = threading.Lock()  # one search at a time: torch and FAISS already use every core

    def unavailable(self) -> str | None:
        """Why the collection cannot be searched now (its folder gone, or deleted and made anew since this server
        opened it), in one line; None while it can."""
        from indexes import CatalogError

        col = self.collection
        if not (col.directory / "items.lance").is_dir():
            return (f"the collection {col.directory} is gone (deleted or moved); put it back, or restart bindsearch "
                    "serve on another collection")
        try:
            col.catalog.pinned()
        except CatalogError as exc:
            return str(exc)
        except Exception as exc:  # LanceDB cannot read what is there
            return catalog_advice(exc) if is_catalog_error(exc) else f"the collection cannot be read ({exc})"
        return None

    def handle_error(self, request, client_address) -> None:
        """A client that closed its connection (a closed tab, `curl | head`) is no error of the server's: not
        logged with a traceback, as socketserver logs what a handler raised."""
        if isinstance(sys.exc_info()[1], ConnectionResetError | BrokenPipeError | TimeoutError):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _ClientGone(Exception):
    """The client closed its connection before its request was whole: nothing to answer, nothing wrong here."""


class _Handler(BaseHTTPRequestHandler):
    server: SearchServer
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds a client may leave a request half sent before its connection is closed

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self._answer(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self._post)

    def do_HEAD(self) -> None:  # noqa: N802 - uptime monitors and `curl -I`: GET's status and headers, no body
        self._answer(self._get)

    def _refuse(self) -> None:
        def route(path: str, _: dict) -> dict:
            raise RequestError(f"{self.command} is not served; GET or POST {path}", HTTPStatus.METHOD_NOT_ALLOWED)

        self._answer(route)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a method it has no handler for, a malformed request line, a URI too long)
        in JSON, as every other answer."""
        status = HTTPStatus(code)
        body = json.dumps({"error": message or status.phrase}).encode()
        self.close_connection = True
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except OSError:  # the client left
            pass

    def _failure(self, exc: Exception) -> tuple[HTTPStatus, dict]:
        """The status and one-line answer for a request that raised: 503 while the collection cannot be read (its
        folder deleted, moved or made anew under this server), 400 for the library's clear errors about the
        request, 500 for a bug (its traceback logged)."""
        problem = self.server.unavailable()
        if problem is not None:
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": problem}
        if is_catalog_error(exc):
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": catalog_advice(exc)}
        if isinstance(exc, (ValueError, MediaError)):  # bad modality, bad file
            return HTTPStatus.BAD_REQUEST, {"error": str(exc).splitlines()[0]}
        traceback.print_exc(file=sys.stderr)
        return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"}

    # -- routes ---------------------------------------------------------------------------------
    def _get(self, route: str, params: dict[str, list[str]]) -> dict | _Raw:
        col = self.server.collection
        if route == "/":
            return _Raw(_PAGE.read_bytes(), "text/html; charset=utf-8")
        if route in ("/file", "/preview"):
            _known(params, route, ("id",))
            return self._file(params, preview=route == "/preview")
        if route == "/health":
            problem = self.server.unavailable()
            if problem is not None:
                return _Raw(json.dumps({"ok": False, "collection": col.name, "error": problem}).encode(),
                            "application/json", HTTPStatus.SERVICE_UNAVAILABLE)
            return {"ok": True, "collection": col.name, "items": len(col.catalog)}
        if route == "/info":
            problem = self.server.unavailable()  # deleted and made anew: its figures are not what is served
            if problem is not None:
                raise RequestError(problem, HTTPStatus.SERVICE_UNAVAILABLE)
            return col.stats()
        if route == "/search":
            _known(params, "GET /search", ("q", "modality", "k", "every_window", "under", "at"))
            if "at" in params:  # a text has no moments: say so rather than search without it
                raise RequestError("at picks a moment of one query file: POST the file's bytes (or one path in "
                                   "JSON) with at=")
            text = _one(params, "q")
            if not text or not text.strip():  # q= and q=%20 alike: `_known` leaves a blank q to this message
                raise RequestError("GET /search needs ?q=TEXT; query by example with POST /search")
            return self._search(text, [], None, params.get("modality"), _k(_one(params, "k")),
                                _every_window(_one(params, "every_window")), under=_under(params.get("under")))
        raise RequestError(f"no route GET {route}; see /, /health, /info, /search and /file", HTTPStatus.NOT_FOUND)

    def _post(self, route: str, params: dict[str, list[str]]) -> dict:
        if route != "/search":
            raise RequestError(f"no route POST {route}; POST /search", HTTPStatus.NOT_FOUND)
        body = self._body()
        if self.headers.get_content_type() == "application/json":
            if params:  # k=1 beside a JSON body would be searched without: say where it goes
                raise RequestError(f"{next(iter(params))}= in the query string: a JSON body holds every field "
                                   f"({', '.join(_JSON_FIELDS)})")
            try:
                query = json.loads(body or b"{}")
            except (ValueError, RecursionError) as exc:  # malformed, not UTF-8, or nested past the recursion limit
                raise RequestError(f"the body is not JSON ({exc})") from None
            if not isinstance(query, dict):
                raise RequestError("the JSON body must be an object: {\"text\", \"paths\", \"modality\", \"k\"}")
            unknown = sorted(set(query) - set(_JSON_FIELDS))
            if unknown:  # a misspelt field would otherwise search without it, unfiltered
                raise RequestError(f"unknown field {unknown[0]!r} in the JSON body; it takes {', '.join(_JSON_FIELDS)}")
            text, paths = _text(query.get("text"), "text"), query.get("paths")
            paths = [] if paths is None else [paths] if isinstance(paths, str) else paths  # null: none
            if not isinstance(paths, list) or not all(isinstance(p, str) and "\x00" not in p for p in paths) or (
                    query.get("paths") == []):
                raise RequestError("\"paths\" must be a non-empty list of paths in the collection (leave it out "
                                   "to search by text alone)")
            if len(paths) > MAX_LIST:
                raise RequestError(f"{len(paths)} paths: a query fuses at most {MAX_LIST}")
            self._check_indexed(paths)
            modality = query.get("modality")
            modality = [modality] if isinstance(modality, str) else modality
            if modality is not None and not (isinstance(modality, list) and all(isinstance(m, str) for m in modality)):
                raise RequestError("\"modality\" must be a modality name or a list of them")
            # Echoed as the CLI echoes its files: absolute, `..` and `//` resolved, as the collection saw them.
            return self._search(text, paths, None, modality, _k(query.get("k")),
                                _every_window(query.get("every_window")), _at(query.get("at")),
                                shown=[absolute(p) for p in paths], under=_under(query.get("under")))
        _known(params, "POST /search with a file",
               ("name", "q", "modality", "k", "file_modality", "every_window", "at", "under"))
        name = Path(_one(params, "name") or "").name
        if name in ("", ".", ".."):
            raise RequestError("POST /search with a file's bytes needs ?name=FILE (its extension tells its "
                               "modality), or send Content-Type: application/json")
        if not body:
            raise RequestError(f"{name}: the upload is empty")
        text = _text(_one(params, "q"), "q")
        with tempfile.TemporaryDirectory(prefix="bindsearch-upload-") as tmp:
            upload = Path(tmp) / name
            try:
                upload.write_bytes(body)
            except (OSError, ValueError) as exc:  # a name the file system refuses (too long, a NUL byte)
                why = exc.strerror if isinstance(exc, OSError) else exc
                raise RequestError(f"{name[:80]!r}: cannot be stored under that name ({why}); send another "
                                   "?name=") from None
            try:
                return self._search(text, [upload], _one(params, "file_modality"),
                                    params.get("modality"), _k(_one(params, "k")),
                                    _every_window(_one(params, "every_window")), _at(_one(params, "at")),
                                    shown=[name], under=_under(params.get("under")), upload=True)
            except (ValueError, MediaError) as exc:  # name the upload as the client did, not by its temporary path
                if self.server.unavailable() is not None:  # not the upload's fault: the collection is gone (503)
                    raise
                message = str(exc).replace(str(upload), name)
                # The collection's advice is the CLI's flag; over HTTP it is a query parameter.
                raise RequestError(message.replace("pass --file-modality",
                                                   "add file_modality=MODALITY to the query string")) from None

    # -- helpers --------------------------------------------------------------------------------
    def _search(self, text: str | None, files: list, file_modality: str | None, modality: list[str] | None,
                k: int, every_window: bool = False, at: float | None = None, shown: list | None = None,
                under: list[Path] = (), upload: bool = False) -> dict:
        """`files`: paths in the collection, or with `upload` the one uploaded file (its temporary copy)."""
        col = self.server.collection
        with self.server.lock:
            if not upload:
                hits = col.search(text=text, files=files, file_modality=file_modality, modality=modality or None,
                                  k=k, every_window=every_window, at=at, under=under)
            else:
                rows = _copies(col, files[0])
                paths, ids = _left_out(rows, at)
                indexed, as_modality = _indexed_as(rows, files[0], file_modality, at)
                try:
                    query = col.query_vector(text, [indexed or files[0]], as_modality, at)
                except (ValueError, MediaError) as exc:  # said of the upload, which the client named
                    if indexed is None:
                        raise
                    raise ValueError(str(exc).replace(str(indexed), str(files[0]))) from None
                hits = col.search_vectors(query[None], modality or None, k, exclude=paths, every_window=every_window,
                                          exclude_ids=ids, under=under)[0]
        return search_result(col.name, text, shown if shown is not None else files, hits, at, under)

    def _file(self, params: dict[str, list[str]], preview: bool) -> _Raw:
        """An indexed file's bytes (or the range asked for), found by its catalog id: no other file is served."""
        value = _one(params, "id") or ""
        if not _digits(value):
            raise RequestError("/file needs ?id=N, a hit's id")
        raw = None
        try:
            wanted = int(value)
            item = self.server.collection.catalog.pinned().get([wanted]).get(wanted) if wanted < 1 << 63 else None
            if item is None:
                raise RequestError(f"no item {value} in the collection", HTTPStatus.NOT_FOUND)
            with _indexed_file(item) as f:
                path = Path(item.path)
                if preview and item.modality in ("image", "infrared", "depth"):
                    png = _preview_png(path, item.modality)
                    if png is not None:
                        return _Raw(png, "image/png", headers=dict(_INERT))
                size = os.fstat(f.fileno()).st_size
                ranged = _byte_range(self.headers.get("Range"), size)
                first, last = ranged or (0, size - 1)
                headers = {"Accept-Ranges": "bytes", **_INERT}
                if ranged is not None:
                    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
                kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                if item.modality == "text":  # words, whatever the name (an .html or .svg indexed as text is no page)
                    sixteen = os.pread(f.fileno(), 2, 0) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
                    kind = f"text/plain; charset={'utf-16' if sixteen else 'utf-8'}"
                raw = _Raw(b"", kind, HTTPStatus.PARTIAL_CONTENT if ranged else HTTPStatus.OK, headers,
                           file=(os.dup(f.fileno()), first, last + 1 - first))
        except BaseException:
            if raw is not None:
                os.close(raw.file[0])
            raise
        return raw

    def _check_indexed(self, paths: list[str]) -> None:
        for p in paths:
            _unicode(p, "paths")
        relative = [p for p in paths if not Path(p).is_absolute()]
        if relative:
            raise RequestError(f"{relative[0]}: give the absolute path the collection holds")
        col = self.server.collection
        known = col.catalog.lookup_paths(str(s) for s in col.spellings(paths))
        for p in paths:
            if not any(str(s) in known for s in col.spellings([p])):
                raise RequestError(f"{p} is not in the collection; upload the file instead "
                                   "(POST /search?name=FILE with its bytes)")

    def _body(self) -> bytes:
        lengths = self.headers.get_all("Content-Length") or []
        if len(lengths) > 1:
            raise RequestError("more than one Content-Length")
        length = lengths[0] if lengths else None
        if length is None or not _digits(length):
            raise RequestError("POST needs a Content-Length", HTTPStatus.LENGTH_REQUIRED)
        if int(length) > self.server.max_upload:
            try:
                if int(length) <= 4 * self.server.max_upload:  # read and drop it, so the client reads the answer
                    for start in range(0, int(length), 1 << 20):
                        if not self.rfile.read(min(1 << 20, int(length) - start)):
                            break
            except TimeoutError:  # stalled: answered all the same, and the connection closed after it
                pass
            except (ConnectionResetError, BrokenPipeError):  # the client left (a cancelled upload)
                raise _ClientGone from None
            raise RequestError(f"the body is {int(length)} bytes, over this server's limit of "
                               f"{self.server.max_upload} (bindsearch serve --max-upload-mb)",
                               HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            body = self.rfile.read(int(length))
        except TimeoutError:  # stalled: the socket's timeout (`timeout`) passed with no byte
            raise RequestError(f"the body stopped coming for {self.timeout} s before its {int(length)} bytes "
                               "(Content-Length); send all of it", HTTPStatus.REQUEST_TIMEOUT) from None
        except (ConnectionResetError, BrokenPipeError):  # the client left (a cancelled upload): no one to answer
            raise _ClientGone from None
        if len(body) < int(length):  # the client stopped sending: a cut-off file would be searched as it is
            raise RequestError(f"the body ended after {len(body)} of its {int(length)} bytes (Content-Length)")
        return body

    def _answer(self, route) -> None:
        start = time.perf_counter()
        url = urlsplit(self.path)
        try:
            self._check_host()
            try:
                # http.server reads the request line as Latin-1: UTF-8 sent as it is (curl 'q=café') is its bytes
                # again, then UTF-8 ('café' was searched as 'cafÃ©').
                query = url.query.encode("latin-1").decode("utf-8")
                # Blank values kept: `under=` dropped would search every folder, and a bare `every_window` none.
                params = parse_qs(query, keep_blank_values=True, errors="strict")
            except UnicodeError:
                raise RequestError("the query string is not UTF-8 (as sent, or once %-decoded); send UTF-8") from None
            status, answer = HTTPStatus.OK, route(url.path.rstrip("/") or "/", params)
            if isinstance(answer, _Raw):
                status = answer.status
        except RequestError as exc:
            status, answer = exc.status, _Raw(json.dumps({"error": str(exc)}).encode(), "application/json",
                                              exc.status, exc.headers)
        except _ClientGone:
            self.close_connection = True
            if self.server.log:
                _log(f"{self.command} {url.path}: the client left before its request was whole")
            return
        except Exception as exc:
            status, answer = self._failure(exc)
        raw = answer if isinstance(answer, _Raw) else _Raw(json.dumps(answer, default=str).encode(), "application/json")
        try:
            self._send(raw, status)
        finally:
            if raw.file is not None:
                os.close(raw.file[0])
        if self.server.log:
            ms = (time.perf_counter() - start) * 1e3
            _log(f"{self.command} {url.path} {status.value} {ms:.0f} ms")

    def _check_host(self) -> None:
        """Refuse a request to a loopback server that names another host. A page of another site can point its own
        name at 127.0.0.1 (DNS rebinding) and then read this server from the user's browser as its own origin, every
        indexed file included; its requests carry its name as Host. (A request without Host is no browser's.)"""
        host = self.headers.get("Host")
        if not self.server.loopback or host is None:
            return
        name = _host_name(host)
        if _is_loopback(name) or name.lower().rstrip(".") in self.server.allow_hosts:
            return
        raise RequestError(f"Host {host[:100]!r} is refused: this server listens on {self.server.url} for this "
                           "machine alone and answers requests to localhost, 127.0.0.1 or [::1] (a page of another "
                           "site may not read it); behind a proxy that sends its own name, serve --allow-host NAME",
                           HTTPStatus.FORBIDDEN)

    def _send(self, raw: _Raw, status: HTTPStatus) -> None:
        data = raw.body
        length = raw.file[2] if raw.file is not None else len(data)
        # After an error, or a GET that came with a body, unread bytes may be left: this connection cannot carry
        # another request.
        self.close_connection = (self.close_connection or status >= 400
                                 or (self.command == "GET" and self.headers.get("Content-Length", "0") != "0"))
        try:
            self.send_response(status)
            self.send_header("Content-Type", raw.content_type)
            self.send_header("Content-Length", str(length))
            self.send_header("X-Content-Type-Options", "nosniff")  # a browser reads each answer as its type says
            for name, value in raw.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            if raw.file is None:
                self.wfile.write(data)
                return
            fd, offset, left = raw.file
            while left > 0:  # a file of any size, a chunk at a time
                chunk = os.pread(fd, min(left, 1 << 20), offset)
                if not chunk:  # cut short since: the client sees fewer bytes than promised, and the connection close
                    self.close_connection = True
                    return
                self.wfile.write(chunk)
                offset, left = offset + len(chunk), left - len(chunk)
        except (BrokenPipeError, ConnectionResetError):  # the client left before the answer: nothing to tell
            self.close_connection = True

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        """Quiet: `_answer` logs one line per request."""


_INERT = {"Content-Security-Policy": "sandbox"}
"""An indexed file's bytes run no script on this server's origin, whatever they hold, even opened as a page."""


def _is_loopback(host: str) -> bool:
    """Whether an address or name is this machine's alone: 127.0.0.0/8, ::1, localhost (and its subdomains, which
    browsers resolve to loopback themselves)."""
    import ipaddress

    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(host: str) -> str:
    """The name in a Host header: without its port, an IPv6 address without its brackets."""
    host = host.strip()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _log(line: str) -> None:
    """One line on stderr in one write: `print` writes the text and its newline apart, and lines of requests
    answered at once ran together ("GET /search 400 1 msGET /file 200 25 ms")."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


_PAGE = Path(__file__).parent / "web" / "index.html"

MAX_LIST = 100
"""Paths a JSON query fuses, and folders `under` takes, at most: each is looked up in the catalog while the one
search lock is held, and thousands held every other client for seconds."""


@dataclass
class _Raw:
    """An answer that is not JSON: the page, a file's bytes."""

    body: bytes
    content_type: str
    status: HTTPStatus = HTTPStatus.OK
    headers: dict[str, str] = field(default_factory=dict)
    file: tuple[int, int, int] | None = None
    """(file descriptor, offset, length) sent after `body` in its place, a chunk at a time; closed once sent."""


@contextlib.contextmanager
def _indexed_file(item: Item):
    """The open file of a catalog item, while it is the one indexed (`files.as_indexed`): one gone or no longer a
    file is a 404, one changed since it was indexed (or while read) a 409. The server reads nothing its collection
    did not index."""
    try:
        with as_indexed(item.path, item.size, item.mtime) as f:
            yield f
    except NotAsIndexed as exc:
        raise RequestError(str(exc), HTTPStatus.NOT_FOUND if exc.gone else HTTPStatus.CONFLICT) from None


def _copies(col: Collection, upload: Path) -> list[Item]:
    """The rows of the indexed files that hold an upload's bytes (the same size and content hash): one look-up by
    hash (a B-tree index once the catalog is compacted), not a scan of every row."""
    from bindsearch.ingest import PARTIAL

    digest = content_hash(upload)
    return col.catalog.with_content(upload.stat().st_size, [digest, PARTIAL + digest])


def _left_out(rows: list[Item], at: float | None) -> tuple[set[str], set[int]]:
    """What an upload's hits leave out, of the rows of its indexed copies: those files, as a search by an indexed
    path leaves that file out; with `at`, only their rows that hold that moment (a file indexed whole, all of it),
    as a search for more moments of an indexed file leaves out only the one asked for. (paths, ids)"""
    from bindsearch.moments import rows_at

    if at is None:
        return {i.path for i in rows}, set()
    return set(), {i.id for i in rows_at(rows, at)}


def _indexed_as(rows: list[Item], upload: Path, file_modality: str | None,
                at: float | None) -> tuple[Path | None, str | None]:
    """An indexed copy of an upload whose stored rows are the query, and the modality to read it as: queried by
    that path, an upload is what a search by the path is (a long file by the mean of its windows, with `at` its
    window there), not the upload decoded afresh (LanguageBind's view of a whole file: 8 frames, three crops).
    The modality is `file_modality`, else the upload's name's among those the copy is indexed as (a video indexed
    as its sound too), as `search --file` reads a file by its name. (None, file_modality): the upload is read,
    where no copy is indexed, or none is as it was indexed, or a gone one's rows cannot answer (a moment of a file
    indexed whole, another modality, windows an interrupted run kept)."""
    from bindsearch.ingest import partial, unchanged
    from bindsearch.media import modality_of
    from bindsearch.modalities import canonical_modality

    by_path: dict[str, list[Item]] = {}
    for row in rows:
        by_path.setdefault(row.path, []).append(row)
    read_as = None  # the modality the first copy is read as: the upload's too, where its name says none
    for name, own in by_path.items():
        kinds = list(dict.fromkeys(i.modality for i in own))
        if file_modality is not None:
            try:
                wanted = canonical_modality(file_modality)
            except ValueError:  # said when the upload is read
                return None, file_modality
        else:
            guess = modality_of(upload)[0]
            wanted = guess if guess in kinds else kinds[0]
        read_as = read_as or wanted
        stored = [i for i in own if i.modality == wanted]
        path = Path(name)
        try:
            present = path.exists()
            if present and not unchanged(path, own[0]):
                continue
        except OSError:  # changed, and unreadable to tell how: another copy, or the upload itself, is read
            continue
        # Gone, or unreadable now (its size and mtime said unchanged): only its rows can be the query, where they are
        # the query asked for; else the upload's bytes are.
        if not (present and os.access(path, os.R_OK)) and (
                not stored or partial(stored) or (at is not None and stored[0].start is None)):
            continue
        return path, wanted
    return None, file_modality or read_as


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of `Range: bytes=a-b` (or `a-`, `-n`) within a file of `size`; None for the whole file:
    no Range, or one this server ignores, as HTTP lets it (another unit than bytes, several ranges)."""
    if not header or not header.strip().startswith("bytes=") or "," in header:
        return None
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if match is None or match.groups() == ("", ""):
        raise _unsatisfiable(f"Range {header!r} is not a byte range", size)
    a, b = match.groups()
    first, last = (int(a), int(b) if b else size - 1) if a else (max(0, size - int(b)), size - 1)
    if first >= size or first > last:
        raise _unsatisfiable(f"Range {header!r} is outside the file's {size} bytes", size)
    return first, min(last, size - 1)


def _unsatisfiable(message: str, size: int) -> RequestError:
    return RequestError(message, HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, {"Content-Range": f"bytes */{size}"})


def _preview_png(path: Path, modality: str) -> bytes | None:
    """What a browser can show of an image, infrared frame or depth map, as an 8-bit PNG at most 1024 pixels on a
    side; None for a picture shown as it is (an 8-bit JPEG, PNG, WebP...). A depth map is scaled to its own range,
    near dark and far light (a 16-bit one in millimetres shows near black); a 16-bit or float frame (raw thermal)
    is stretched as indexing reads it; a TIFF, HEIC or AVIF is converted."""
    from PIL import Image, ImageOps

    from bindsearch.media.image import image_for_display, read_depth

    if modality == "depth":
        depth = read_depth(path)
        low, high = float(depth.min()), float(depth.max())
        image = Image.fromarray(((depth - low) / max(high - low, 1e-6) * 255).round().astype(np.uint8), mode="L")
    else:
        image = image_for_display(path, 1024)
        if image is None:
            return None
    image = ImageOps.contain(image, (1024, 1024)) if max(image.size) > 1024 else image
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _known(params: dict[str, list[str]], route: str, names: tuple[str, ...]) -> None:
    """Refuse a parameter the route does not take, and one given empty: a misspelt `modalty=` or an empty `under=`
    would search without it. (An empty `q=`, `name=` or `id=` is left to the route, which says what it needs.)"""
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise RequestError(f"{route} takes no {unknown[0]}=; it takes {', '.join(names)}")
    blank = next((name for name in names if name not in ("q", "name", "id") and "" in params.get(name, ())), None)
    if blank is not None:
        raise RequestError(f"{blank}= is empty; give it a value, or leave {blank}= out")


def _one(params: dict[str, list[str]], name: str) -> str | None:
    """The one value of a parameter that takes one (None where absent); given twice, which would be searched?"""
    values = params.get(name)
    if values and len(values) > 1:
        raise RequestError(f"{name}= is given {len(values)} times; it takes one value")
    return values[0] if values else None


def _text(value: object, name: str) -> str | None:
    """The words of a query, or None for none (a query by files alone); blank or non-UTF-8 words are refused."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(f"\"{name}\" must be a string")
    if not value.strip():
        raise RequestError(f"{name} is empty: give words to search for")
    return _unicode(value, name)


def _unicode(value: str, name: str) -> str:
    """`value`, refused in words if it holds a lone surrogate (JSON's "\ud800" decodes to one), which no tokenizer
    and no file name can take."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(f"{name} is not valid UTF-8 (it holds a lone surrogate, such as \\ud800); "
                           "send it as UTF-8") from None
    return value


def _digits(text: str) -> bool:
    """Only the ASCII digits 0-9 (str.isdigit also takes '²' and other scripts' digits, which int() refuses)."""
    return text.isascii() and text.isdigit()


_JSON_FIELDS = ("text", "paths", "modality", "k", "every_window", "at", "under")
"""What a JSON body of POST /search may hold."""


MAX_K = 10_000
"""Hits a search answers at most: the search and its answer hold the one search lock, and every other client waits.
The CLI and Python take any k."""


def _k(value: object) -> int:
    if value is None:
        return 10
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not _digits(str(value).strip()):
        raise RequestError(f"k must be a whole number, not {value!r}")
    k = int(value)
    if not 1 <= k <= MAX_K:
        raise RequestError(f"k must be between 1 and {MAX_K} on this server, not {k} (bindsearch search -k and "
                           "Collection.search take more)")
    return k


def _every_window(value: object) -> bool:
    """every_window=1/true/0/false (query string), or a JSON boolean (or 0/1); absent: each file once."""
    if value is None or isinstance(value, bool) or value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
        return value.lower() in ("1", "true", "yes")
    raise RequestError(f"every_window must be true or false, not {value!r}")


def _under(value: object) -> list[Path]:
    """Folders (or files) the hits must lie in: `under=` repeated (query string), a JSON string or list of them."""
    values = [value] if isinstance(value, str) else value
    if values is None:
        return []
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise RequestError("under must be a path or a non-empty list of paths (leave it out to search every "
                           "folder)")
    if any("\x00" in v for v in values):
        raise RequestError("under: a path holds a NUL character, which no file name can")
    if len(values) > MAX_LIST:
        raise RequestError(f"{len(values)} folders in under: give at most {MAX_LIST} (their common folder, say)")
    for v in values:
        _unicode(v, "under")
    relative = [v for v in values if not Path(v).is_absolute()]
    if relative:
        raise RequestError(f"under: {relative[0]}: give an absolute path, as the collection holds them")
    return [absolute(v) for v in values]


def _at(value: object) -> float | None:
    """A moment of the query's one file: seconds (a JSON number, or "80", "1:20", "1:02:03")."""
    from bindsearch.media.windows import parse_moment

    if value is None:
        return None
    try:
        return parse_moment(value)
    except ValueError as exc:
        raise RequestError(f"at: {exc}") from None


def serve(collection: Collection, host: str = "127.0.0.1", port: int = DEFAULT_PORT, max_upload: int = 256 << 20,
          preload: tuple[str, ...] = (), allow_hosts: tuple[str, ...] = ()) -> None:
    """Load the text tower (and the towers of `preload`) and answer requests until interrupted."""
    from bindsearch.models.config import canonical_modality

    try:  # the address first: a port already taken is said before seconds go into loading the model
        server = SearchServer(collection, host, port, max_upload, allow_hosts=allow_hosts)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
                         "or --host") from None
    towers = collection.encoder_modalities() if preload else ()
    for name in preload:
        if canonical_modality(name) not in towers:
            server.server_close()
            raise ServeError(f"--preload {name}: {collection.catalog.encoder.name} has no {name} tower (it "
                             f"encodes {', '.join(towers)})")
    collection.encoder(preload)  # the first query does not pay for the model load...
    if present := collection.catalog.modalities():  # ...nor for opening the vector indexes
        collection.search_texts(["warm up"], present, k=1)
    try:  # from the line that says it serves: a SIGTERM sent on reading it stops the server as Ctrl-C does
        print(f"serving {collection.name} ({len(collection.catalog)} items) at {server.url}; open it in a browser, "
              f"or ask {server.url}/search?q=a+dog+barking", file=sys.stderr, flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

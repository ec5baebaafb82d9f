"""`bindsearch serve`: a collection behind a small HTTP JSON API (`bindsearch.server` has the routes)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.collections import CollectionOption, OptionalModel
from cli.options import DeviceOption, DtypeOption


def serve(
    collection: CollectionOption,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 0.0.0.0 opens it to the network.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")] = 8765,
    preload: Annotated[list[str] | None, typer.Option(
        "--preload", help="Load this tower at start (text always is), so the first upload of its modality does not "
                          "wait for it; repeatable.")] = None,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0, help="Largest upload accepted.")] = 256,
    allow_host: Annotated[list[str] | None, typer.Option(
        "--allow-host", help="Another name requests may give as their Host on a loopback address (a proxy's, e.g. "
                             "search.example.org); repeatable. Others are refused, so that no page of another site "
                             "reads the server through DNS rebinding.")] = None,
    model: OptionalModel = None,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "float32",
) -> None:
    """Answer searches over HTTP with the model loaded once: tens of milliseconds a query instead of seconds.

    Routes: GET / (a search page for a browser); GET /search?q=TEXT&modality=video&k=10; POST
    /search?name=bark.wav&modality=video with the file's bytes; POST /search with Content-Type: application/json
    and {"text", "paths", "modality", "k"}; GET /file?id=N and /preview?id=N (a hit's file); GET /health, /info.
    Every search also takes every_window, under=/abs/folder, and with one file at=12:30.

    Example: bindsearch serve -c home --port 8765, then curl 'localhost:8765/search?q=a+dog+barking'
    """
    from bindsearch import Collection
    from bindsearch.server import serve as run

    for name in allow_host or ():  # a URL was taken whole, and matched no Host header
        if not name.strip() or any(c in name for c in "/@ "):
            raise typer.BadParameter(f"{name!r}: give a host name as a browser sends it, e.g. search.example.org "
                                     "(or search.example.org:8080), not a URL", param_hint="'--allow-host'")

    col = Collection.open(collection, model=model, device=device, dtype=dtype, create=False)
    run(col, host, port, int(max_upload_mb * (1 << 20)), tuple(preload or ()), tuple(allow_host or ()))

"""The `bindsearch` command: one Typer app; library errors become one line and an exit code here."""

from __future__ import annotations

import sys

import typer

from cli import collections
from cli.encode import encode

app = typer.Typer(
    name="bindsearch",
    help="Find anything by anything: text, video, audio, depth, infrared and images in one vector space.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command(no_args_is_help=True)(encode)
app.command(no_args_is_help=True)(collections.index)
app.command(no_args_is_help=True)(collections.search)
app.command(no_args_is_help=True)(collections.classify)
app.command(name="list")(collections.list_)
app.command(no_args_is_help=True)(collections.info)
app.command(no_args_is_help=True)(collections.remove)


@app.callback()
def _root() -> None:
    """Find anything by anything: text, video, audio, depth, infrared and images in one vector space."""


def _register_optional() -> None:
    # Command groups that live in modules of their own; each is optional while it is being built.
    for module, name in (("cli.world", "world"), ("cli.bench", "bench"), ("cli.train", "train")):
        try:
            sub = __import__(module, fromlist=["app"]).app
        except ImportError:
            continue
        app.add_typer(sub, name=name)


_register_optional()


def main() -> None:
    """Console entry point: run the app, turning known library errors into `error: ...` and exit 1/2."""
    from bindsearch.collection import CollectionError
    from bindsearch.media import MediaError
    from bindsearch.models import ModelLoadError, UnsupportedModalityError
    from indexes import CatalogError, LockTimeout

    try:
        app()
    except (MediaError, ModelLoadError, UnsupportedModalityError, FileNotFoundError, CollectionError,
            CatalogError, LockTimeout) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()

"""Every command and command group of the CLI shows an example in its --help."""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from cli.main import app


def _commands(command, path: tuple[str, ...] = ()) -> list:
    """(path, command) of a command and everything under it (Typer's groups hold `commands`)."""
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_every_help_page_shows_an_example():
    pages = _commands(typer.main.get_command(app))
    assert len(pages) > 15  # every subcommand and group, not just the top
    for path, _ in pages[1:]:
        shown = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
        assert shown.exit_code == 0 and re.search(r"Examples?: bindsearch ", shown.output), (path, shown.output)

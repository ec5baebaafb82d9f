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


def test_the_executable_exits_at_once_with_its_output_and_status(tmp_path):
    """`console` leaves by os._exit (unloading torch and LanceDB took 0.7 s a command): what was printed must
    still arrive, and the status be the command's."""
    import json
    import os
    import subprocess
    import sys

    run = [sys.executable, "-c", "import sys; from cli.main import console; sys.argv[0] = 'bindsearch'; console()"]
    env = {**os.environ, "BINDSEARCH_HOME": str(tmp_path)}
    listed = subprocess.run([*run, "list", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and json.loads(listed.stdout)["collections"] == [], listed.stderr
    missing = subprocess.run([*run, "info", "-c", "nope"], env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and missing.stderr.startswith("error: no collection 'nope'")
    usage = subprocess.run([*run, "search"], env=env, capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2
    # Started with its output closed (a daemon's `1>&-`): still status 0, no traceback (sys.stdout is None).
    import shlex

    closed = subprocess.run(["bash", "-c", " ".join(map(shlex.quote, [*run, "list"])) + " 1>&-"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert closed.returncode == 0 and "Traceback" not in closed.stderr, closed.stderr
    # Exit functions still run: a temporary folder still open (serve's uploads, stopped by Ctrl-C) is removed.
    script = ("import sys, tempfile\nfrom cli.main import console\nheld = tempfile.TemporaryDirectory()\n"
              "print(held.name)\nsys.argv = ['bindsearch', 'list']\nconsole()\n")
    left = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert left.returncode == 0 and not os.path.exists(left.stdout.splitlines()[0]), left.stderr


def test_version_is_the_package_version():
    from importlib.metadata import version

    import bindsearch

    shown = CliRunner().invoke(app, ["--version"])
    assert shown.exit_code == 0 and shown.output == f"bindsearch {bindsearch.__version__}\n"
    assert version("bindsearch") == bindsearch.__version__  # pyproject reads it from the package

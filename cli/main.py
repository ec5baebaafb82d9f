"""The `bindsearch` command: one Typer app; library errors become one line and an exit code here."""

from __future__ import annotations

import atexit
import errno
import os
import signal
import sys
import warnings
from collections.abc import Callable
from types import FrameType
from typing import Annotated

import typer

from bindsearch.errors import catalog_advice, is_catalog_error
from cli import bench, collections, train, world
from cli.encode import encode
from cli.serve import serve

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
app.command()(collections.info)  # -c may come from BINDSEARCH_COLLECTION alone
app.command(no_args_is_help=True)(collections.remove)
app.command()(serve)  # -c may come from BINDSEARCH_COLLECTION alone


def _print_version(asked: bool) -> None:
    if asked:
        from bindsearch import __version__

        typer.echo(f"bindsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Find anything by anything: text, video, audio, depth, infrared and images in one vector space."""


app.add_typer(bench.app, name="bench")
app.add_typer(train.app, name="train")
app.add_typer(world.app, name="world")


# Library errors that mean "this input or this state is wrong": one line, exit status 1; any other ValueError is a
# usage error (2). Named by module, so that a quick command (--help, list) imports no heavy module to name them: an
# exception from a module that was never imported cannot have been raised.
_CLEAR_ERRORS = (("bindsearch.media.errors", "MediaError"), ("bindsearch.models.loading", "ModelLoadError"),
                 ("bindsearch.errors", "UnsupportedModalityError"), ("bindsearch.collection", "CollectionError"),
                 ("indexes.catalog", "CatalogError"), ("indexes.lock", "LockTimeout"),
                 ("bindsearch.server", "ServeError"), ("bindsearch.training.trainer", "TrainingDiverged"),
                 ("indexes", "FaissNotInstalled"))


def exit_status(error: Exception) -> int | None:
    """1 for a clear library error or a file the system refused (missing, not a folder, no permission, disk full),
    2 for another ValueError, None for a bug (re-raised)."""
    if _file_error(error) or is_catalog_error(error):
        return 1
    for module, name in _CLEAR_ERRORS:
        if module in sys.modules and isinstance(error, getattr(sys.modules[module], name)):
            return 1
    return 2 if isinstance(error, ValueError) else None


def main() -> None:
    """Run the app in this process, turning known library errors into `error: ...` and exit 1/2."""
    run_reporting_errors(app)


def console() -> None:
    """The `bindsearch` executable: `main`, then straight out of the process. Unloading torch and LanceDB at exit
    took 0.7 s of every command, where a `search` in a warm process answers in 0.03 s. Nothing is left to write by
    then: catalog commits and saved indexes are written (and synced) before a command returns, and the exit
    functions (temporary folders, logging) run first; what is skipped is the unloading of modules.

    SIGTERM (`kill`, systemd, a container's stop) leaves as Ctrl-C does: `index` stops its decoder processes and
    says what was kept, `serve` closes its socket. By default it killed the process on the spot, and a decoder
    process outlived it."""
    signal.signal(signal.SIGTERM, _terminated)
    sys.unraisablehook = _interrupt_again
    try:
        main()
        status = 0
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if not isinstance(stop.code, int | None):
            print(stop.code, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:  # None: started with the descriptor closed (`1>&-`)
                stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`): the reader took what it wanted
            pass
    atexit._run_exitfuncs()  # 6 ms: temporary folders (serve's uploads), logging; what os._exit would skip
    os._exit(status)


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _interrupt_again(unraisable: sys.UnraisableHookArgs) -> None:
    """A KeyboardInterrupt raised where Python can only print it is raised again in bindsearch's own code.

    A signal that comes while the DataLoader forks a decoder process is handled in the first Python code that runs
    next: one of the fork's hooks (logging's `_releaseLock`), whose exceptions Python prints and drops, and `index`
    ran on to the end (4 runs in 30 with SIGTERM sent as the first decoder appeared). Raised again from this hook,
    it would be dropped with it; a profile function raises it at the next call or return in a frame of ours, once
    (Python unsets one that raises). Not in the next frame whatever it is: raised in multiprocessing's `_launch`
    between the fork and its bookkeeping, it left a decoder no one stopped (alive 5 s after `index` returned,
    holding its output open) and a half-built DataLoader iterator whose `__del__` printed a traceback."""
    if _cut_short(unraisable):
        return
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)
        return

    def interrupt(frame: FrameType, event: str, arg: object) -> None:
        if frame.f_code.co_filename.startswith(_OUR_CODE) and frame.f_code is not _interrupt_again.__code__:
            raise KeyboardInterrupt

    sys.setprofile(interrupt)


def _cut_short(unraisable: sys.UnraisableHookArgs) -> bool:
    """Whether it is torch's DataLoader iterator failing to shut down workers it never finished starting: a signal
    came during its `__init__`. Its workers are daemons, which multiprocessing stops at exit; the traceback it
    printed under the "interrupted" line (half the stops during start-up) told nothing."""
    return isinstance(unraisable.exc_value, AttributeError) and getattr(
        unraisable.object, "__qualname__", "") == "_MultiProcessingDataLoaderIter.__del__"


_OUR_CODE = tuple(os.path.join(os.path.dirname(os.path.dirname(__file__)), name, "")
                  for name in ("bindsearch", "cli", "indexes"))
"""Where bindsearch's own modules are, as their code objects name their files (`_interrupt_again`)."""


def run_reporting_errors(command: Callable[[], object]) -> None:
    """Run a Typer app (`bindsearch`, or one command group from a script): warnings and known library errors become
    one `warning:` / `error:` line on stderr, errors with exit status 1 or 2 (see `exit_status`)."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            command()
    except Exception as error:
        status = exit_status(error)
        if status is None:
            raise
        if is_catalog_error(error):  # LanceDB's own words, then what to do
            error = catalog_advice(error)
        elif isinstance(error, OSError) and error.strerror:
            error = f"{error.filename}: {error.strerror}" if error.filename is not None else error.strerror
        typer.echo(f"error: {error}", err=True)
        sys.exit(status)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: object = None,
                  line: str | None = None) -> None:
    """A library's warning as one line on stderr, like an error: the words, not the source line that raised it."""
    typer.echo(f"warning: {message}", err=True)


_SYSTEM_REFUSALS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
"""Errors of the system's that say what is wrong even without a file name: disk full, quota, read-only, denied."""


def _file_error(error: Exception) -> bool:
    """A missing file, one in the way (`world make` into a folder that holds a world), or an error of the system's
    about a file it names (`[Errno 20] Not a directory: 'x/y'`) or that needs no name (no space left on the
    device)."""
    return isinstance(error, FileNotFoundError | FileExistsError) or (isinstance(error, OSError) and (
        error.filename is not None or error.errno in _SYSTEM_REFUSALS))


if __name__ == "__main__":  # `python -m cli.main`, as the `bindsearch` executable runs (SIGTERM included)
    console()

"""The ``spcl-search`` command line: thin Typer commands over the library.

Each sub-module registers its commands on :data:`app`; a command parses options and calls library
code. Errors meant for the user (:class:`~spcl_search.errors.SpclSearchError`) are printed as one
line on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from spcl_search import __version__
from spcl_search.errors import SpclSearchError
from spcl_search.openmp import apply_at_entry

app = typer.Typer(
    name="spcl-search",
    help="Hyperparameter search for SPCL (self-paced curriculum learning) on multimodal ERC backbones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        print(f"spcl-search {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file", help="Token file for a storage proxy (grpc:// or grpcs:// --storage); default $SPCL_SEARCH_TOKEN_FILE."
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option("--ca-file", help="CA certificate that signed a grpcs:// proxy's certificate; default $SPCL_SEARCH_CA_FILE."),
    ] = None,
) -> None:
    """Hyperparameter search for SPCL (self-paced curriculum learning) on multimodal ERC backbones."""
    # through the environment, so that the worker processes `run` starts use them too
    if token_file is not None:
        os.environ["SPCL_SEARCH_TOKEN_FILE"] = str(token_file)
    if ca_file is not None:
        os.environ["SPCL_SEARCH_CA_FILE"] = str(ca_file)


#: sub-modules that register commands on ``app`` (imported in this order; a missing one is an ImportError)
COMMAND_MODULES = ("data", "train", "search", "confirm", "report")


def _register() -> None:
    """Import the command modules; a plug-in their help names that cannot be loaded is a one-line error."""
    try:
        for name in COMMAND_MODULES:
            importlib.import_module(f"spcl_search.cli.{name}")
    except SpclSearchError as exc:
        _fail(str(exc))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``spcl-search``, ``python -m spcl_search``, the workers the launcher starts).

    Chooses the OpenMP wait policy for this process first, before anything loads torch
    (:func:`spcl_search.openmp.apply_at_entry`).
    """
    apply_at_entry()
    try:
        app(args=argv, standalone_mode=True)
    except SpclSearchError as exc:
        from spcl_search.cli.flags import for_cli

        _fail(for_cli(str(exc)))
    except Exception as exc:
        line = _database_failure(exc)
        if line is None:
            raise
        _fail(line)


def _fail(line: str) -> None:
    err_console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
    sys.exit(2)


def _database_failure(exc: BaseException) -> str | None:
    """One line for a study-database error no retry could cure, or a call the storage proxy refused (only if the
    database layer is loaded)."""
    if "sqlalchemy" not in sys.modules:
        return None
    if "grpc" in sys.modules:
        from spcl_search.search.proxy import refusal

        refused = next((r for e in _causes(exc) if (r := refusal(e)) is not None), None)
        if refused is not None:
            return str(refused)
    from spcl_search.search.retry import database_failure

    return database_failure(exc)


def _causes(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


_register()

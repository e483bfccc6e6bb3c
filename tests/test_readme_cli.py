"""The README and the command line agree: every option a README command line names is in that command's
``--help``, the options the README names in prose exist, and ``spcl-search --version`` answers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import spcl_search
from spcl_search.cli import app

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "data" / "README.md"]
#: sub-commands of command groups
GROUPS = {"data": ("info", "synth", "extract")}
COMMAND = re.compile(r"spcl-search ((?:data )?[a-z][a-z-]*)((?:\\\n|[^`\n])*)")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
COMMANDS = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}


def _help(command: str) -> str:
    result = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert result.exit_code == 0, f"spcl-search {command} --help: {result.output}"
    return result.output


def _named() -> dict[str, set[str]]:
    """command -> options its README command lines use (a line may continue after a backslash)."""
    out: dict[str, set[str]] = {}
    for doc in DOCS:
        for match in COMMAND.finditer(doc.read_text()):
            command = match.group(1)
            if command in GROUPS or command.split()[0] not in COMMANDS | set(GROUPS):
                continue
            line = match.group(2).split("#")[0]  # a shell comment is prose
            out.setdefault(command, set()).update(OPTION.findall(line))
    return out


def test_the_readme_names_commands_this_test_reads():
    assert {"run", "train", "report", "dashboard", "compare", "storage-proxy", "data extract"} <= set(_named())


@pytest.mark.parametrize("command", sorted(_named()))
def test_every_option_a_readme_command_line_names_is_in_its_help(command):
    shown = set(OPTION.findall(_help(command)))
    assert _named()[command] <= shown, f"spcl-search {command} --help lacks {_named()[command] - shown}"


#: options the README names of other tools: sbatch's, benchmarks/quality_table.py's, mlflow ui's
FOREIGN = {"--array", "--cpus-per-task", "--export", "--gres", "--variants", "--backend-store-uri"}


def test_every_option_the_readme_names_anywhere_is_in_some_commands_help():
    shown = set()
    # "" is spcl-search itself: its own options (--token-file, --ca-file, --version) come before the command
    for command in ["", *(COMMANDS - set(GROUPS)), *(f"{g} {sub}" for g, subs in GROUPS.items() for sub in subs)]:
        shown |= set(OPTION.findall(_help(command)))
    named = set(OPTION.findall((REPO / "README.md").read_text())) - FOREIGN
    assert named <= shown, f"no command's --help has {sorted(named - shown)}"


def test_the_storage_proxy_help_shows_the_heartbeat_options_the_readme_names():
    assert {"--heartbeat-interval", "--grace-period"} <= set(OPTION.findall(_help("storage-proxy")))


def test_version_prints_the_package_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"spcl-search {spcl_search.__version__}"

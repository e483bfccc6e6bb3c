"""The library names options by their fields; the command line shows each as the flag that sets it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from spcl_search.cli.flags import flag, for_cli
from spcl_search.data.extract.layouts import read_corpus
from spcl_search.errors import ConfigError


def test_a_library_error_names_the_field_not_a_flag(tmp_path):
    with pytest.raises(ConfigError) as info:
        read_corpus("kaldi", tmp_path)
    assert str(info.value).startswith("`layout` 'kaldi' is not one of") and "--" not in str(info.value)
    assert info.value.fields == ["layout"]


def test_the_command_line_shows_each_field_as_its_flag(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "spcl_search", "data", "extract", str(tmp_path), "--layout", "kaldi", "--out", str(tmp_path / "o.pkl")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--layout 'kaldi' is not one of iemocap, meld, manifest" in done.stderr and "`" not in done.stderr


def test_a_field_whose_flag_is_not_its_name_is_shown_as_that_flag():
    assert flag("clip_grad_norm") == "--clip" and flag("method_options") == "--method-option"
    assert for_cli("`dev_fraction` must be between 0 and 1; pass `force`") == "--dev-fraction must be between 0 and 1; pass --force"

"""``spcl-search train``: the backbone form and its options, end to end through the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from spcl_search.cli import main


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def _train(capsys):
    def run(*args: str) -> Ran:
        try:
            main(["train", "-b", "late_fusion", "--epochs", "1", "--threads", "1", *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run


def test_train_records_the_form_it_trained(_train, tmp_path):
    out = tmp_path / "run.json"
    proc = _train("--variant", "original", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["config"]["variant"] == "original" and result["model"]["variant"] == "original"
    assert "(original form)" in proc.stdout


def test_form_is_another_name_for_variant(_train, tmp_path):
    out = tmp_path / "run.json"
    proc = _train("--form", "original", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["model"]["variant"] == "original"


def test_reference_arithmetic_and_standardise_are_recorded(_train, tmp_path):
    out = tmp_path / "run.json"
    proc = _train("--reference-arithmetic", "--standardise", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["model"]["reference_arithmetic"] is True and result["config"]["standardise"] is True


def test_an_unknown_form_is_one_line_naming_the_option(_train):
    proc = _train("--variant", "paper")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --variant 'paper': choose one of spcl, original"]


def test_reference_arithmetic_of_the_original_form_is_refused(_train):
    proc = _train("--variant", "original", "--reference-arithmetic")
    assert proc.returncode == 2 and "--reference-arithmetic applies to --variant spcl only" in proc.stderr


def test_precision_is_an_option_of_train_and_recorded(_train, tmp_path):
    out = tmp_path / "run.json"
    proc = _train("--precision", "bf16", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["config"]["precision"] == "bf16"
    assert "bf16 autocast" in proc.stdout


def test_an_unknown_precision_is_one_line_naming_the_option(_train):
    proc = _train("--precision", "fp16")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --precision 'fp16': choose one of fp32, bf16"]


def test_method_and_its_options_are_recorded(_train, tmp_path):
    out = tmp_path / "run.json"
    proc = _train("--method", "ogm_ge", "--method-option", "alpha=0.5", "--method-option", "smooth=true", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    config = json.loads(out.read_text())["config"]
    assert config["method"] == "ogm_ge"
    assert config["method_options"] == {"alpha": 0.5, "smooth": True, "modulation_starts": 1, "modulation_ends": None}


def test_an_unknown_method_is_one_line_naming_the_option(_train):
    proc = _train("--method", "gradblend")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --method 'gradblend': choose one of spcl, none, mmpareto, ogm_ge, opm"]


def test_an_ill_typed_option_is_one_line_naming_it(_train):
    proc = _train("--method", "ogm_ge", "--method-option", "smooth=2")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --method ogm_ge: option smooth must be true or false, got 2"]


def test_an_option_the_method_does_not_have_is_named(_train):
    proc = _train("--method", "ogm_ge", "--method-option", "gamma=1.5")
    assert proc.returncode == 2 and "gamma" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

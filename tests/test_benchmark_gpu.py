"""benchmarks/gpu.py: says so and exits 0 without CUDA; its measurements run end to end (on the CPU here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine that has one
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_without_cuda_it_says_so_and_exits_0():
    proc = _run()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "benchmarks/gpu.py: no CUDA device on this machine (torch.cuda.is_available() is False); nothing to measure."


def test_an_unknown_form_is_refused_naming_the_option():
    proc = _run("--allow-cpu", "--forms", "mmgcn:paper")
    assert proc.returncode == 2 and "--forms mmgcn:paper: give backbone:variant" in proc.stderr


@pytest.mark.slow
def test_on_the_cpu_it_measures_every_column_of_a_form(tmp_path):
    out = tmp_path / "gpu.json"
    tiny = '{"encoder_layers": 0, "hidden": 8}'  # the script's path, not its figures
    proc = _run("--allow-cpu", "--forms", "late_fusion:spcl", "--ks", "1", "2", "--epochs", "1", "--data", "synthetic", "--model", tiny, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    import json

    (row,) = json.loads(out.read_text())["rows"]
    assert set(row["seconds_per_epoch"]) == {"fp32", "bf16", "loop"} and row["skipped"] == []
    assert set(row["trials_per_hour"]) == {"1", "2"} and row["packing_ratio"]["1"] == 1.0
    assert "late_fusion  spcl" in proc.stdout

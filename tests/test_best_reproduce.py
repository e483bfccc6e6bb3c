"""``best --command`` and ``best --toml``: the chosen trial as a command that gives its dev F1 again, exactly."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import optuna
import pytest
from optuna.distributions import FloatDistribution
from typer.testing import CliRunner

from spcl_search.cli import app
from spcl_search.schema.reproduce import spec_fragment, train_command
from spcl_search.schema.spec import build, load_file
from spcl_search.search.storage import open_storage
from spcl_search.search.worker import WorkerOptions, run_worker

STUDY = "late_fusion-synthetic-search"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-trial study really trained on the embedded synthetic set (2 seeds, 2 epochs, 1 CPU thread)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('repro') / 'r.db'}"
    rdb = open_storage(url, heartbeat_interval=2, grace_period=10)
    run_worker(rdb, requested={"backbone": "late_fusion", "epochs": 2, "n_trials": 1, "seeds": [0, 1], "train": {"standardise": True}},
               options=WorkerOptions(threads=1, device="cpu"))  # fmt: skip
    return url


def _cli(*args):
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def test_the_printed_command_gives_the_trials_dev_f1_exactly(trained, tmp_path):
    (trial,) = optuna.load_study(study_name=STUDY, storage=trained).trials
    (line,) = [x for x in _cli("best", "--storage", trained, "--command").splitlines() if x.startswith("spcl-search train")]
    argv = shlex.split(line)
    assert {"--standardise", "--seeds", "--lr", "--batch-size", "--patience", "--cl-threshold", "--threads"} <= set(argv)
    out = tmp_path / "again.json"
    done = subprocess.run([sys.executable, "-m", "spcl_search", *argv[1:], "--json", str(out)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["mean"]["dev_f1"] == trial.value  # bit for bit, not approximately


def test_the_toml_fragment_is_a_spec_of_exactly_that_setting(trained, tmp_path):
    (trial,) = optuna.load_study(study_name=STUDY, storage=trained).trials
    _cli("best", "--storage", trained, "--toml", str(tmp_path / "best.toml"))
    spec = build(load_file(tmp_path / "best.toml"))
    assert {k: r.choices for k, r in spec.space.items()} == {k: (v,) for k, v in trial.params.items()}
    assert (spec.seeds, spec.epochs, spec.train["standardise"], spec.train["lr"]) == ((0, 1), 2, True, 1e-3)
    assert spec.name == f"{STUDY}-best-atv" and spec.data == "synthetic"


def test_a_methods_fixed_options_go_into_the_command_and_the_toml(tmp_path):
    spec = build({"backbone": "late_fusion", "method": "ogm_ge", "method_options": {"smooth": True, "modulation_ends": 3}})
    trial = optuna.trial.create_trial(
        params={"alpha": 0.5}, distributions={"alpha": FloatDistribution(0.05, 2.0, log=True)}, value=50.0, user_attrs={"seeds": [0]}
    )
    argv = train_command(spec, trial, "atv")
    options = [argv[i + 1] for i, a in enumerate(argv) if a == "--method-option"]
    assert options == ["alpha=0.5", "smooth=true", "modulation_ends=3"]
    (tmp_path / "best.toml").write_text(spec_fragment(spec, trial, "atv", "again"))
    assert build(load_file(tmp_path / "best.toml")).method_options == {"smooth": True, "modulation_ends": 3}

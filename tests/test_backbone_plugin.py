"""A backbone form defined in one file outside the package, named in SPCL_SEARCH_PLUGINS, works with the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from spcl_search.search.storage import open_storage

#: a whole new backbone with one form, as a user would write it: its model and its form class
TOY = '''"""A toy backbone: a linear encoder and head per modality."""

from __future__ import annotations

import torch
from torch import nn

from backbones.base import Backbone, ParameterPart, scale_rows, whole
from backbones.registry import Form


class Toy(Backbone):
    name = "toy"

    def __init__(self, modalities, input_dims, n_classes, n_speakers, variant="plain", hidden=None):
        super().__init__(modalities, input_dims, n_classes, n_speakers, variant)
        self.hidden = int(self.options(hidden=hidden)["hidden"])
        self.encoders = nn.ModuleDict({m: nn.Linear(self.input_dims[m], self.hidden) for m in modalities})
        self.heads = nn.ModuleDict({m: nn.Linear(self.hidden, n_classes) for m in modalities})

    def forward(self, batch):
        return {
            m: self.heads[m](scale_rows(batch, m, torch.relu(self.encoders[m](batch.features[m])), lambda s: s))
            for m in self.modalities
        }

    def encoder_parts(self, modality: str) -> list[ParameterPart]:
        return whole(self.encoders[modality])


class ToyPlain(Form):
    backbone = "toy"
    form = "plain"
    model = Toy
    defaults = {"default": {"hidden": 8}}
    protocol = {"default": {"lr": 1e-3, "weight_decay": 0.0, "batch_size": 8, "epochs": 2, "patience": None}}
'''


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "toy_backbone.py").write_text(TOY)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "SPCL_SEARCH_PLUGINS": "toy_backbone"}
    env.pop("SPCL_SEARCH_TRAINER", None)
    return subprocess.run(
        [sys.executable, "-m", "spcl_search", *args], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env
    )


def test_a_form_from_one_plugin_file_trains_through_the_cli(tmp_path):
    out = tmp_path / "run.json"
    proc = _cli(tmp_path, "train", "--backbone", "toy", "--variant", "plain", "--epochs", "2", "--threads", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["model"]["variant"] == "plain" and len(result["history"]) == 2
    assert (result["config"]["batch_size"], result["config"]["lr"]) == (8, 1e-3)  # the form's protocol


@pytest.mark.slow
def test_a_form_from_one_plugin_file_runs_a_two_trial_study_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'toy.db'}"
    args = ["run", "--backbone", "toy", "--variant", "plain", "--epochs", "2", "--n-trials", "2", "--workers", "1", "--storage", url]
    proc = _cli(tmp_path, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    study = optuna.load_study(study_name="toy-synthetic-plain-search", storage=open_storage(url, heartbeat_interval=None))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2


def test_a_plugin_module_that_cannot_be_imported_is_named(tmp_path):
    env = {**os.environ, "SPCL_SEARCH_PLUGINS": "no_such_plugin_module"}
    proc = subprocess.run(
        [sys.executable, "-m", "spcl_search", "train", "--backbone", "toy", "--epochs", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(
        "error: SPCL_SEARCH_PLUGINS: cannot import 'no_such_plugin_module'"
    )

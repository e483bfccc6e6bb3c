"""Balance methods describe themselves: one module per method, found by the registry, plug-ins included."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from spcl_search.errors import ConfigError
from spcl_search.methods import registry
from spcl_search.schema import spec as specs

ROOT = Path(__file__).resolve().parents[1]

#: a complete balance method in one file, as a lab would write it outside the project
TOY_METHOD = '''
"""A toy balance method: plain NLL of the joint prediction, its gradient scaled by ``scale``."""

from dataclasses import dataclass
from typing import ClassVar

from spcl_search.methods.base import plain_loss
from spcl_search.methods.registry import option, register


class Toy:
    name = "toy"
    threshold = None

    def __init__(self, scale):
        self.scale = scale

    def step(self, model, batch):
        out = plain_loss(model(batch), batch)
        (out.loss * self.scale).backward()
        return out

    def end_epoch(self):
        pass


@register
@dataclass(frozen=True)
class ToyOptions:
    name: ClassVar[str] = "toy"
    summary: ClassVar[str] = "plain NLL with a scaled gradient (a one-file plug-in)"
    space: ClassVar[dict] = {"scale": (0.5, 2.0, False)}

    scale: float = option(1.0, "factor of the loss's gradient", above=True)

    def check(self):
        pass

    def build(self, modalities):
        return Toy(self.scale)
'''


def _cli(*args: str, cwd: Path, plugins: str = "toy_method", timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """The real ``spcl-search ARGS`` in a fresh process, with ``cwd`` on the path and ``plugins`` named."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT)]), registry.PLUGINS_ENV: plugins}
    return subprocess.run([sys.executable, "-m", "spcl_search", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def toy_dir(tmp_path: Path) -> Path:
    (tmp_path / "toy_method.py").write_text(TOY_METHOD)
    return tmp_path


def test_the_readme_method_table_is_the_registry_s():
    readme = (ROOT / "README.md").read_text()
    table = re.search(r"<!-- methods table:[^\n]*-->\n(.*?)\n<!-- end of the methods table -->", readme, re.S)
    assert table is not None, "README.md lost its methods table markers"
    assert table.group(1) == registry.markdown_table()


def test_the_built_in_methods_are_found_in_their_modules():
    assert registry.names() == ("spcl", "none", "mmpareto", "ogm_ge", "opm")


def test_spcl_threshold_and_growth_are_spcl_s_options_and_searched_under_their_trial_names():
    assert registry.method_options("spcl", {"cl_threshold": 0.7}) == {
        "cl_threshold": 0.7,
        "cl_growth": 1.1,
        "cap": 60.0,
        "normalise": "all",
        "score": "sum",
    }
    assert set(registry.space("spcl")) == {"cl_threshold", "cl_growth"}


def test_another_method_takes_no_spcl_option():
    with pytest.raises(ConfigError, match=r"^--method ogm_ge: unknown option\(s\) cl_threshold; it takes alpha"):
        registry.method_options("ogm_ge", {"cl_threshold": 0.4})


@pytest.mark.parametrize("name", ["spcl", "none", "mmpareto", "ogm_ge", "opm"])
def test_every_default_lies_inside_the_method_s_searched_range(name):
    defaults = registry.method_options(name)
    for param, (low, high, _) in registry.space(name).items():
        assert low <= defaults[param] <= high


def test_an_option_out_of_its_range_is_a_one_line_error_naming_it():
    with pytest.raises(ConfigError, match=r"^--method spcl: option cl_threshold must be > 0, got 0$"):
        registry.method_options("spcl", {"cl_threshold": 0})
    with pytest.raises(ConfigError, match=r"^--method spcl: option normalise must be one of all, selected, got 'some'$"):
        registry.method_options("spcl", {"normalise": "some"})


def test_an_spcl_space_below_its_option_s_range_is_refused():
    with pytest.raises(ConfigError, match=r"space\.cl_growth.* >= 1"):
        specs.build({"backbone": "mmgcn", "space": {"cl_growth": {"low": 0.5, "high": 2.0}}})


def test_a_legacy_spcl_table_is_read_as_spcl_s_method_options():
    spec = specs.build({"backbone": "mmgcn", "spcl": {"normalise": "selected"}})
    assert spec.method_options == {"normalise": "selected"}
    stored = {**spec.to_dict(), "spcl": {"cap": 9.0}, "method_options": {}}
    assert specs.from_dict(stored).method_options == {"cap": 9.0}


def test_describing_the_methods_imports_no_torch():
    code = "import sys; from spcl_search.methods import registry; registry.methods(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_a_plugin_module_that_cannot_be_imported_is_a_one_line_error(tmp_path):
    proc = _cli("train", "--help", cwd=tmp_path, plugins="no_such_lab_module")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == ["error: SPCL_SEARCH_PLUGINS: cannot import 'no_such_lab_module' (No module named 'no_such_lab_module')"]


def test_no_cl_with_another_method_is_a_one_line_error(tmp_path):
    proc = _cli("train", "--no-cl", "--method", "ogm_ge", cwd=tmp_path, plugins="")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == ["error: --no-cl means --method none; drop one of --no-cl and --method ogm_ge"]


def test_an_spcl_flag_with_another_method_is_a_one_line_error(tmp_path):
    proc = _cli("train", "--method", "opm", "--cl-threshold", "0.7", cwd=tmp_path, plugins="")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == ["error: --cl-threshold is an option of --method spcl, not of --method opm"]


def test_a_one_file_method_plugin_appears_in_help_trains_and_is_searched(toy_dir):
    helped = _cli("train", "--help", cwd=toy_dir)
    assert helped.returncode == 0, helped.stderr
    assert "toy (plain NLL with a scaled" in " ".join(helped.stdout.replace("│", " ").split())

    out = toy_dir / "toy.json"
    trained = _cli("train", "--backbone", "late_fusion", "--method", "toy", "--method-option", "scale=2", "--epochs", "1", "--json", str(out), cwd=toy_dir)
    assert trained.returncode == 0, trained.stderr
    config = json.loads(out.read_text())["config"]
    assert config["method"] == "toy" and config["method_options"] == {"scale": 2.0}

    url = f"sqlite:///{toy_dir / 'toy.db'}"
    study = "late-toy"
    ran = _cli("run", "--backbone", "late_fusion", "--method", "toy", "--study", study, "--n-trials", "2", "--epochs", "1", "--storage", url, cwd=toy_dir)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    trials = optuna.load_study(study_name=study, storage=url).trials
    assert len(trials) == 2 and all(t.state.name == "COMPLETE" and set(t.params) == {"scale"} for t in trials)
    assert all(t.user_attrs["method"] == "toy" for t in trials)


def test_the_engines_defaults_are_the_spcl_methods_option_defaults():
    from spcl_search.methods.curriculum import SPCLOptions
    from spcl_search.spcl import SPCLConfig

    engine, options = SPCLConfig(), SPCLOptions()
    assert (engine.threshold, engine.growth, engine.cap, engine.normalise, engine.score) == (
        options.cl_threshold,
        options.cl_growth,
        options.cap,
        options.normalise,
        options.score,
    )

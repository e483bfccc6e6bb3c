"""Optuna's private API is used in one module, against the Optuna range pyproject.toml pins; a change fails here."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import optuna
from packaging.requirements import Requirement

from spcl_search.search import optuna_internals
from spcl_search.search.retry import ResilientRDBStorage

ROOT = Path(__file__).resolve().parents[1]


def test_every_storage_method_the_retries_wrap_exists_in_this_optuna():
    assert optuna_internals.missing_storage_methods() == []
    for name in optuna_internals.RETRIED_METHODS:
        assert getattr(ResilientRDBStorage, name) is not getattr(optuna.storages.RDBStorage, name), name


def test_the_installed_optuna_is_inside_the_pinned_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (pin,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "optuna"]
    assert pin.specifier and optuna.__version__ in pin.specifier


def test_no_other_module_touches_optunas_private_names():
    private = {"_rdb", "_create_scoped_session", "_study_id", "_trial_id", "_backend", "_CachedStorage"}
    offenders = []
    for path in (ROOT / "spcl_search").rglob("*.py"):
        if path.name == "optuna_internals.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = {node.attr} if isinstance(node, ast.Attribute) else {a.name for a in node.names} if isinstance(node, ast.ImportFrom) else set()
            module = node.module or "" if isinstance(node, ast.ImportFrom) else ""
            if names & private or "._rdb" in module:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []

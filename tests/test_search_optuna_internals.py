"""Optuna's private API is used in one module, against the Optuna range pyproject.toml pins; a change fails here."""

from __future__ import annotations

import ast
import tomllib
import warnings
from pathlib import Path

import optuna
import pytest
from packaging.requirements import Requirement

from spcl_search.search import optuna_internals
from spcl_search.search.rdb import ResilientRDBStorage
from spcl_search.search.storage import open_storage

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
            names = (
                {node.attr}
                if isinstance(node, ast.Attribute)
                else {a.name for a in node.names}
                if isinstance(node, ast.ImportFrom)
                else set()
            )
            module = node.module or "" if isinstance(node, ast.ImportFrom) else ""
            if names & private or "._rdb" in module:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def _proxy_services(storage, monkeypatch):
    """Optuna's own proxy servicer and the one :func:`optuna_internals.grpc_server` registers, over ``storage``."""
    from concurrent.futures import ThreadPoolExecutor

    import optuna.storages._grpc.auto_generated.api_pb2_grpc as api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    captured = []
    monkeypatch.setattr(api_pb2_grpc, "add_StorageServiceServicer_to_server", lambda service, server: captured.append(service))
    with ThreadPoolExecutor(max_workers=1) as pool:
        optuna_internals.grpc_server(storage, pool).stop(None)
    return OptunaStorageProxyService(storage), captured[0]


class _Aborted(Exception):
    pass


class _Context:
    """The part of a gRPC servicer context GetTrials uses."""

    def abort(self, code, details):
        raise _Aborted(code.name, details)


def test_the_proxy_reads_only_the_trials_a_client_asks_for_and_the_same_ones_as_optuna(tmp_path, monkeypatch):
    from optuna.storages._grpc.auto_generated import api_pb2

    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=None)  # the proxy's own storage
    study = optuna.create_study(storage=storage, study_name="s")
    for i in range(6):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        trial.set_user_attr("i", i)
        if i not in (2, 5):  # trials 2 and 5 stay RUNNING
            study.tell(trial, float(i))
    ids = [t._trial_id for t in study.get_trials(deepcopy=False)]
    theirs, ours = _proxy_services(storage, monkeypatch)
    calls = []
    real = storage.get_all_trials
    storage.get_all_trials = lambda *a, **k: calls.append(a) or real(*a, **k)  # type: ignore[method-assign]
    for greater_than, included in ((-1, []), (ids[3], [ids[2]]), (ids[5], [ids[2], ids[5]]), (ids[5], [])):
        request = api_pb2.GetTrialsRequest(study_id=study._study_id, included_trial_ids=included, trial_id_greater_than=greater_than)
        calls.clear()
        mine = ours.GetTrials(request, None).trials
        assert calls == []  # never the whole study
        assert [t.SerializeToString(deterministic=True) for t in mine] == [
            t.SerializeToString(deterministic=True) for t in theirs.GetTrials(request, None).trials
        ]
    request = api_pb2.GetTrialsRequest(study_id=study._study_id, included_trial_ids=[ids[2]], trial_id_greater_than=ids[3])
    assert [t.trial_id for t in ours.GetTrials(request, None).trials] == [ids[2], ids[4], ids[5]]


def test_the_proxy_answers_not_found_for_a_study_that_does_not_exist(tmp_path, monkeypatch):
    from optuna.storages._grpc.auto_generated import api_pb2

    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=None)
    _, ours = _proxy_services(storage, monkeypatch)
    with pytest.raises(_Aborted) as err:
        ours.GetTrials(api_pb2.GetTrialsRequest(study_id=999, trial_id_greater_than=-1), _Context())
    assert err.value.args[0] == "NOT_FOUND"


def test_the_proxy_client_can_be_given_its_channel():
    import grpc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=1)
    channel = grpc.insecure_channel("127.0.0.1:2")
    optuna_internals.use_channel(client, channel)
    assert client._channel is channel and client._stub is not None and client._cache is not None
    client.close()


def test_a_running_trial_is_stale_only_after_the_grace_period(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=1, grace_period=2)
    trial = optuna.create_study(storage=storage).ask()
    assert not optuna_internals.trial_is_stale(storage, trial._trial_id, 2.0)
    assert optuna_internals.trial_is_stale(storage, trial._trial_id, -1.0)  # no heartbeat: its start counts
    storage.record_heartbeat(trial._trial_id)
    assert not optuna_internals.trial_is_stale(storage, trial._trial_id, 2.0)

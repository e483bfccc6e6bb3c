"""Files are written to a temporary name and renamed into place, so a crash never leaves a half file that
a later command trusts: if the write or the rename fails, or the writer is killed mid-write, the target
is absent (first write) or unchanged (rewrite), no temporary file is left (unless the writer was killed),
and a damaged or missing data-cache entry is rebuilt.

Writers: training checkpoints, ``train --json``, HTML reports (and the gain CSV), ``data synth`` and the
feature cache.
"""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from spcl_search.data import load_dataset, make_synthetic
from spcl_search.data.cache import cache_paths, file_sha256, read_cache


class Crash(Exception):
    """Stands for the process dying at this point."""


def _failing_replace(*args, **kwargs):
    raise Crash("the machine went down before the rename")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------------------------- checkpoints


def _kill_mid_write(script: str, *args: object) -> None:
    """Run ``script`` in a child, SIGKILL it once it prints "writing" (its write has begun), and reap it."""
    writer = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()


def _save(path: Path, value: float) -> None:
    from spcl_search.train import _save_checkpoint

    _save_checkpoint(str(path), torch.nn.Linear(2, 1).requires_grad_(False).apply(lambda m: m.weight.fill_(value)), {"epoch": value})


def test_a_checkpoint_whose_rename_fails_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "best.pt"
    monkeypatch.setattr("spcl_search.outputs.os.replace", _failing_replace)
    with pytest.raises(Crash):
        _save(target, 1.0)
    assert not target.exists() and _leftovers(tmp_path) == []


def test_a_checkpoint_rewrite_that_fails_mid_write_keeps_the_previous_one(tmp_path, monkeypatch):
    target = tmp_path / "best.pt"
    _save(target, 1.0)
    before = target.read_bytes()

    def half_then_crash(obj, fh, *args, **kwargs):
        fh.write(b"PK\x03\x04 half a checkpoint")
        raise Crash("killed while writing")

    monkeypatch.setattr("spcl_search.train.torch.save", half_then_crash)
    with pytest.raises(Crash):
        _save(target, 2.0)
    assert target.read_bytes() == before and _leftovers(tmp_path) == []
    assert torch.load(target, weights_only=False)["meta"]["epoch"] == 1.0


SLOW_CHECKPOINT = textwrap.dedent(
    """
    import sys, time, torch
    from spcl_search.train import _save_checkpoint

    real_save = torch.save
    def slow_save(obj, fh, *args, **kwargs):
        fh.write(b"half a checkpoint"); fh.flush()
        print("writing", flush=True)
        time.sleep(60)
        real_save(obj, fh, *args, **kwargs)
    torch.save = slow_save
    _save_checkpoint(sys.argv[1], torch.nn.Linear(2, 1), {"epoch": 2})
    """
)


@pytest.mark.slow  # the writer imports torch and the backbones: several seconds
def test_a_checkpoint_writer_killed_mid_write_leaves_the_previous_checkpoint(tmp_path):
    target = tmp_path / "best.pt"
    _save(target, 1.0)
    _kill_mid_write(SLOW_CHECKPOINT, target)
    assert torch.load(target, weights_only=False)["meta"]["epoch"] == 1.0  # what `train` would resume from


# ------------------------------------------------------------------------ reports and JSON output


def test_a_report_whose_rename_fails_leaves_the_previous_report(tmp_path, monkeypatch):
    from spcl_search.outputs import atomic_write

    target = tmp_path / "study.html"
    atomic_write(target, "<html>old</html>")
    monkeypatch.setattr("spcl_search.outputs.os.replace", _failing_replace)
    with pytest.raises(Crash):
        atomic_write(target, "<html>new" + "x" * 100_000)
    assert target.read_text() == "<html>old</html>" and _leftovers(tmp_path) == []


def test_train_json_whose_rename_fails_leaves_no_file(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from spcl_search.cli import app

    target = tmp_path / "result.json"
    monkeypatch.setattr("spcl_search.outputs.os.replace", _failing_replace)
    result = CliRunner().invoke(app, ["train", "--backbone", "late_fusion", "--epochs", "1", "--json", str(target)])
    assert isinstance(result.exception, Crash)
    assert not target.exists() and _leftovers(tmp_path) == []


def test_data_synth_whose_rename_fails_keeps_the_previous_file(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from spcl_search.cli import app

    target = tmp_path / "syn.pkl"
    target.write_bytes(b"previous")
    monkeypatch.setattr("spcl_search.outputs.os.replace", _failing_replace)
    result = CliRunner().invoke(app, ["data", "synth", str(target), "--force"])
    assert isinstance(result.exception, Crash)
    assert target.read_bytes() == b"previous" and _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------- the data cache


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "features.pkl"
    path.write_bytes(pickle.dumps(make_synthetic(n_dialogues=6, seed=3, min_len=2, max_len=4), protocol=4))
    return path


def test_a_cache_entry_whose_rename_fails_is_absent_and_the_load_still_works(source, tmp_path, monkeypatch):
    from spcl_search.data import cache

    cache_dir = tmp_path / "cache"
    monkeypatch.setattr(cache.os, "replace", _failing_replace)
    with pytest.raises(Crash):
        load_dataset(source, cache_dir=cache_dir)
    monkeypatch.undo()
    assert read_cache(file_sha256(source), cache_dir) is None and _leftovers(cache_dir) == []
    ds = load_dataset(source, cache_dir=cache_dir)
    assert ds.info["cache"]["hit"] is False and len(ds.train) + len(ds.dev) + len(ds.test) == 6


SLOW_CACHE = textwrap.dedent(
    """
    import os, sys, time
    from spcl_search.data import load_dataset
    from spcl_search.data.private import user_key

    user_key()  # made before the write this test interrupts
    def slow_fsync(fd):  # the entry's bytes are in its temporary file; the rename has not happened
        print("writing", flush=True)
        time.sleep(60)
    os.fsync = slow_fsync
    load_dataset(sys.argv[1], cache_dir=sys.argv[2])
    """
)


def test_a_cache_writer_killed_mid_write_leaves_no_entry_and_the_next_load_rebuilds_it(source, tmp_path):
    cache_dir = tmp_path / "cache"
    _kill_mid_write(SLOW_CACHE, source, cache_dir)
    npz, meta = cache_paths(file_sha256(source), cache_dir)
    assert not npz.exists() and not meta.exists() and _leftovers(cache_dir)  # only the dead writer's temp file
    ds = load_dataset(source, cache_dir=cache_dir)
    assert ds.info["cache"]["hit"] is False and npz.exists() and meta.exists()
    assert load_dataset(source, cache_dir=cache_dir).info["cache"]["hit"] is True

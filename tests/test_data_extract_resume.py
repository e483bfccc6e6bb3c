"""Long-job behaviour of ``data extract``: a killed run resumes from the cache, worker processes agree with one.

Real subprocesses and real extractors; slow (each process loads torch and the text model).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from extract_corpora import make_manifest, require_extract_tools

from spcl_search.data import safe_load

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clips_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 utterances, each a clip with a face and speech (so audio and visual both take real work)."""
    require_extract_tools()
    return make_manifest(tmp_path_factory.mktemp("clips") / "corpus", video_rows=10**6)


def command(manifest: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "spcl_search", "data", "extract", str(manifest), "--layout", "manifest",
            "--out", str(out), "--cache-dir", str(cache), "--visual-frames", "3", "--json", *extra]


@pytest.fixture(scope="module")
def uninterrupted(clips_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file of one uninterrupted run, one worker, empty cache: what every other run must match."""
    root = tmp_path_factory.mktemp("uninterrupted")
    subprocess.run(command(clips_manifest, root / "features.pkl", root / "cache"), capture_output=True, check=True)
    return root / "features.pkl"


def entries(cache: Path) -> int:
    return sum(1 for _ in cache.rglob("*.npy")) if cache.exists() else 0


def test_killed_extraction_resumes_from_the_cache_and_writes_the_same_file(clips_manifest, uninterrupted, tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "features.pkl"
    total = 1 + 2 * 10  # one text batch, then audio and visual per utterance
    proc = subprocess.Popen(command(clips_manifest, out, cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while entries(cache) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    done = entries(cache)
    assert 4 <= done < total, f"the kill should land mid-way ({done} of {total} entries)"
    assert not out.exists() and not list(tmp_path.glob(".features.pkl.*"))

    resumed = subprocess.run(command(clips_manifest, out, cache), capture_output=True, text=True, check=True)
    summary = json.loads(resumed.stdout)
    # every entry finished before the kill is reused (the text batch holds all 10 utterances) and only the rest is run
    assert summary["cached"]["t"] == 10 and summary["cached"]["a"] + summary["cached"]["v"] == done - 1
    assert summary["computed"]["a"] + summary["computed"]["v"] == total - done
    assert out.read_bytes() == uninterrupted.read_bytes()


def test_two_worker_processes_give_the_features_of_one(clips_manifest, uninterrupted, tmp_path):
    two = tmp_path / "two.pkl"
    run = subprocess.run(command(clips_manifest, two, tmp_path / "cache", "--jobs", "2"), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["jobs"] == 2
    a, b = safe_load(uninterrupted), safe_load(two)
    assert a["utterance_id"] == b["utterance_id"] and a["label"] == b["label"]
    for vid in a["label"]:
        np.testing.assert_array_equal(np.stack(a["audio"][vid]), np.stack(b["audio"][vid]))
        np.testing.assert_array_equal(np.stack(a["visual"][vid]), np.stack(b["visual"][vid]))
        np.testing.assert_allclose(np.stack(a["text"][vid]), np.stack(b["text"][vid]), atol=1e-5)

"""Shared fixtures: tiny hand-built dialogues, the PostgreSQL URL, single-threaded torch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from spcl_search.data.types import Dialogue

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SPCL_SHARED_DATA", REPO.parent / "shared" / "data"))
DIMS = {"a": 6, "t": 8, "v": 5}


def make_dialogues(n: int, seed: int = 0, n_speakers: int = 2, n_classes: int = 4, min_len: int = 3, max_len: int = 9) -> list[Dialogue]:
    """Random dialogues whose features carry some label signal."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(rng.integers(min_len, max_len + 1))
        labels = rng.integers(0, n_classes, size=length)
        feats = {}
        for m, dim in DIMS.items():
            proto = np.random.default_rng(100 + ord(m)).normal(size=(n_classes, dim))
            feats[m] = (proto[labels] + rng.normal(size=(length, dim))).astype(np.float32)
        out.append(Dialogue(vid=f"d{seed}_{i}", labels=labels.astype(np.int64), speakers=rng.integers(0, n_speakers, size=length).astype(np.int64), features=feats))
    return out


@pytest.fixture
def dialogues() -> list[Dialogue]:
    return make_dialogues(6)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the real PostgreSQL used by the shared-storage tests (skips with the reason if down)."""
    url = os.environ.get("SPCL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    from spcl_search.search.storage import resolve_url
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(resolve_url(url))
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - report any reason for the skip
        reason = f"PostgreSQL at {url} is not reachable ({type(exc).__name__}); start it or set SPCL_TEST_PG_URL"
        if os.environ.get("SPCL_REQUIRE_PG"):
            pytest.fail(reason)
        pytest.skip(reason)
    return url

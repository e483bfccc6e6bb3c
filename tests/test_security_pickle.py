"""Hostile feature pickles: each loads or gives a one-line error; none crashes, hangs or exhausts memory.

The corpus is made at test time (tests/pickle_cases.py): the attacks an adversarial review found (numpy
reconstruction driven into object pointers through ``BUILD``, ``_frombuffer`` and ``scalar``; shared-reference
and memo bombs; deep nesting; hash bombs), and 240 opcode-level mutations of a valid file at protocols 2, 4
and 5 (seed 20). They are loaded with ``load_dataset`` in a subprocess under ``RLIMIT_AS``, several per
process, with a per-case timeout; a crash or timeout ends that process and the rest resume in a new one.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pickle_cases
import pytest

from spcl_search.data import safe_loads
from spcl_search.errors import DataError

HERE = Path(__file__).resolve().parent
LIMIT_MB = 768
CASE_TIMEOUT_S = 30
N_MUTATIONS = 240
#: what a refused bomb may add to the process's peak memory: about 10x the file plus a constant
MEMORY_FACTOR, MEMORY_CONSTANT_MB = 10, 64


def run_cases(folder: Path) -> tuple[float, dict[str, dict[str, Any]]]:
    """Load every case of ``folder`` in driver processes; returns (peak RSS before the first case, case -> record)."""
    names = sorted(p.stem for p in folder.glob("*.pkl"))
    records: dict[str, dict[str, Any]] = {}
    baseline = None
    first = 0
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    while first < len(names):
        proc = subprocess.run(
            [sys.executable, str(HERE / "pickle_cases.py"), str(folder), str(LIMIT_MB), str(CASE_TIMEOUT_S), str(first)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        started = None
        for line in proc.stdout.splitlines():
            record = json.loads(line)
            if "ready" in record:
                baseline = record["maxrss_mb"] if baseline is None else baseline
            elif "start" in record:
                started = record["start"]
            else:
                records[record["case"]] = record
                started = None
        if proc.returncode == 0:
            break
        assert started is not None, proc.stderr[-2000:]  # died outside a case
        records[started] = {"case": started, "outcome": f"crash (exit {proc.returncode})", "message": proc.stderr[-2000:]}
        first = names.index(started) + 1
    assert baseline is not None
    return baseline, records


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pickle-corpus")
    sizes = {}
    for name, data in pickle_cases.hostile_cases().items():
        (folder / f"hostile_{name}.pkl").write_bytes(data)
        sizes[f"hostile_{name}"] = len(data)
    for name, data in pickle_cases.mutations(seed=20, n=N_MUTATIONS):
        (folder / f"{name}.pkl").write_bytes(data)
    baseline, records = run_cases(folder)
    return {"folder": folder, "sizes": sizes, "baseline": baseline, "records": records}


def _failures(records: dict[str, dict[str, Any]], prefix: str) -> list[str]:
    """Cases that crashed, timed out, raised a traceback or gave an error of more than one line."""
    bad = []
    for name, r in sorted(records.items()):
        if name.startswith(prefix) and (r["outcome"] not in ("loaded", "error") or "\n" in r.get("message", "")):
            bad.append(f"{name}: {r['outcome']}: {r.get('message', '')[-600:]}")
    return bad


def test_every_mutated_file_loads_or_gives_a_one_line_error(corpus):
    records = corpus["records"]
    mutations = [n for n in records if n.startswith("mutation_")]
    assert len(mutations) == N_MUTATIONS >= 200
    assert _failures(records, "mutation_") == []
    for name in mutations:
        if records[name]["outcome"] == "error":
            assert records[name]["message"].startswith(str(corpus["folder"] / f"{name}.pkl") + ": ")


def test_every_hostile_file_is_refused_with_a_one_line_error_naming_it(corpus):
    records = corpus["records"]
    hostile = [n for n in records if n.startswith("hostile_")]
    assert len(hostile) == len(pickle_cases.hostile_cases())
    assert _failures(records, "hostile_") == []
    for name in hostile:
        r = records[name]
        assert r["outcome"] == "error", name
        assert r["message"].startswith(str(corpus["folder"] / f"{name}.pkl") + ": ") and "\n" not in r["message"]


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("object_dtype_build", "refuses numpy dtype 'O8'"),
        ("object_dtype_features", "refuses numpy dtype 'O8'"),
        ("object_dtype_frombuffer", "refuses numpy dtype 'O8'"),
        ("object_dtype_scalar", "refuses numpy dtype 'O8'"),
        ("structured_dtype", "refuses numpy dtype 'V8'"),
        ("shared_lists_24", "refuses to load: its shared references expand to more than"),
        ("shared_lists_40", "refuses to load: its shared references expand to more than"),
        ("shared_tuple_key_40", "a dict key or set member too large to be an id"),
        ("memo_index_2_27", "refuses to load: memo index 134,217,728 is beyond what a 9-byte file can number"),
        ("deep_lists", "is nested more than 100 levels deep"),
        ("reference_cycle", "reference cycle"),
        ("newobj_ndarray", "instantiates a class"),
        ("build_on_dict", "BUILD (set state) on a dict"),
        ("hash_flood_ints", "keys of one dict or set with the same hash (a hash flood)"),
    ],
)
def test_each_attack_is_refused_for_what_it_is(corpus, case, says):
    assert says in corpus["records"][f"hostile_{case}"]["message"]


def test_bombs_are_refused_within_a_second_of_cpu(corpus):
    slow = {n: r["cpu"] for n, r in corpus["records"].items() if n.startswith("hostile_") and r["cpu"] > 1.0}
    assert slow == {}


def test_bombs_stay_within_about_ten_times_their_size_in_memory(corpus):
    records, sizes = corpus["records"], corpus["sizes"]
    peak = max(r["maxrss_mb"] for n, r in records.items() if n.startswith("hostile_"))
    allowed = MEMORY_FACTOR * max(sizes.values()) / 2**20 + MEMORY_CONSTANT_MB
    assert peak - corpus["baseline"] < allowed


def test_a_large_flood_of_containers_is_refused_within_ten_times_its_size(tmp_path):
    data = pickle_cases.asm(("PROTO", 2), "EMPTY_LIST", "MARK") + b"]" * (4 << 20) + pickle_cases.asm("APPENDS", "STOP")
    (tmp_path / "flood.pkl").write_bytes(data)
    baseline, records = run_cases(tmp_path)
    record = records["flood"]
    assert record["outcome"] == "error" and "refuses to load: it builds more than" in record["message"]
    assert record["maxrss_mb"] - baseline < MEMORY_FACTOR * len(data) / 2**20 + MEMORY_CONSTANT_MB


# ------------------------------------------------------------------ arrays are made from (dtype, shape, bytes)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_arrays_come_back_as_plain_owning_arrays_of_the_same_values(protocol):
    arrays = [np.arange(6, dtype=">f4").reshape(2, 3), np.asfortranarray(np.arange(6.0).reshape(3, 2)), np.array(["ab", "c"]), np.zeros((0, 4))]
    out = safe_loads(pickle.dumps(arrays, protocol=protocol))
    for got, want in zip(out, arrays):
        assert type(got) is np.ndarray and got.flags.owndata and got.flags.writeable
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_structured_dtypes_are_refused_even_without_objects():
    with pytest.raises(DataError, match="^data.pkl: refuses numpy dtype 'V8'"):
        safe_loads(pickle.dumps(np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]), protocol=2), name="data.pkl")


def test_an_array_whose_bytes_disagree_with_its_shape_is_refused():
    data = pickle.dumps(np.arange(4, dtype=np.float32), protocol=2)
    raw = np.arange(4, dtype=np.float32).tobytes()
    shorter = data.replace(pickle_cases.encode(pickle_cases.OP["BINUNICODE"], raw.decode("latin1")), pickle_cases.encode(pickle_cases.OP["BINUNICODE"], raw[:12].decode("latin1")))
    with pytest.raises(DataError, match=r"needs 16 bytes but carries 12"):
        safe_loads(shorter, name="data.pkl")


def test_a_shared_array_counts_once_per_reference_toward_the_limit():
    big = np.zeros(1 << 18, dtype=np.float64)  # 2 MiB, pickled once
    with pytest.raises(DataError, match="its shared references expand"):
        safe_loads(pickle.dumps({"x": [big] * 64}, protocol=4), name="data.pkl")
    assert len(safe_loads(pickle.dumps({"x": [big] * 2}, protocol=4))["x"]) == 2

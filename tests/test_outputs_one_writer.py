"""Every file the project writes goes through :func:`spcl_search.outputs.atomic_write`: one writer, one policy
(temporary file in the folder, fsync, rename), so no writer can leave a half file behind."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

import spcl_search
from spcl_search.outputs import OutputError, atomic_write

#: ways of writing a whole file other than through atomic_write (a worker's log, opened to append, is a stream)
DIRECT_WRITES = re.compile(r"os\.replace\(|os\.rename\(|os\.open\(|\.write_text\(|\.write_bytes\(|open\([^)]*['\"][wx]b?['\"]")


def test_no_module_writes_a_file_except_through_atomic_write():
    root = Path(spcl_search.__file__).parent
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for path in root.rglob("*.py")
        if path.name != "outputs.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if DIRECT_WRITES.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == []


def test_atomic_write_sets_the_mode_it_is_given(tmp_path):
    target = atomic_write(tmp_path / "key", b"k", mode=0o600)
    assert target.stat().st_mode & 0o777 == 0o600


def test_an_exclusive_write_never_replaces_an_existing_file(tmp_path):
    target = tmp_path / "key"
    atomic_write(target, b"first", exclusive=True)
    with pytest.raises(FileExistsError):
        atomic_write(target, b"second", exclusive=True)
    assert target.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["key"]


def test_of_concurrent_exclusive_writers_exactly_one_wins(tmp_path):
    target, winners = tmp_path / "key", []

    def write(i: int) -> None:
        try:
            atomic_write(target, f"writer {i}", exclusive=True)
            winners.append(i)
        except FileExistsError:
            pass

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and target.read_text() == f"writer {winners[0]}"


def test_an_unwritable_path_is_one_line_naming_it_and_an_oserror(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as info:
        atomic_write(blocker / "out.json", "{}")
    assert isinstance(info.value, OSError) and str(blocker) in str(info.value) and "\n" not in str(info.value)

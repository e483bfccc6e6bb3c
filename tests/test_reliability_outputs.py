"""An output that cannot be written (a read-only folder, a file where a folder should be) is a one-line error naming
the path, exit 2, and the file already there is kept; for every command that writes."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from report_fixtures import balance_study

from spcl_search.cli import main
from spcl_search.errors import ConfigError
from spcl_search.outputs import atomic_write

OLD = b"the previous output\n"


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` made unwritable: mode 0555, and immutable when running as root (whom modes do not stop)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    immutable = False
    if os.geteuid() == 0:
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
        if not immutable:
            folder.chmod(0o755)
            pytest.skip("running as root where chattr +i is not supported: no folder root cannot write")
    try:
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def run(*args: str) -> int:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return int(exc.value.code or 0)


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('outputs') / 'studies.db'}"
    balance_study(name="out-study", storage=url, n_spcl=4)
    return url


def test_report_into_a_read_only_folder_names_it_and_keeps_the_old_page(storage, tmp_path, capsys):
    page = tmp_path / "reports" / "out-study.html"
    page.parent.mkdir()
    page.write_bytes(OLD)
    with read_only(page.parent):
        assert run("report", "--study", "out-study", "--storage", storage, "--out", str(page.parent)) == 2
    line = one_line_error(capsys)
    assert line.startswith(f"error: {page}: cannot write it (") and page.read_bytes() == OLD


def test_report_out_that_is_a_file_is_one_line(storage, tmp_path, capsys):
    blocker = tmp_path / "reports"
    blocker.write_bytes(OLD)
    assert run("report", "--study", "out-study", "--storage", storage, "--out", str(blocker)) == 2
    assert f"{blocker} is a file, not a folder" in one_line_error(capsys) and blocker.read_bytes() == OLD


def test_compare_csv_into_a_read_only_folder_keeps_the_old_csv(storage, tmp_path, capsys):
    csv = tmp_path / "tables" / "gain.csv"
    csv.parent.mkdir()
    csv.write_bytes(OLD)
    with read_only(csv.parent):
        assert run("compare", "out-study", "--storage", storage, "--csv", str(csv)) == 2
    assert one_line_error(capsys).startswith(f"error: {csv}: cannot write it") and csv.read_bytes() == OLD


def test_data_synth_into_a_read_only_folder_keeps_the_old_file(tmp_path, capsys):
    out = tmp_path / "data" / "synthetic.pkl"
    out.parent.mkdir()
    out.write_bytes(OLD)
    with read_only(out.parent):
        assert run("data", "synth", str(out), "--n-dialogues", "4", "--force") == 2
    assert one_line_error(capsys).startswith(f"error: {out}: cannot write it") and out.read_bytes() == OLD


def test_train_json_into_a_read_only_folder_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "runs" / "run.json"
    with read_only(out.parent):
        code = run("train", "--backbone", "late_fusion", "--dataset", "synthetic", "--epochs", "1", "--json", str(out))
    assert code == 2 and one_line_error(capsys).startswith(f"error: {out.parent}: cannot write in this folder")


def test_data_extract_into_a_read_only_folder_is_refused_before_extracting(tmp_path, capsys):
    out = tmp_path / "features" / "x.pkl"
    csv = tmp_path / "manifest.csv"
    csv.write_text("dialogue,utterance,speaker,label,split,text,audio,video\n")
    with read_only(out.parent):
        assert run("data", "extract", str(csv), "--layout", "manifest", "--out", str(out), "-m", "t") == 2
    assert one_line_error(capsys).startswith(f"error: {out.parent}: cannot write in this folder")


def test_a_write_that_fails_half_way_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "result.bin"
    target.write_bytes(OLD)

    def half(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(ConfigError, match=rf"^{target}: cannot write it \(No space left on device\)"):
        atomic_write(target, half)
    assert target.read_bytes() == OLD and sorted(p.name for p in tmp_path.iterdir()) == ["result.bin"]

"""``spcl-search report`` and ``compare`` on SQLite fixture studies; user errors are one line, exit 2."""

from __future__ import annotations

import csv

import pytest
from report_fixtures import balance_study, search_study

from spcl_search.cli import main


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'studies.db'}"
    balance_study(name="balance-mmgcn", storage=url, n_spcl=6)
    balance_study(name="balance-biddin", storage=url, n_spcl=6, backbone="biddin", seed=4)
    search_study(name="search-dialoguegcn", storage=url, n_trials=8, baseline=True)
    return url


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_report_writes_one_html_page_named_after_the_study(storage, tmp_path, capsys):
    code, out, _ = run(
        ["report", "--study", "balance-mmgcn", "--storage", storage, "--out", str(tmp_path / "r")],
        capsys,
    )
    assert code == 0
    page = tmp_path / "r" / "balance-mmgcn.html"
    assert page.is_file() and str(page) in out.replace("\n", "")
    assert [p.name for p in (tmp_path / "r").iterdir()] == [
        "balance-mmgcn.html"
    ]  # no temp file left


def test_report_out_naming_an_html_file_writes_that_file(storage, tmp_path, capsys):
    page = tmp_path / "pages" / "lf.html"
    code, out, _ = run(["report", "--study", "balance-mmgcn", "--storage", storage, "--out", str(page)], capsys)
    assert code == 0
    assert page.is_file() and "<html" in page.read_text()[:500].lower()
    assert [p.name for p in page.parent.iterdir()] == ["lf.html"]  # no folder named lf.html, no temp file


def test_report_uses_fanova_on_request(storage, tmp_path, capsys):
    code, _, _ = run(
        [
            "report",
            "-s",
            "balance-mmgcn",
            "--storage",
            storage,
            "-o",
            str(tmp_path),
            "--importance",
            "fanova",
        ],
        capsys,
    )
    assert code == 0
    assert (
        "Parameter importance: dev_f1_atv (fANOVA, 6 trials)"
        in (tmp_path / "balance-mmgcn.html").read_text()
    )


def test_report_on_unknown_study_is_one_line_naming_the_known_ones(storage, tmp_path, capsys):
    code, _, err = run(
        ["report", "--study", "nope", "--storage", storage, "--out", str(tmp_path)], capsys
    )
    assert code == 2
    assert err.count("\n") == 1 and "'nope' not found" in err and "balance-mmgcn" in err


def test_report_on_missing_sqlite_file_is_one_line(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    code, _, err = run(
        ["report", "--study", "x", "--storage", url, "--out", str(tmp_path)], capsys
    )
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1
    assert not (tmp_path / "absent.db").exists()


def test_report_png_without_browser_is_one_line_before_any_work(
    storage, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chromium"))
    code, _, err = run(
        [
            "report",
            "-s",
            "balance-mmgcn",
            "--storage",
            storage,
            "-o",
            str(tmp_path / "r"),
            "--png",
        ],
        capsys,
    )
    assert code == 2 and err.count("\n") == 1
    assert "no Chromium/Chrome browser found" in err and "BROWSER_PATH" in err
    assert not (tmp_path / "r").exists()


def test_report_rejects_an_unknown_format(storage, tmp_path, capsys):
    code, _, err = run(
        ["report", "-s", "balance-mmgcn", "--storage", storage, "--format", "gif"], capsys
    )
    assert code == 2 and "--format 'gif'" in err


def test_compare_prints_the_gain_table_across_studies(storage, capsys):
    code, out, _ = run(
        ["compare", "balance-mmgcn", "balance-biddin", "search-dialoguegcn", "--storage", storage],
        capsys,
    )
    assert code == 0
    assert out.count("vs T+A") == 3 and "biddin" in out and "Best SPCL settings" in out


def test_compare_writes_the_gain_table_as_csv(storage, tmp_path, capsys):
    out_csv = tmp_path / "gain.csv"
    code, _, _ = run(
        [
            "compare",
            "balance-mmgcn",
            "balance-biddin",
            "--storage",
            storage,
            "--csv",
            str(out_csv),
        ],
        capsys,
    )
    assert code == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert [(r["backbone"], r["versus"]) for r in rows] == [
        ("mmgcn", "at"),
        ("mmgcn", "tv"),
        ("mmgcn", "av"),
        ("biddin", "at"),
        ("biddin", "tv"),
        ("biddin", "av"),
    ]
    assert [float(r["f1_without"]) for r in rows[:3]] == pytest.approx([-1.2, 1.0, 1.2])

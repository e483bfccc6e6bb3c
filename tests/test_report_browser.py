"""The HTML report as a person sees it: rendered by headless Chromium, figures present and drawn."""

from __future__ import annotations

import os
import re

import pytest
from report_fixtures import balance_study, chromium, render, screenshot, search_study

from spcl_search.reports.html import write_html
from spcl_search.reports.images import write_images
from spcl_search.reports.report import build_report

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest.fixture(scope="module", autouse=True)
def _needs_chromium():
    if chromium() is None:
        reason = "headless Chromium not installed (apt-get install chromium)"
        if os.environ.get("SPCL_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)

BALANCE_TITLES = (
    "Gain (%): tri-modal minus bi-modal, without vs with SPCL (mmgcn)",
    "Pareto front: dev_f1_atv vs gain (17 trials)",
    "Parameter importance: dev_f1_atv (PED-ANOVA, 16 trials)",
    "Parameter importance: gain (PED-ANOVA, 16 trials)",
    "Contour: cl_threshold x cl_growth -> dev_f1_atv (16 trials)",
    "Contour: cl_threshold x cl_growth -> gain (16 trials)",
    "Optimisation history: dev_f1_atv",
    "Optimisation history: gain",
    "Timeline of 17 trials",
)


@pytest.fixture(scope="module")
def balance_page(tmp_path_factory):
    study = balance_study(name="balance-fixture-mmgcn")
    return write_html(build_report(study), tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def balance_summary(balance_page, tmp_path_factory):
    return render(balance_page, tmp_path_factory.mktemp("profile"))[1]


def test_balance_report_renders_every_expected_figure_with_data(
    balance_page, balance_summary, tmp_path
):
    summary = balance_summary
    assert summary["complete"], summary
    by_title = {f["title"]: f for f in summary["figures"]}
    assert sorted(by_title) == sorted(BALANCE_TITLES)
    for title, fig in by_title.items():
        assert fig["rendered"] and fig["traces"] > 0 and fig["points"] > 0, (title, fig)
    screenshot(balance_page, "balance-report", tmp_path / "profile")


def test_report_page_needs_nothing_from_the_network(balance_page):
    page = balance_page.read_text(encoding="utf-8")
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", page)
    assert page.count("Plotly.newPlot(") == len(BALANCE_TITLES)
    assert page.count('<script type="text/javascript">/**') == 1  # plotly.js inlined once


def test_gain_chart_draws_without_and_with_spcl_bars(balance_summary):
    gain = next(f for f in balance_summary["figures"] if f["id"] == "fig-gain")
    assert gain["traces"] == 4 and gain["points"] == 12


def test_search_report_says_there_is_no_pareto_front(tmp_path):
    page = write_html(
        build_report(search_study(name="search-fixture-dialoguegcn", baseline=True)), tmp_path
    )
    dom, summary = render(page, tmp_path / "profile")
    assert "Single-objective study: there is no Pareto front to draw." in dom
    titles = [f["title"] for f in summary["figures"]]
    assert not any(t.startswith("Pareto") for t in titles)
    assert "Optimisation history: dev_f1" in titles
    screenshot(page, "search-report", tmp_path / "profile")


def test_figures_are_written_as_png_images_with_system_chromium(tmp_path):
    report = build_report(balance_study(n_spcl=4))
    paths = write_images(report.figures[:2], tmp_path / "png", browser=chromium())
    assert [p.name for p in paths] == ["gain.png", "pareto.png"]
    assert all(
        p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000 for p in paths
    )

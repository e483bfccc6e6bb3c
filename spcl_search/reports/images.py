"""PNG (or SVG/PDF) images of report figures through kaleido and the system's Chromium."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from spcl_search.errors import ConfigError
from spcl_search.outputs import atomic_write, output_folder
from spcl_search.reports.report import NamedFigure

#: looked for in order when ``BROWSER_PATH`` is not set
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
WIDTH, HEIGHT = 1200, 700


def find_browser() -> str | None:
    """``$BROWSER_PATH`` if set (even when wrong, so that the error names it), else the first
    Chromium-based browser on ``PATH``."""
    if path := os.environ.get("BROWSER_PATH"):
        return path
    for name in BROWSER_NAMES:
        if found := shutil.which(name):
            return found
    return None


def require_browser(fmt: str = "png", browser: str | None = None) -> str:
    """The browser kaleido will use, or a one-line :class:`ConfigError` saying how to get one."""
    browser = browser or find_browser()
    if browser is None or not (os.path.isfile(browser) and os.access(browser, os.X_OK)):
        where = f"at {browser}" if browser else "on PATH"
        raise ConfigError(
            f"`format` {fmt}: no Chromium/Chrome browser found {where}; install one (apt-get install chromium) or set BROWSER_PATH"
        )
    return browser


def write_images(figures: Sequence[NamedFigure], out_dir: Path, fmt: str = "png", browser: str | None = None) -> list[Path]:
    """Write each figure as ``<out_dir>/<key>.<fmt>`` in one kaleido session; return the paths."""
    browser = require_browser(fmt, browser)
    import kaleido

    out_dir = output_folder(out_dir)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".images.") as tmp:
        specs = [
            {
                "fig": named.figure.to_dict(),
                "path": Path(tmp) / f"{named.key}.{fmt}",
                "opts": {"format": fmt, "width": WIDTH, "height": HEIGHT},
            }
            for named in figures
        ]
        try:
            kaleido.write_fig_from_object_sync(specs, kopts={"path": browser}, cancel_on_error=True)
        except Exception as exc:  # kaleido/choreographer raise many types; one line for the user
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"`format` {fmt}: {browser} could not render the figures ({first})") from exc
        paths = []
        for spec in specs:
            paths.append(atomic_write(out_dir / spec["path"].name, spec["path"].read_bytes()))
    return paths

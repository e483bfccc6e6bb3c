"""Test fixtures for the report tests: studies built directly with Optuna.

The numbers are made up by a smooth formula (tri-modal dev F1 peaks at cl_threshold 0.7 and barely
depends on cl_growth); they follow the study-record contract of docs/architecture.md so that the
report code can be exercised without training. They are fixtures, not results.
"""

from __future__ import annotations

import datetime
import html
import json
import math
import os
import random
import re
import shutil
import subprocess
import uuid
import warnings
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import create_trial

DISTRIBUTIONS = {
    "cl_threshold": FloatDistribution(0.1, 1.5),
    "cl_growth": FloatDistribution(1.0, 2.0),
}
BIMODAL_OFFSET = {"at": -1.0, "tv": -2.5, "av": -9.0}
ACC_OFFSET = {"atv": 0.5, "at": 1.0, "tv": 0.0, "av": 2.0}
BASELINE = {"atv": 58.0, "at": 59.2, "tv": 57.0, "av": 56.8}
T0 = datetime.datetime(2025, 1, 1, 12, 0, 0)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def unique_name(prefix: str = "report-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _shape(threshold: float, growth: float) -> float:
    return 8.0 * math.exp(-(((threshold - 0.7) / 0.25) ** 2)) + 0.3 * (growth - 1.5)


def _dev_f1(m: str, threshold: float, growth: float) -> float:
    if m == "atv":
        return 58.0 + _shape(threshold, growth)
    return 59.0 + BIMODAL_OFFSET[m] + 0.4 * _shape(threshold, growth)


def _attrs(dev: dict[str, float], use_cl: bool) -> dict[str, object]:
    attrs: dict[str, object] = {
        "use_cl": use_cl,
        "seed": 0,
        "device": "cpu",
        "versions": "fixture",
    }
    for m, f1 in dev.items():
        attrs[f"dev_f1_{m}"] = round(f1, 3)
        attrs[f"test_f1_{m}"] = round(f1 - 1.0, 3)
        attrs[f"dev_acc_{m}"] = round(f1 + 1.5, 3)
        attrs[f"test_acc_{m}"] = round(f1 + ACC_OFFSET[m], 3)
        attrs[f"best_epoch_{m}"] = 7
        attrs[f"take_rate_{m}"] = 0.9 if use_cl else 1.0
        attrs[f"epoch_seconds_{m}"] = 0.5
    return attrs


def _timed(trial: optuna.trial.FrozenTrial, index: int) -> optuna.trial.FrozenTrial:
    trial.datetime_start = T0 + datetime.timedelta(minutes=2 * index)
    trial.datetime_complete = trial.datetime_start + datetime.timedelta(seconds=90)
    return trial


def _new_study(
    name: str,
    storage: object,
    directions: list[str],
    metrics: list[str],
    kind: str,
    backbone: str,
    dataset: str,
) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=storage, directions=directions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.set_metric_names(metrics)
    study.set_user_attr("kind", kind)
    study.set_user_attr("backbone", backbone)
    study.set_user_attr("dataset", dataset)
    study.set_user_attr("variant", "spcl")
    study.set_user_attr("spec", {"name": name, "kind": kind, "variant": "spcl", "fixture": True})
    return study


def balance_study(
    name: str | None = None,
    storage: object = None,
    n_spcl: int = 16,
    baseline: bool = True,
    backbone: str = "mmgcn",
    dataset: str = "synthetic",
    seed: int = 0,
) -> optuna.Study:
    """A ``balance`` study: objectives dev_f1_atv and gain, a baseline and ``n_spcl`` trials."""
    study = _new_study(
        name or unique_name(),
        storage,
        ["maximize", "maximize"],
        ["dev_f1_atv", "gain"],
        "balance",
        backbone,
        dataset,
    )
    rng = random.Random(seed)
    rows: list[tuple[dict[str, float], dict[str, float], bool]] = []
    if baseline:
        rows.append(({}, dict(BASELINE), False))
    for _ in range(n_spcl):
        params = {"cl_threshold": rng.uniform(0.1, 1.5), "cl_growth": rng.uniform(1.0, 2.0)}
        dev = {
            m: _dev_f1(m, params["cl_threshold"], params["cl_growth"])
            for m in ("atv", "at", "tv", "av")
        }
        rows.append((params, dev, True))
    for index, (params, dev, use_cl) in enumerate(rows):
        attrs = _attrs(dev, use_cl)
        bimodal = [m for m in dev if m != "atv"]
        gain = dev["atv"] - max(dev[m] for m in bimodal)
        for m in bimodal:
            attrs[f"gain_vs_{m}"] = round(dev["atv"] - dev[m], 3)
        attrs["gain_test"] = round(gain, 3)
        trial = create_trial(
            values=[dev["atv"], gain],
            params=params,
            distributions={k: DISTRIBUTIONS[k] for k in params},
            user_attrs=attrs,
        )
        study.add_trial(_timed(trial, index))
    return study


def search_study(
    name: str | None = None,
    storage: object = None,
    n_trials: int = 12,
    baseline: bool = False,
    backbone: str = "dialoguegcn",
    dataset: str = "synthetic",
    seed: int = 1,
) -> optuna.Study:
    """A ``search`` study: objective dev_f1; params cl_threshold, cl_growth and modalities."""
    study = _new_study(
        name or unique_name(), storage, ["maximize"], ["dev_f1"], "search", backbone, dataset
    )
    rng = random.Random(seed)
    modalities = ("atv", "at", "tv", "av")
    index = 0
    if baseline:
        for m in modalities:
            dist = {"modalities": CategoricalDistribution(modalities)}
            trial = create_trial(
                value=BASELINE[m],
                params={"modalities": m},
                distributions=dist,
                user_attrs=_attrs({m: BASELINE[m]}, False),
            )
            study.add_trial(_timed(trial, index))
            index += 1
    for i in range(n_trials):
        m = modalities[i % len(modalities)]
        params = {
            "cl_threshold": rng.uniform(0.1, 1.5),
            "cl_growth": rng.uniform(1.0, 2.0),
            "modalities": m,
        }
        f1 = _dev_f1(m, params["cl_threshold"], params["cl_growth"])
        dists = dict(DISTRIBUTIONS, modalities=CategoricalDistribution(modalities))
        trial = create_trial(
            value=f1, params=params, distributions=dists, user_attrs=_attrs({m: f1}, True)
        )
        study.add_trial(_timed(trial, index))
        index += 1
    return study


# --- headless Chromium, for the browser tests -------------------------------------------------

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ARTIFACTS = Path(
    os.environ.get("SPCL_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts")
)


def chromium() -> str | None:
    """The Chromium used by browser tests: ``$SPCL_TEST_CHROMIUM``, else chromium on PATH."""
    found = (
        os.environ.get("SPCL_TEST_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    return found if found and os.access(found, os.X_OK) else None


def _run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    browser = chromium()
    assert browser is not None
    cmd = [
        browser,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


def render(page: Path, profile: Path) -> tuple[str, dict]:
    """Open ``page`` in headless Chromium; return its DOM and the JSON summary the page writes
    once plotly has drawn its figures."""
    done = _run_chromium(["--dump-dom", page.resolve().as_uri()], profile)
    found = re.search(r'<pre id="figure-summary"[^>]*>(.*?)</pre>', done.stdout, re.S)
    assert found, (
        f"no figure summary in the DOM (chromium rc={done.returncode}): {done.stderr[-2000:]}"
    )
    return done.stdout, json.loads(html.unescape(found.group(1)))


def screenshot(page: Path, name: str, profile: Path) -> Path:
    """Save a 1400x4000 screenshot of ``page`` as ``artifacts/report/<name>.png``; print its path."""
    out = ARTIFACTS / "report" / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    _run_chromium(
        [f"--screenshot={out}", "--window-size=1400,4000", page.resolve().as_uri()], profile
    )
    print(f"screenshot: {out}")
    return out

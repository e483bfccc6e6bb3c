"""The answer of a study: the best setting per modality set, how sure it is, and the paper's table of them.

One selection rule for every reader (``spcl-search run``, ``best``, ``status``, ``report``, ``compare`` and the
dashboard note): per modality set, the complete trial (not a baseline) with the highest dev F1 (ties: the earlier
trial). Before a confirmation it is chosen among the search's trials and says so ("unconfirmed: single-seed
maximum": the maximum of noisy figures is optimistic). Once ``spcl-search confirm`` has trained the top settings
again on fresh seeds (:mod:`spcl_search.search.confirm`), it is chosen among those, by the mean dev F1 over the
confirmation seeds. Either way the row carries the chosen trial's seeds, dev and test mean +- std, and its paired
difference (on the seeds both share, :mod:`spcl_search.stats`) to the no-balance-method baseline and to the
runner-up, with a one-line verdict. Test figures are shown, never used to choose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from spcl_search.methods import registry
from spcl_search.schema.records import TrialRecord, sort_modalities
from spcl_search.schema.spec import METHOD_PARAMS
from spcl_search.schema.study_info import study_info
from spcl_search.stats import PairedDifference, mean_std, paired_difference


@dataclass(frozen=True)
class BestSetting:
    """The best trial on one modality set (chosen on dev F1), how far it is from the baseline and the runner-up."""

    study: str
    backbone: str
    variant: str
    dataset: str
    kind: str
    modalities: str
    trial: int
    params: dict[str, Any]
    #: means over the trial's seeds (one seed: its figures)
    dev_f1: float
    test_f1: float | None
    test_acc: float | None = None
    baseline_dev_f1: float | None = None
    baseline_test_f1: float | None = None
    #: complete search trials (not baselines) with a result on this modality set
    n_trials: int = 0
    #: the study's balance method
    method: str = "spcl"
    #: the seeds the chosen trial trained on, and the spread of its figures over them (None with one seed)
    seeds: tuple[int, ...] = ()
    dev_f1_std: float | None = None
    test_f1_std: float | None = None
    #: the study holding ``trial``: ``study`` itself, or its confirmation study once confirmed
    source: str = ""
    confirmed: bool = False
    baseline_trial: int | None = None
    #: dev F1 of the chosen trial minus the baseline's, paired on shared seeds
    vs_baseline: PairedDifference | None = None
    runner_up_trial: int | None = None
    runner_up_setting: str | None = None
    #: dev F1 of the chosen trial minus the runner-up's, paired on shared seeds
    vs_runner_up: PairedDifference | None = None

    @property
    def setting(self) -> str:
        """``"cl_growth/cl_threshold"`` as in the paper's table, e.g. ``"1.25/0.7"``; another method's options
        as ``"alpha=0.3"``."""
        return method_setting(self.method, self.params)

    @property
    def spcl_gain_dev(self) -> float | None:
        """Dev F1 of SPCL minus the no-SPCL baseline (None without a baseline)."""
        return None if self.baseline_dev_f1 is None else self.dev_f1 - self.baseline_dev_f1

    @property
    def stage(self) -> str:
        """How the answer was reached: ``"confirmed on 5 fresh seeds"`` or ``"unconfirmed: single-seed maximum"``."""
        n = len(self.seeds) or 1
        if self.confirmed:
            return f"confirmed on {n} seed{'s' if n > 1 else ''} ({_seed_list(self.seeds)})"
        if n == 1:
            return "unconfirmed: single-seed maximum"
        return f"unconfirmed: maximum of {n}-seed means over {self.n_trials} trials"

    @property
    def verdict(self) -> str:
        """One line: against the baseline, then against the runner-up."""
        other = "no curriculum" if self.method == "spcl" else "no balance method"
        parts = [self.vs_baseline.verdict(other) if self.vs_baseline else f"no baseline ({other}) trained on these seeds"]
        if self.vs_runner_up is not None:
            parts.append(self.vs_runner_up.verdict(f"the runner-up ({self.runner_up_setting})"))
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        out = {**asdict(self), "setting": self.setting, "spcl_gain_dev": self.spcl_gain_dev, "stage": self.stage, "verdict": self.verdict}
        return out


def _seed_list(seeds: Sequence[int]) -> str:
    """``"1-5"`` for consecutive seeds, else ``"0, 3, 7"``."""
    s = sorted(seeds)
    if len(s) > 2 and s == list(range(s[0], s[-1] + 1)):
        return f"seeds {s[0]}-{s[-1]}"
    return "seed" + ("s " if len(s) > 1 else " ") + ", ".join(map(str, s))


def spcl_setting(params: dict[str, Any]) -> str:
    """``"cl_growth/cl_threshold"`` of a trial's params, ``"-"`` if either is missing."""
    growth, threshold = params.get("cl_growth"), params.get("cl_threshold")
    return "-" if growth is None or threshold is None else f"{growth:.3g}/{threshold:.3g}"


def method_setting(method: str, params: dict[str, Any], options: dict[str, Any] | None = None) -> str:
    """The searched setting of a trial of ``method``: SPCL's paper layout, else ``"name=value ..."`` (``"-"``
    for a method without options), then the fixed ``options`` it trained with that are not the defaults
    (``smooth=true``)."""
    if method == "spcl":
        return spcl_setting(params)
    own = [f"{name}={params[name]:.3g}" for name in METHOD_PARAMS.get(method, ()) if name in params]
    defaults = registry.get(method).defaults() if method in registry.methods() else {}
    for name, value in (options or {}).items():
        if name not in params and name in defaults and value != defaults[name]:
            own.append(f"{name}={str(value).lower() if isinstance(value, bool) else value}")
    return " ".join(own) or "-"


def ranked_trials(trials: Sequence[FrozenTrial], modalities: str) -> list[FrozenTrial]:
    """``trials`` with a dev F1 on ``modalities``, best first (the earlier trial on ties)."""
    scored = [(v, t) for t in trials if (v := TrialRecord.of(t).metric("dev_f1", modalities)) is not None]
    return [t for _, t in sorted(scored, key=lambda vt: (-vt[0], vt[1].number))]


def best_trial(trials: Sequence[FrozenTrial], modalities: str) -> FrozenTrial | None:
    """The trial with the highest dev F1 on ``modalities`` (the earlier one on ties), or None."""
    ranked = ranked_trials(trials, modalities)
    return ranked[0] if ranked else None


def _split(study: optuna.Study) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """The study's complete trials: (balance-method trials, baselines)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [t for t in complete if not TrialRecord.of(t).is_baseline], [t for t in complete if TrialRecord.of(t).is_baseline]


def best_settings(study: optuna.Study, confirmation: optuna.Study | None = None) -> list[BestSetting]:
    """One :class:`BestSetting` per modality set the study's complete trials trained, in the paper's order; chosen
    in ``confirmation`` (the study's confirmation study) where it has results on that set."""
    info = study_info(study)
    searched, searched_base = _split(study)
    confirmed, confirmed_base = _split(confirmation) if confirmation is not None else ([], [])
    rows = []
    for m in sort_modalities(m for t in searched for m in TrialRecord.of(t).trained):
        is_confirmed = any(TrialRecord.of(t).metric("dev_f1", m) is not None for t in confirmed)
        pool, base_pool = (confirmed, confirmed_base) if is_confirmed else (searched, searched_base)
        ranked = ranked_trials(pool, m)
        if not ranked:
            continue
        best, runner = ranked[0], (ranked[1] if len(ranked) > 1 else None)
        base = best_trial(base_pool, m)
        record = TrialRecord.of(best)
        base_record = TrialRecord.of(base) if base is not None else None
        runner_record = TrialRecord.of(runner) if runner is not None else None
        dev = record.seed_values(m)
        _, dev_std = mean_std(list(dev.values()))
        _, test_std = mean_std(list(record.seed_values(m, "test_f1").values()))
        rows.append(
            BestSetting(
                study=info.name,
                backbone=info.backbone,
                variant=info.variant,
                dataset=info.dataset,
                kind=info.kind,
                modalities=m,
                trial=best.number,
                params={k: v for k, v in best.params.items() if k != "modalities"},
                dev_f1=float(record.metric("dev_f1", m) or 0.0),
                test_f1=record.metric("test_f1", m),
                test_acc=record.metric("test_acc", m),
                baseline_dev_f1=base_record.metric("dev_f1", m) if base_record else None,
                baseline_test_f1=base_record.metric("test_f1", m) if base_record else None,
                n_trials=sum(TrialRecord.of(t).metric("dev_f1", m) is not None for t in searched),
                method=info.method,
                seeds=tuple(sorted(dev)),
                dev_f1_std=dev_std,
                test_f1_std=test_std,
                source=(confirmation.study_name if is_confirmed and confirmation is not None else info.name),
                confirmed=is_confirmed,
                baseline_trial=None if base is None else base.number,
                vs_baseline=paired_difference(dev, base_record.seed_values(m)) if base_record else None,
                runner_up_trial=None if runner is None else runner.number,
                runner_up_setting=None if runner is None else method_setting(info.method, dict(runner.params)),
                vs_runner_up=paired_difference(dev, runner_record.seed_values(m)) if runner_record else None,
            )
        )
    return rows


def paper_table(rows: Sequence[BestSetting]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the paper's layout: one row per backbone (and form; and kind when several are
    shown), ``cl_growth/cl_threshold`` cells under ``<dataset> <modality set>`` columns (empty where none)."""
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    columns = [(d, m) for d in datasets for m in sort_modalities({r.modalities for r in rows if r.dataset == d})]
    several_kinds = len({r.kind for r in rows}) > 1
    cells: dict[str, dict[tuple[str, str], str]] = {}
    for r in rows:
        label = f"{r.backbone} [{r.variant}]" + ("" if r.method == "spcl" else f" {r.method}") + (f" ({r.kind})" if several_kinds else "")
        cells.setdefault(label, {})[(r.dataset, r.modalities)] = r.setting
    header = ["Backbone"] + [f"{d} {m}" for d, m in columns]
    return header, [[label] + [row.get(c, "") for c in columns] for label, row in cells.items()]


#: the gains against the no-SPCL baseline that ``best`` and the report's best-trial table both show, under the same
#: names and with the same numbers
GAIN_COLUMNS = ("SPCL gain (dev F1, 95% CI)", "SPCL gain (test F1)")


def gain_cells(row: BestSetting) -> tuple[str, str]:
    """The :data:`GAIN_COLUMNS` cells of ``row``: the paired dev difference with its interval, the test difference."""
    if row.vs_baseline is not None:
        dev = row.vs_baseline.interval()
    else:
        dev = "-" if row.spcl_gain_dev is None else f"{row.spcl_gain_dev:+.2f}"
    test = "-" if row.test_f1 is None or row.baseline_test_f1 is None else f"{row.test_f1 - row.baseline_test_f1:+.2f}"
    return dev, test

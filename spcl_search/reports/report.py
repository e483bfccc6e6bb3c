"""A study report: sections of figures, tables and notices, independent of how it is written.

:func:`build_report` never fails on a thin study: a section the study cannot fill carries a
notice that says why (too few trials, single objective, no baseline) instead of a figure.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna
import plotly.graph_objects as go

from spcl_search.reports import figures, records
from spcl_search.reports.gain import GainRow, gain_rows
from spcl_search.reports.importance import make_evaluator, param_importances
from spcl_search.reports.methods import method_box, method_order, method_rows
from spcl_search.schema.best import GAIN_COLUMNS, BestSetting, best_settings, gain_cells, paper_table
from spcl_search.stats import pm


@dataclass(frozen=True)
class NamedFigure:
    """A figure with a stable key (HTML id, PNG file name, dashboard graph id)."""

    key: str
    figure: go.Figure

    @property
    def title(self) -> str:
        return str(self.figure.layout.title.text or self.key)


@dataclass(frozen=True)
class Table:
    caption: str
    header: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    key: str
    title: str
    figures: list[NamedFigure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    text: str = ""


@dataclass
class Report:
    info: records.StudyInfo
    sections: list[Section]
    generated: str
    importance: str
    gains: list[GainRow]
    best: list[BestSetting]

    @property
    def figures(self) -> list[NamedFigure]:
        return [f for s in self.sections for f in s.figures]


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _fill(section: Section, key: str, make: Callable[[], go.Figure | list[go.Figure]]) -> None:
    try:
        made = make()
    except figures.NotApplicable as exc:
        section.notices.append(str(exc))
        return
    for i, fig in enumerate(made if isinstance(made, list) else [made]):
        section.figures.append(NamedFigure(key if i == 0 else f"{key}-{i}", fig))


def _trial_count(info: records.StudyInfo) -> str:
    """``5 complete of 8 run (budget 20)``, or what an empty study has: its budget and no trial yet."""
    budget = info.budget
    of = f" (budget {budget})" if budget else ""
    if info.n_trials == 0:
        return f"none run yet{of}"
    return f"{info.n_complete} complete of {info.n_trials} run{of}"


def _summary_section(info: records.StudyInfo, study: optuna.Study) -> Section:
    rows = [
        ["study", info.name],
        ["kind", info.kind],
        ["backbone", info.backbone],
        ["form", info.variant],
        ["balance method", info.method],
        ["dataset", info.dataset],
        ["objectives", ", ".join(info.metric_names)],
        ["trials", _trial_count(info)],
        ["no-SPCL baseline trials", str(len(records.baseline_trials(records.complete_trials(study))))],
    ]
    return Section("summary", "Study", tables=[Table("", ["", ""], rows)])


def _best_section(rows: list[BestSetting]) -> Section:
    section = Section("best", "Best SPCL settings per backbone x modality set")
    if not rows:
        section.notices.append("No complete SPCL trial yet: no best setting to show.")
        return section
    section.text = (
        "Chosen on dev weighted-F1; cells are cl_growth/cl_threshold as in the paper's table. "
        "Test figures are those of the chosen trial, never used for selection."
    )
    header, body = paper_table(rows)
    section.tables.append(Table("cl_growth/cl_threshold", header, body))
    detail = [
        [
            records.modality_label(r.modalities),
            str(r.trial),
            r.setting,
            _num(r.dev_f1),
            _num(r.test_f1),
            _num(r.test_acc),
            _num(r.baseline_dev_f1),
            _num(r.baseline_test_f1),
            *gain_cells(r),
            str(r.n_trials),
        ]
        for r in rows
    ]
    section.tables.append(
        Table(
            "Best trial per modality set",
            [
                "modalities",
                "trial",
                "cl_growth/cl_threshold",
                "dev F1",
                "test F1",
                "test acc",
                "no-SPCL dev F1",
                "no-SPCL test F1",
                *GAIN_COLUMNS,
                "trials",
            ],
            detail,
        )
    )
    if not any(r.baseline_dev_f1 is not None for r in rows):
        section.notices.append("No no-SPCL baseline trial (use_cl False): baseline columns are empty.")
    return section


def _answer_section(rows: list[BestSetting], study: optuna.Study) -> Section:
    """The study's answer per modality set, with its seeds, spread, paired differences and verdict."""
    section = Section("answer", "Answer: the setting to use, and how sure it is")
    baselines = [t.number for t in records.baseline_trials(study.get_trials(deepcopy=False))]
    if baselines:
        section.notices.append(
            f"Trial(s) {', '.join(map(str, baselines))} are the no-curriculum baseline (user attr use_cl = false): never an answer; "
            "their cl_threshold/cl_growth are placeholders (the space's top corner) for the sampler."
        )
    if not rows:
        section.notices.append("No complete trial yet: no answer to give.")
        return section
    section.text = (
        "Chosen on dev weighted-F1: among the confirmation's trials (the study's top settings trained again on fresh "
        "seeds beside the baseline) once spcl-search confirm has run, else among the search's trials, which makes the "
        "figure a maximum of noisy values (optimistic). Differences are paired on the seeds both trials share, with a "
        "95% t interval (and the Wilcoxon signed-rank p-value from 6 seeds on)."
    )
    section.tables.append(
        Table(
            "Answer per modality set",
            ["modalities", "setting", "stage", "seeds", "dev F1", "test F1", "vs baseline (dev)", "vs runner-up (dev)", "verdict"],
            [
                [
                    records.modality_label(r.modalities),
                    r.setting,
                    r.stage,
                    ", ".join(map(str, r.seeds)) or "-",
                    pm(r.dev_f1, r.dev_f1_std),
                    pm(r.test_f1, r.test_f1_std),
                    "-" if r.vs_baseline is None else r.vs_baseline.interval(),
                    "-" if r.vs_runner_up is None else f"{r.vs_runner_up.interval()} vs {r.runner_up_setting}",
                    r.verdict,
                ]
                for r in rows
            ],
        )
    )
    if not any(r.confirmed for r in rows):
        section.notices.append(
            f"Unconfirmed: run spcl-search confirm --study {rows[0].study} to train the top settings again on fresh seeds."
        )
    return section


def _curves_section(study: optuna.Study, rows: list[BestSetting], confirmation: optuna.Study | None) -> Section:
    section = Section("curves", "Learning curves: dev F1, take rate and threshold per epoch")
    section.text = "Each trial's first seed; the chosen trial in red, the confirmation's trials dashed, the no-curriculum baseline dotted."
    chosen = {r.modalities: (r.source, r.trial) for r in rows}

    def curves(m: str) -> Callable[[], go.Figure]:
        return lambda: figures.learning_curves(study, m, chosen.get(m), confirmation)

    for m in list(chosen) or [records.TRI_MODAL]:
        _fill(section, f"curves-{m}", curves(m))
    return section


def _gain_section(rows: list[GainRow]) -> Section:
    section = Section("gain", "Gain: tri-modal minus bi-modal (the paper's motivation figure)")
    section.text = (
        "A negative gain means adding the third modality hurt: the modality imbalance SPCL is "
        "meant to remove. 'With SPCL' is the best SPCL setting found on dev."
    )
    _fill(section, "gain", lambda: figures.gain_chart(rows))
    if rows and all(r.f1_without is None for r in rows):
        section.notices.append("No no-SPCL baseline trial (use_cl False) with these modality sets: only the with-SPCL gain is shown.")
    if rows:
        section.tables.append(
            Table(
                f"Gain in points ({rows[0].split})",
                [
                    "backbone",
                    "versus",
                    "w-F1 without",
                    "w-F1 with",
                    "acc without",
                    "acc with",
                    "baseline trial",
                    "SPCL trial",
                    "cl_growth/cl_threshold",
                ],
                [
                    [
                        r.backbone,
                        r.label,
                        _num(r.f1_without, True),
                        _num(r.f1_with, True),
                        _num(r.acc_without, True),
                        _num(r.acc_with, True),
                        "-" if r.baseline_trial is None else str(r.baseline_trial),
                        "-" if r.spcl_trial is None else str(r.spcl_trial),
                        r.spcl_setting,
                    ]
                    for r in rows
                ],
            )
        )
    return section


def _importance_section(study: optuna.Study, evaluator: str) -> Section:
    label, _ = make_evaluator(evaluator)
    section = Section("importance", f"Parameter importance per objective ({label})")
    for i, result in enumerate(param_importances(study, evaluator)):
        if result.notice:
            section.notices.append(result.notice)
        if result.figure is not None:
            section.figures.append(NamedFigure(f"importance-{i}", result.figure))
    if section.figures:
        section.text = (
            "Computed on the complete SPCL trials (the no-SPCL baseline is left out); the number "
            "of trials each ranking rests on is in its title."
        )
    return section


def _methods_section(studies: list[optuna.Study]) -> Section:
    section = Section("methods", "Balance methods side by side")
    methods = {records.study_info(s).method for s in studies}
    if len(methods) < 2:
        others = [m for m in method_order() if m not in methods]
        other = others[0] + (f" (or {', '.join(others[1:])})" if len(others) > 1 else "")
        section.notices.append(
            "Only one balance method has a study on this backbone, form, dataset and kind in this database; run "
            f"spcl-search run --method {other} with the same budget to compare."
        )
        return section
    rows = method_rows(studies)
    section.text = (
        "One study per method, the same budget and seeds; each method's best setting is chosen on tri-modal dev "
        "weighted-F1 and its figures are mean +- std over the seeds of that trial. A flagged method finished "
        "fewer trials than the others (unequal tuning)."
    )

    section.tables.append(
        Table(
            "Best setting per method (tri-modal)",
            ["method", "trials", "setting", "seeds", "dev F1", "test F1", "gain (dev)", "gain (test)", "study"],
            [
                [
                    r.method + (" (fewer trials)" if r.flagged else ""),
                    str(r.n_trials),
                    r.setting,
                    str(r.n_seeds),
                    pm(r.dev_f1, r.dev_f1_std),
                    pm(r.test_f1, r.test_f1_std),
                    _num(r.gain, True),
                    _num(r.gain_test, True),
                    r.study,
                ]
                for r in rows
            ],
        )
    )
    _fill(section, "methods", lambda: method_box(studies))
    return section


def build_report(
    study: optuna.Study,
    importance: str = "ped-anova",
    siblings: list[optuna.Study] | None = None,
    confirmation: optuna.Study | None = None,
) -> Report:
    """Collect every section of the report on ``study``; ``siblings`` (the studies of other balance methods on
    the same backbone, form, dataset and kind, ``study`` included) fill the method view; ``confirmation`` (the
    study's confirmation study) gives the confirmed answer."""
    info = records.study_info(study)
    gains = gain_rows(study)
    best = best_settings(study, confirmation)
    sections = [_summary_section(info, study), _answer_section(best, study), _best_section(best), _gain_section(gains)]
    sections.append(_methods_section(siblings or [study]))

    pareto = Section("pareto", "Pareto front: tri-modal dev F1 vs gain")
    _fill(pareto, "pareto", lambda: figures.pareto_front(study))
    sections.append(pareto)

    sections.append(_importance_section(study, importance))

    landscape = Section("landscape", "SPCL landscape: cl_threshold x cl_growth")
    _fill(landscape, "landscape", lambda: figures.threshold_growth(study))
    sections.append(landscape)

    sections.append(_curves_section(study, best, confirmation))

    history = Section("history", "Optimisation history")
    _fill(history, "history", lambda: figures.optimization_history(study))
    sections.append(history)

    timeline = Section("timeline", "Trials' timeline")
    _fill(timeline, "timeline", lambda: figures.timeline(study))
    sections.append(timeline)

    generated = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Report(info, sections, generated, make_evaluator(importance)[0], gains, best)

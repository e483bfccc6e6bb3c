"""Plotly figures of a study: Pareto front, gain, history, SPCL landscape, learning curves, timeline.

Each function returns a :class:`plotly.graph_objects.Figure` whose title names what it shows, or
raises :class:`NotApplicable` with a sentence for the page when the study cannot fill it.
Optuna's own plotting functions are used wherever one exists.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Sequence

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial
from plotly.subplots import make_subplots

from spcl_search.methods.registry import method_options
from spcl_search.reports import records
from spcl_search.reports.gain import GainRow
from spcl_search.schema.records import SetResult, TrialRecord

WITHOUT_COLOUR = "#9e9e9e"
WITH_COLOUR = "#1f77b4"


class NotApplicable(Exception):
    """The study cannot fill this figure; the message says why, for the page."""


def _objective(index: int) -> Callable[[FrozenTrial], float]:
    """The ``index``-th objective of a trial (a target for Optuna's plots)."""
    return lambda t: t.values[index]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _hover(trial: FrozenTrial) -> str:
    lines = [f"<b>trial {trial.number}</b>" + (" (no SPCL)" if records.is_baseline(trial) else "")]
    lines += [f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in trial.params.items()]
    for m in records.MODALITY_ORDER:
        if (v := records.metric(trial, "dev_f1", m)) is not None:
            lines.append(f"dev F1 {records.modality_label(m)} = {v:.2f}")
    if (v := records.metric(trial, "test_f1", records.TRI_MODAL)) is not None:
        lines.append(f"test F1 T+A+V = {v:.2f}")
    if (epoch := records.best_epoch(trial, records.TRI_MODAL)) is not None:
        lines.append(f"best dev epoch T+A+V = {epoch}")
    return "<br>".join(lines)


def pareto_front(study: optuna.Study) -> go.Figure:
    """Tri-modal dev F1 against gain for a ``balance`` study, Pareto-optimal trials joined."""
    info = records.study_info(study)
    if not info.is_multi_objective:
        raise NotApplicable("Single-objective study: there is no Pareto front to draw.")
    trials = records.complete_trials(study)
    if not trials:
        raise NotApplicable("No complete trials yet: the Pareto front is empty.")
    front_ids = {t.number for t in study.best_trials}
    x_name, y_name = info.metric_names[0], info.metric_names[1]

    def scatter(ts: Sequence[FrozenTrial], **kwargs: object) -> go.Scatter:
        return go.Scatter(
            x=[t.values[0] for t in ts],
            y=[t.values[1] for t in ts],
            text=[_hover(t) for t in ts],
            hovertemplate="%{text}<extra></extra>",
            **kwargs,
        )

    dominated = [t for t in trials if t.number not in front_ids]
    front = sorted((t for t in trials if t.number in front_ids), key=lambda t: t.values[0])
    baseline = records.baseline_trials(trials)
    fig = go.Figure()
    if baseline:  # first, so beneath: an open star around its point, never hiding a trial with the same values
        fig.add_trace(
            scatter(
                baseline,
                mode="markers",
                name="No SPCL (baseline)",
                marker={"symbol": "star-open", "size": 22, "color": "#d62728", "line": {"width": 2}},
            )
        )
    if dominated:
        fig.add_trace(scatter(dominated, mode="markers", name="Trial", marker={"color": "#c7c7c7", "size": 8}))
    fig.add_trace(
        scatter(
            front,
            mode="lines+markers",
            name="Pareto front",
            line={"shape": "hv", "color": WITH_COLOUR},
            marker={"size": 10, "color": WITH_COLOUR},
        )
    )
    fig.update_layout(
        title_text=f"Pareto front: {x_name} vs {y_name} ({len(trials)} trials)",
        xaxis_title=f"{x_name} (tri-modal dev weighted-F1, %)",
        yaxis_title=f"{y_name} (tri-modal minus best bi-modal dev F1, points)",
        hoverlabel={"align": "left"},
    )
    return fig


def gain_chart(rows: Sequence[GainRow]) -> go.Figure:
    """The paper's motivation figure: per backbone and bi-modal set, tri-modal minus bi-modal
    weighted-F1 and accuracy, without and with SPCL side by side."""
    if not rows:
        raise NotApplicable("No gain to show: the study has no tri-modal (atv) result next to a bi-modal one.")
    if all(r.f1_with is None and r.f1_without is None for r in rows):
        raise NotApplicable("No gain to show: no trial has both tri- and bi-modal test figures.")
    split = rows[0].split
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"weighted-F1 gain ({split})", f"accuracy gain ({split})"), horizontal_spacing=0.08)
    several = len({r.backbone for r in rows}) > 1
    x: list[list[str]] | list[str]
    x = [[r.backbone for r in rows], [r.label for r in rows]] if several else [r.label for r in rows]
    sides = (
        ("without SPCL", "f1_without", "acc_without", "baseline_trial", WITHOUT_COLOUR),
        ("with SPCL (best)", "f1_with", "acc_with", "spcl_trial", WITH_COLOUR),
    )
    for name, f1_field, acc_field, trial_field, colour in sides:
        if all(getattr(r, f1_field) is None for r in rows):
            continue
        for col, field in ((1, f1_field), (2, acc_field)):
            values = [getattr(r, field) for r in rows]
            fig.add_trace(
                go.Bar(
                    x=x,
                    y=values,
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    marker_color=colour,
                    text=[_fmt(v) for v in values],
                    textposition="outside",
                    customdata=[[getattr(r, trial_field), r.spcl_setting] for r in rows],
                    hovertemplate=(
                        "%{x}: %{y:.2f} points<br>trial %{customdata[0]}"
                        + ("<br>cl_growth/cl_threshold %{customdata[1]}" if trial_field == "spcl_trial" else "")
                        + f"<extra>{name}</extra>"
                    ),
                ),
                row=1,
                col=col,
            )
    backbones = ", ".join(dict.fromkeys(r.backbone for r in rows))
    fig.update_layout(title_text=f"Gain (%): tri-modal minus bi-modal, without vs with SPCL ({backbones})", barmode="group")
    fig.update_yaxes(title_text="points", zeroline=True, zerolinewidth=2, row=1, col=1)
    fig.add_hline(y=0, line_width=1, line_color="black")
    return fig


def optimization_history(study: optuna.Study) -> list[go.Figure]:
    """Optuna's optimisation history, one figure per objective."""
    info = records.study_info(study)
    if info.n_complete == 0:
        raise NotApplicable("No complete trials yet: there is no history to draw.")
    figures = []
    for index, name in enumerate(info.metric_names):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if info.is_multi_objective:
                fig = optuna.visualization.plot_optimization_history(study, target=_objective(index), target_name=name)
            else:
                fig = optuna.visualization.plot_optimization_history(study, target_name=name)
        fig.update_layout(title_text=f"Optimisation history: {name}")
        fig.update_xaxes(tick0=0, dtick=_whole_step(len(study.get_trials(deepcopy=False))))  # trial numbers are whole
        figures.append(fig)
    return figures


def _whole_step(n: int, ticks: int = 10) -> int:
    """A whole tick step (1, 2, 5, 10, 20, 50, ...) that shows at most about ``ticks`` of ``n`` trial numbers."""
    step, factors = 1, itertools.cycle((2, 2.5, 2))
    while n > step * ticks:
        step = round(step * next(factors))
    return step


def threshold_growth(study: optuna.Study) -> list[go.Figure]:
    """``cl_threshold`` x ``cl_growth`` per objective: Optuna's contour plot where the trials
    span both params, its slice plot otherwise."""
    info = records.study_info(study)
    params = [records.THRESHOLD_PARAM, records.GROWTH_PARAM]
    trials = [t for t in records.spcl_trials(records.complete_trials(study)) if all(p in t.params for p in params)]
    if not trials:
        raise NotApplicable(f"No complete SPCL trial has both {params[0]} and {params[1]}: nothing to map.")
    scope = ""
    if len({t.params.get(records.MODALITIES_PARAM) for t in trials}) > 1:
        # mixing modality sets would map the set, not the SPCL params: keep the tri-modal ones
        keep = (
            records.TRI_MODAL
            if any(t.params.get(records.MODALITIES_PARAM) == records.TRI_MODAL for t in trials)
            else trials[0].params.get(records.MODALITIES_PARAM)
        )
        trials = [t for t in trials if t.params.get(records.MODALITIES_PARAM) == keep]
        scope = f"{keep} "
    copy = records.sub_study(study, trials)
    spans_both = all(len({t.params[p] for t in trials}) >= 2 for p in params) and len(trials) >= 3
    plot = optuna.visualization.plot_contour if spans_both else optuna.visualization.plot_slice
    kind = "Contour" if spans_both else "Slice"
    figures = []
    for index, name in enumerate(info.metric_names):
        target = (lambda t, i=index: t.values[i]) if info.is_multi_objective else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = plot(copy, params=params, target=target, target_name=name)
        fig.update_layout(title_text=f"{kind}: {params[0]} x {params[1]} -> {name} ({len(trials)} {scope}trials)")
        figures.append(fig)
    return figures


def timeline(study: optuna.Study) -> go.Figure:
    """Optuna's timeline of the study's trials (every state)."""
    trials = study.get_trials(deepcopy=False)
    if not trials:
        raise NotApplicable("The study has no trials yet: the timeline is empty.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = optuna.visualization.plot_timeline(study)
    fig.update_layout(title_text=f"Timeline of {len(trials)} trials")
    return fig


CURVES = (("dev_f1_curve", "dev weighted-F1 (%)"), ("take_rate_curve", "take rate"), ("threshold_curve", "SPCL threshold"))


def _threshold_curve(trial: FrozenTrial, result: SetResult) -> list[float] | None:
    """The trial's threshold per epoch: recorded, else (older trials) the SPCL schedule from its params (default cap)."""
    if result.threshold_curve is not None:
        return list(result.threshold_curve)
    t0, growth = trial.params.get(records.THRESHOLD_PARAM), trial.params.get(records.GROWTH_PARAM)
    if records.is_baseline(trial) or t0 is None or growth is None or not result.dev_f1_curve:
        return None
    return [min(method_options("spcl")["cap"], float(t0) * float(growth) ** e) for e in range(len(result.dev_f1_curve))]


def learning_curves(
    study: optuna.Study, modalities: str, chosen: tuple[str, int] | None, confirmation: optuna.Study | None = None
) -> go.Figure:
    """Per epoch, for every finished trial on ``modalities`` (its first seed): dev F1, take rate and threshold;
    the ``chosen`` trial (study name, number) highlighted, the confirmation's trials dashed, the baseline dotted black."""
    groups = [(study, False)] + ([(confirmation, True)] if confirmation is not None else [])
    drawn = []
    for source, confirming in groups:
        for t in source.get_trials(deepcopy=False):
            result = TrialRecord.of(t).sets.get(modalities)
            if t.state.is_finished() and result is not None and result.dev_f1_curve:
                drawn.append((t, result, confirming, (source.study_name, t.number) == chosen))
    if not drawn:
        raise NotApplicable(f"No trial on {modalities} recorded its learning curves yet.")
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.05, subplot_titles=[label for _, label in CURVES])
    shown: set[str] = set()
    for t, result, confirming, best in sorted(drawn, key=lambda d: (d[3], d[2])):  # search, confirmation, then the chosen on top
        baseline = records.is_baseline(t)
        if baseline:
            group, style = ("baseline (no curriculum)", {"color": "black", "width": 2, "dash": "dot"})
        elif best:
            group, style = ("chosen", {"color": "#d62728", "width": 3})
        elif confirming:
            group, style = ("confirmation trials", {"color": WITH_COLOUR, "width": 2, "dash": "dash"})
        else:
            group, style = ("search trials", {"color": WITHOUT_COLOUR, "width": 1})
        name = f"{'confirm ' if confirming else ''}trial {t.number}" + (f" ({records.spcl_setting(t)})" if not baseline else " (baseline)")
        for row, (key, _) in enumerate(CURVES, start=1):
            values = _threshold_curve(t, result) if key == "threshold_curve" else getattr(result, key)
            if not values:
                continue
            fig.add_trace(
                go.Scatter(
                    x=list(range(1, len(values) + 1)),
                    y=list(values),
                    mode="lines",
                    line=style,
                    name=name if group in ("chosen", "baseline (no curriculum)") else group,
                    legendgroup=group,
                    showlegend=row == 1 and (group not in shown or group in ("chosen", "baseline (no curriculum)")),
                    hovertemplate=f"{name}<br>epoch %{{x}}: %{{y:.3f}}<extra></extra>",
                ),
                row=row,
                col=1,
            )
        shown.add(group)
    fig.update_xaxes(title_text="epoch (1-based)", row=3, col=1, dtick=1)
    fig.update_layout(
        title_text=f"Learning curves on {records.modality_label(modalities)} ({len(drawn)} trials, first seed of each)", height=900
    )
    return fig

"""Optuna samplers and pruners named by a study spec."""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna

from spcl_search.errors import ConfigError

if TYPE_CHECKING:  # the schema imports this module to check pruner options: no import back at run time
    from spcl_search.schema.spec import StudySpec


def make_sampler(spec: StudySpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """``tpe`` (constant liar, so parallel workers spread out), ``nsga2`` or ``random``; unseeded (``seed``: for
    replays such as benchmarks/search_quality.py), so workers do not all draw the same points."""
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "nsga2":
        population = max(4, min(50, spec.n_trials // 5))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    startup = max(3, min(10, spec.n_trials // 5))
    return optuna.samplers.TPESampler(n_startup_trials=startup, constant_liar=True, seed=seed)


def max_resource(spec: StudySpec) -> int:
    """Intermediate values a trial reports: one per epoch (with several seeds, their mean at that epoch)."""
    return spec.epochs


def median_warmup(spec: StudySpec) -> int:
    """The median pruner's first step when the spec gives none: half the epochs with a margin (the margin rule's
    own; step ``epochs // 2`` is epoch ``epochs // 2 + 1`` counted from 1), else a fifth (Optuna's plain rule here)."""
    return max(1, spec.epochs // 2) if "margin" in spec.pruner_options else max(1, spec.epochs // 5)


def first_prunable_step(spec: StudySpec) -> int:
    """The first step at which the spec's pruner can prune (earlier ``should_prune`` calls are skipped:
    each one reads the study's trials)."""
    if spec.pruner == "median":
        return int(spec.pruner_options.get("n_warmup_steps", median_warmup(spec)))
    if spec.pruner == "none":
        return max_resource(spec) + 1
    return 0


#: ``pruner_options`` the objective reads itself (Optuna's pruners never see them): ``warmup_take_rate`` makes the
#: pruning curriculum-aware, no check before the trial's SPCL take rate (mean over its seeds) reaches it
OBJECTIVE_OPTIONS = ("warmup_take_rate",)


def take_rate_warmup(spec: StudySpec) -> float | None:
    """The take rate a trial must reach before its first pruning check (``pruner_options.warmup_take_rate``); a trial
    whose curriculum never gets there is checked from half its epochs on. None: no such warm-up."""
    value = spec.pruner_options.get("warmup_take_rate")
    return None if value is None else float(value)


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """``median`` (warm-up of a fifth of the epochs), ``hyperband`` (resource = epochs) or none; a racing spec's
    pruner races settings over the seeds (:mod:`spcl_search.search.racing`)."""
    if spec.racing:
        from spcl_search.search.racing import make_racing_pruner

        return make_racing_pruner(spec.race)
    opts = {k: v for k, v in spec.pruner_options.items() if k not in OBJECTIVE_OPTIONS}
    warm = take_rate_warmup(spec)
    if warm is not None and not 0 < warm <= 1:
        raise ConfigError(f"pruner_options.warmup_take_rate must lie in (0, 1], got {warm}")
    try:
        if spec.pruner == "median":
            opts.setdefault("n_startup_trials", 5)
            opts.setdefault("n_warmup_steps", median_warmup(spec))
            if "margin" in opts:  # only a trial clearly below the median stops (spcl_search.search.pruning)
                from spcl_search.search.pruning import MarginMedianPruner

                return MarginMedianPruner(**opts)
            return optuna.pruners.MedianPruner(**opts)
        if spec.pruner == "hyperband":
            opts.setdefault("min_resource", max(1, spec.epochs // 10))
            opts.setdefault("max_resource", max_resource(spec))
            opts.setdefault("reduction_factor", 3)
            return optuna.pruners.HyperbandPruner(**opts)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"pruner_options for {spec.pruner}: {exc}") from None
    return optuna.pruners.NopPruner()

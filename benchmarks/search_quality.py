"""How good is a study's answer per unit of compute? Search strategies replayed over a tabular benchmark.

The table (``docs/search_table.json``, built by ``benchmarks/search_table.py``: original MMGCN, --standardise,
15 epochs, IEMOCAP SURROGATE) holds the full learning curves of an 8 x 8 grid of cl_threshold x cl_growth and of
the no-curriculum baseline, for every seed. A trainer that looks the curves up stands in for training, and the
real search code runs on top of it: Optuna's samplers and pruners, the study objective (seeds in lockstep, racing),
the confirmation stage and the answer rule of ``spcl-search best``. Compute is counted in epochs trained.

Strategies: random, TPE, TPE + median pruner, TPE + Hyperband, TPE with every seed per trial, racing, TPE +
median pruner + confirm top-K, each over ``--repeats`` sampler seeds and at each budget of ``--trials``. Per
strategy and budget it prints the epochs trained, the true mean dev F1 (over all the table's seeds) of the setting
it answers, its regret against the table's best setting, its optimism (the dev F1 it reports minus that true
mean), and how often its pruner stopped a setting of the table's top quartile. The table's seed interval is the
95% t half-width of the best setting's mean over the table's seeds.

    python benchmarks/search_quality.py                        # every strategy, budgets 8 16 32, 20 sampler seeds
    python benchmarks/search_quality.py --strategies tpe-median tpe-margin --trials 16
    python benchmarks/search_quality.py --slow-starters         # does median pruning stop good slow starters?

Figures from the SURROGATE benchmark (real text, synthetic audio/visual features): not the paper's data.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import warnings
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "docs" / "search_table.json"
GRID_STEP_GROWTH = 1 / 7


@dataclass
class Table:
    """The tabular benchmark: per setting key and seed, the learning curves."""

    epochs: int
    thresholds: list[float]
    growths: list[float]
    runs: dict[str, dict[int, dict]]
    seeds: list[int]

    @classmethod
    def load(cls, path: Path, seeds: list[int] | None = None) -> Table:
        raw = json.loads(path.read_text())
        runs = {k: {int(s): r for s, r in v.items()} for k, v in raw["runs"].items()}
        complete = sorted(set.intersection(*(set(v) for v in runs.values())))
        if len(runs) < 1 + len(raw["thresholds"]) * len(raw["growths"]):
            raise SystemExit(f"{path}: only {len(runs)} settings have runs; finish it with benchmarks/search_table.py")
        chosen = [s for s in (seeds or complete) if s in complete]
        if len(chosen) < 2:
            raise SystemExit(f"{path}: seeds {complete} are complete for every setting; at least 2 are needed")
        return cls(int(raw["epochs"]), raw["thresholds"], raw["growths"], runs, chosen)

    def key(self, threshold: float | None, growth: float | None) -> str:
        """The grid setting nearest to (threshold, growth), or the baseline's key."""
        if threshold is None:
            return "none"
        t = min(self.thresholds, key=lambda v: abs(v - threshold))
        g = min(self.growths, key=lambda v: abs(v - growth))
        return f"t{t}_g{g}"

    def final(self, key: str, seed: int) -> float:
        """A run's dev F1 at its best dev epoch."""
        return max(self.runs[key][seed]["dev_f1"])

    def truth(self, key: str) -> float:
        """A setting's true mean: its best-epoch dev F1 averaged over every seed of the table."""
        return statistics.fmean(self.final(key, s) for s in self.seeds)

    @property
    def spcl_keys(self) -> list[str]:
        return [k for k in self.runs if k != "none"]


@dataclass
class Counter:
    epochs: int = 0


@dataclass
class TableTrainer:
    """The Trainer protocol over the table: yields the recorded epochs of (setting, seed)."""

    table: Table
    counter: Counter
    device: str = "cpu"
    versions: dict = field(default_factory=dict)
    surrogate: str = "av"

    def run(self, modalities: str, seed: int, setting) -> Generator:
        from spcl_search.results import EpochRecord, TrainResult

        options = setting.method_options
        key = "none" if setting.baseline else self.table.key(options["cl_threshold"], options["cl_growth"])
        rec = self.table.runs[key][seed]
        history = []
        for e in range(self.table.epochs):
            self.counter.epochs += 1
            record = EpochRecord(e + 1, rec["train_loss"][e], rec["take_rate"][e], rec["threshold"][e], rec["dev_f1"][e], 0.0,
                                 rec["test_f1"][e], 0.0, rec["seconds"][e], 0.0, {}, {})  # fmt: skip
            history.append(record)
            yield record
        best = max(history, key=lambda r: r.dev_f1)
        return TrainResult(config={}, best_epoch=best.epoch, dev_f1=best.dev_f1, dev_acc=0.0, test_f1=best.test_f1, test_acc=0.0,
                           history=history, seconds_per_epoch=0.0, device="cpu", take_rate=history[-1].take_rate, dataset={},
                           versions={}, model={})  # fmt: skip


@dataclass(frozen=True)
class Strategy:
    name: str
    spec: dict
    seeds: str = "first"  # first | all | two (the first two)
    confirm_top: int = 0


STRATEGIES = {
    "random": Strategy("random", {"sampler": "random", "pruner": "none"}),
    "tpe": Strategy("tpe", {"pruner": "none"}),
    # Optuna's MedianPruner as it was the default (first check at a fifth of the epochs)
    "tpe-median": Strategy("tpe-median", {"pruner": "median", "pruner_options": {"n_warmup_steps": 3}}),
    "tpe-hyperband": Strategy("tpe-hyperband", {"pruner": "hyperband"}),
    "tpe-every-seed": Strategy("tpe-every-seed", {"pruner": "none"}, seeds="all"),
    "race": Strategy("race", {"race": {"enabled": True}}, seeds="all"),
    "tpe-median-confirm3": Strategy("tpe-median-confirm3", {"pruner": "median", "pruner_options": {"n_warmup_steps": 3}}, confirm_top=3),
    # curriculum-aware: no pruning check before the take rate reaches 0.9 (or half the epochs)
    "tpe-median-take90": Strategy(
        "tpe-median-take90", {"pruner": "median", "pruner_options": {"n_warmup_steps": 3, "warmup_take_rate": 0.9}}
    ),
    # a plain later warm-up, for comparison: the first check at half the epochs
    "tpe-median-half": Strategy("tpe-median-half", {"pruner": "median", "pruner_options": {"n_warmup_steps": 7}}),
    "tpe-median-take90-confirm3": Strategy(
        "tpe-median-take90-confirm3", {"pruner": "median", "pruner_options": {"n_warmup_steps": 3, "warmup_take_rate": 0.9}}, confirm_top=3
    ),
    "tpe-confirm3": Strategy("tpe-confirm3", {"pruner": "none"}, confirm_top=3),
    # the shipped default: a search's default pruner (the median rule with a 15% margin from half the epochs on,
    # spcl_search.search.pruning) on one seed, then `spcl-search confirm` of the top 3 on the other seeds
    "tpe-margin": Strategy("tpe-margin", {"pruner": "median"}),
    "default: tpe-margin + confirm3": Strategy("default: tpe-margin + confirm3", {"pruner": "median"}, confirm_top=3),
    "tpe-margin + confirm5": Strategy("tpe-margin + confirm5", {"pruner": "median"}, confirm_top=5),
    "tpe-margin-2seeds + confirm3": Strategy("tpe-margin-2seeds + confirm3", {"pruner": "median"}, seeds="two", confirm_top=3),
    "tpe-margin-take90": Strategy("tpe-margin-take90", {"pruner": "median", "pruner_options": {"margin": 0.15, "warmup_take_rate": 0.9}}),
}


@dataclass
class Outcome:
    epochs: int
    key: str
    reported: float
    stopped_top: int
    seen_top: int


def replay(table: Table, strategy: Strategy, n_trials: int, sampler_seed: int, top_quartile: set[str]) -> Outcome:
    """One study of ``strategy`` over the table (in memory), its confirmation if any, and the answer it gives."""
    import optuna

    from spcl_search.schema.best import best_settings
    from spcl_search.schema.spec import ParamRange
    from spcl_search.search.algorithms import make_pruner, make_sampler
    from spcl_search.search.confirm import confirm
    from spcl_search.search.memory import InMemoryStudyStorage
    from spcl_search.search.objectives import make_objective
    from spcl_search.search.study import open_study

    counter = Counter()
    trainer = TableTrainer(table, counter)
    storage = InMemoryStudyStorage()
    seeds = {"all": table.seeds, "two": table.seeds[:2]}.get(strategy.seeds, table.seeds[:1])
    space = {
        "cl_threshold": ParamRange(min(table.thresholds), max(table.thresholds), step=round(table.thresholds[1] - table.thresholds[0], 6)),
        "cl_growth": ParamRange(min(table.growths), max(table.growths), step=GRID_STEP_GROWTH),
    }
    request = {"name": "replay", "backbone": "mmgcn", "variant": "original", "dataset": "iemocap", "data": "table", "epochs": table.epochs,
               "n_trials": n_trials, "seeds": list(seeds), "modalities": ["atv"], "space": space, **strategy.spec}  # fmt: skip
    opened = open_study(storage, request)
    study = optuna.load_study(study_name="replay", storage=storage, sampler=make_sampler(opened.spec, seed=sampler_seed),
                              pruner=make_pruner(opened.spec))  # fmt: skip
    study.optimize(make_objective(opened.spec, trainer), n_trials=n_trials, catch=())
    confirmation = None
    if strategy.confirm_top:
        made = confirm(storage, "replay", top=strategy.confirm_top, seeds=[s for s in table.seeds if s not in seeds])
        confirmation = made.opened.study
        confirmation.optimize(make_objective(made.opened.spec, trainer), n_trials=len(confirmation.trials))
    (row,) = best_settings(study, confirmation)
    trials = [t for t in study.trials if t.user_attrs.get("use_cl", True) and t.params]
    keyed = [(table.key(t.params["cl_threshold"], t.params["cl_growth"]), t) for t in trials]
    stopped = sum(1 for k, t in keyed if k in top_quartile and t.state == optuna.trial.TrialState.PRUNED)
    seen = sum(1 for k, _ in keyed if k in top_quartile)
    return Outcome(counter.epochs, table.key(row.params["cl_threshold"], row.params["cl_growth"]), row.dev_f1, stopped, seen)


def slow_starters(table: Table) -> None:
    """Do good settings start slowly (low take rate), so that median pruning at its warm-up stops them?"""
    keys = sorted(table.spcl_keys, key=table.truth, reverse=True)
    q = len(keys) // 4
    top = keys[:q]
    warm = max(1, table.epochs // 5)
    print(f"\n## Slow starters: the top quartile ({q} settings) at the median pruner's first check (epoch {warm + 1})\n")
    print(
        "| setting | true mean dev | take rate at check | dev at check (mean over seeds) | median of all settings at check | below median |"
    )
    print("|---|---|---|---|---|---|")
    medians = statistics.median(statistics.fmean(table.runs[k][s]["dev_f1"][warm] for s in table.seeds) for k in table.spcl_keys)
    below = 0
    for k in top:
        at = statistics.fmean(table.runs[k][s]["dev_f1"][warm] for s in table.seeds)
        take = statistics.fmean(table.runs[k][s]["take_rate"][warm] for s in table.seeds)
        below += at < medians
        print(f"| {k} | {table.truth(k):.2f} | {take:.2f} | {at:.2f} | {medians:.2f} | {'yes' if at < medians else 'no'} |")
    print(f"\n{below} of {q} top-quartile settings are below the median at the first check.")


def half_width(values: list[float]) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", type=Path, default=TABLE)
    ap.add_argument("--strategies", nargs="*", default=list(STRATEGIES), choices=list(STRATEGIES))
    ap.add_argument("--trials", nargs="*", type=int, default=[8, 16, 32], help="study budgets (trials)")
    ap.add_argument("--repeats", type=int, default=20, help="sampler seeds per strategy and budget")
    ap.add_argument("--seeds", nargs="*", type=int, default=None, help="table seeds to use (default: every complete one)")
    ap.add_argument("--slow-starters", action="store_true", help="only the slow-starter check")
    args = ap.parse_args()

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    table = Table.load(args.table, args.seeds)
    keys = table.spcl_keys
    truths = {k: table.truth(k) for k in keys}
    best_key = max(truths, key=truths.get)
    interval = half_width([table.final(best_key, s) for s in table.seeds])
    ranked = sorted(keys, key=truths.get, reverse=True)
    top_quartile = set(ranked[: len(ranked) // 4])
    print(f"# search quality over {args.table.name}: {len(keys)} SPCL settings + baseline, seeds {table.seeds}, "
          f"{table.epochs} epochs per run (IEMOCAP SURROGATE)")  # fmt: skip
    paired = statistics.median(
        half_width([table.final(best_key, s) - table.final(k, s) for s in table.seeds]) for k in ranked[1 : len(ranked) // 4]
    )
    print(f"# best setting {best_key}: true mean dev {truths[best_key]:.2f} (95% seed interval +-{interval:.2f}; paired on "
          f"shared seeds against the rest of the top quartile, median +-{paired:.2f}); baseline {table.truth('none'):.2f}; "
          f"median setting {statistics.median(truths.values()):.2f}")  # fmt: skip
    slow_starters(table)
    if args.slow_starters:
        return
    print(f"\n## Strategies ({args.repeats} sampler seeds each; mean over them, regret's 95% t half-width in brackets)\n")
    print("| strategy | trials | epochs trained | vs every seed | true mean of answer | regret | regret <= interval | "
          "regret <= paired | optimism | top-quartile stopped |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in args.trials:
        for name in args.strategies:
            t0 = time.perf_counter()
            outs = [replay(table, STRATEGIES[name], n, r, top_quartile) for r in range(args.repeats)]
            regret = [truths[best_key] - truths[o.key] for o in outs]
            optimism = [o.reported - truths[o.key] for o in outs]
            seen = sum(o.seen_top for o in outs)
            stopped = f"{100 * sum(o.stopped_top for o in outs) / seen:.0f}% of {seen}" if seen else "-"
            pruning = STRATEGIES[name].spec.get("pruner", "none") != "none" or "race" in STRATEGIES[name].spec
            epochs = statistics.fmean(o.epochs for o in outs)
            every = n * len(table.seeds) * table.epochs  # TPE with every seed per trial, no pruning
            print(f"| {name} | {n} | {epochs:.0f} | {epochs / every:.2f} | {statistics.fmean(truths[o.key] for o in outs):.2f} | "
                  f"{statistics.fmean(regret):.2f} [±{half_width(regret) if len(set(regret)) > 1 else 0:.2f}] | "
                  f"{100 * sum(r <= interval for r in regret) / len(regret):.0f}% | {100 * sum(r <= paired for r in regret) / len(regret):.0f}% | "
                  f"{statistics.fmean(optimism):+.2f} | {stopped if pruning else '-'} |", flush=True)  # fmt: skip
            print(f"<!-- {name} x {n}: {time.perf_counter() - t0:.0f} s -->", file=sys.stderr)


if __name__ == "__main__":
    main()

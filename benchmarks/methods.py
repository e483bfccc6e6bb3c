"""Balance methods side by side on the SURROGATE benchmarks, under equal tuning budgets.

For each backbone: one tuning study per method (``search`` kind, tri-modal, seed 0, the same number of trials
for every method with settings; ``none`` has nothing to tune and trains once), then for each method its best
dev setting is trained again with three seeds on the tri-modal set and the bi-modal sets (a ``balance`` study
holding that one setting, so the gain is the tri-modal minus the best bi-modal dev F1). Selection is on dev only.
Prints the method view (``spcl-search compare`` over the confirmation studies), every method's tuning trial
count, its seconds per training epoch against plain training (the method's overhead), and, when ``none`` ran,
each method's paired difference from it on the shared seeds (tri-modal dev and test weighted-F1, mean and 95%
t interval, :func:`spcl_search.stats.paired_difference`).

    python benchmarks/methods.py                                   # MMGCN and DialogueGCN, SPCL forms, IEMOCAP
    python benchmarks/methods.py --variant original --standardise --epochs 20 --trials 6
    spcl-search compare $(spcl-search status --json ... ) --storage sqlite:///artifacts/methods.db   # look again

Every run is stored in ``--storage`` (SQLite by default): rerunning resumes what is missing. Figures from the
surrogate benchmark (real text, synthetic audio/visual) are not the paper's data.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPCL_SHARED_DATA", REPO.parent / "shared" / "data"))
DATASETS = {"iemocap": SHARED / "iemocap" / "iemocap_surrogate.pkl", "meld": SHARED / "meld" / "meld_surrogate.pkl", "synthetic": "synthetic"}
METHODS = ("none", "spcl", "ogm_ge", "opm", "mmpareto")


def _run(rdb, request: dict, dataset, threads: int) -> str:
    """Create (or resume) the study ``request`` describes and run it to its budget in this process."""
    from spcl_search.search.objectives import real_trainer
    from spcl_search.search.study import open_study
    from spcl_search.search.worker import run_worker

    opened = open_study(rdb, request)
    run_worker(rdb, opened.spec.name, trainer=lambda spec: real_trainer(spec, dataset, device="cpu", threads=threads))
    return opened.spec.name


def seed_figures(study, trial_number: int) -> dict[int, tuple[float, float]]:
    """seed -> (dev, test) tri-modal weighted-F1 of one confirmation trial (``per_seed`` is in the spec's seed order)."""
    from spcl_search.schema.records import TrialRecord

    record = TrialRecord.of(study.trials[trial_number])
    per_seed = record.sets["atv"].per_seed or [{"dev_f1": record.metric("dev_f1", "atv"), "test_f1": record.metric("test_f1", "atv")}]
    return {int(seed): (float(s["dev_f1"]), float(s["test_f1"])) for seed, s in zip(record.seeds or [record.seed], per_seed, strict=True)}


def paired(method: dict[int, tuple[float, float]], plain: dict[int, tuple[float, float]]) -> tuple[list[int], list[str]]:
    """The shared seeds and, for dev then test, method minus plain: ``mean [low, high]`` (95% t interval) and the verdict."""
    from spcl_search.stats import paired_difference

    out = []
    for k in (0, 1):
        d = paired_difference({s: v[k] for s, v in method.items()}, {s: v[k] for s, v in plain.items()})
        out.append("-" if d is None else f"{d.interval()}: {d.verdict('none')}")
    return sorted(set(method) & set(plain)), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", nargs="*", default=["mmgcn", "dialoguegcn"])
    ap.add_argument("--dataset", default="iemocap", choices=list(DATASETS))
    ap.add_argument("--variant", default="spcl", choices=("spcl", "original"))
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    ap.add_argument("--trials", type=int, default=6, help="tuning trials per method with settings (none: 1)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the form's protocol)")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2], help="seeds of each best setting's confirmation")
    ap.add_argument("--sets", default="atv,at,av,tv", help="modality sets of the confirmation (atv and bi-modal ones)")
    ap.add_argument("--standardise", action="store_true", help="train-split feature standardisation")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--storage", default=f"sqlite:///{REPO / 'artifacts' / 'methods.db'}")
    args = ap.parse_args()

    import optuna
    import torch

    import backbones
    from spcl_search.data.load import load_dataset
    from spcl_search.reports.methods import method_rows
    from spcl_search.schema.records import TrialRecord
    from spcl_search.search.storage import open_storage

    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.storage.startswith("sqlite:///"):
        Path(args.storage[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    rdb = open_storage(args.storage, heartbeat_interval=30, grace_period=600)
    data = load_dataset(str(DATASETS[args.dataset]))
    train = {"standardise": True} if args.standardise else {}
    print(f"# balance methods, SURROGATE {args.dataset}, {args.variant} forms, {args.trials} tuning trials per method, "
          f"seeds {args.seeds} for each best setting, {args.threads} thread(s)", flush=True)  # fmt: skip
    for backbone in args.backbones:
        epochs = args.epochs or int(backbones.lookup(backbone, args.variant).training_defaults(args.dataset)["epochs"] or 50)
        confirmed, tuned = [], {}
        for method in args.methods:
            base = {"backbone": backbone, "dataset": args.dataset, "data": str(DATASETS[args.dataset]), "variant": args.variant,
                    "method": method, "epochs": epochs, "train": train}  # fmt: skip
            search = {**base, "kind": "search", "modalities": ["atv"], "seeds": [0], "pruner": "none",
                      "n_trials": 1 if method == "none" else args.trials}  # fmt: skip
            name = _run(rdb, search, data, args.threads)
            study = optuna.load_study(study_name=name, storage=rdb)
            done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
            best = max(done, key=lambda t: (TrialRecord.of(t).metric("dev_f1", "atv") or -1, -t.number))
            tuned[method] = (len(done), statistics.fmean(TrialRecord.of(t).sets["atv"].epoch_seconds or 0 for t in done))
            confirm = {**base, "kind": "balance", "name": f"{name}-confirm", "modalities": args.sets.split(","),
                       "seeds": args.seeds, "n_trials": 1, "baseline": False, "sampler": "random", "pruner": "none"}  # fmt: skip
            from spcl_search.search.study import open_study

            opened = open_study(rdb, confirm)
            if opened.created and best.params:
                opened.study.enqueue_trial(dict(best.params))
            confirmed.append(_run(rdb, confirm, data, args.threads))
            print(f"{backbone} {method}: {len(done)} tuning trials, best dev F1 {TrialRecord.of(best).metric('dev_f1', 'atv'):.2f} "
                  f"({best.params or 'no settings'}); confirmed in {confirmed[-1]}", flush=True)  # fmt: skip
        studies = [optuna.load_study(study_name=n, storage=rdb) for n in confirmed]
        plain = tuned.get("none", (0, 0.0))[1] or None
        print(f"\n{backbone} [{args.variant}] on {args.dataset} (SURROGATE), {epochs} epochs per run\n")
        print("| method | tuning trials | best setting (dev) | seeds | dev w-F1 | test w-F1 | gain dev | gain test | s/epoch (atv) | vs none |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in method_rows(studies):
            trials, seconds = tuned.get(r.method, (0, 0.0))

            def pm(mean, std):
                return "-" if mean is None else f"{mean:.2f}" + ("" if std is None else f" ± {std:.2f}")

            overhead = f"{seconds / plain:.2f}x" if plain else "-"
            print(f"| {r.method} | {trials} | {r.setting} | {r.n_seeds} | {pm(r.dev_f1, r.dev_f1_std)} | {pm(r.test_f1, r.test_f1_std)} | "
                  f"{'-' if r.gain is None else f'{r.gain:+.2f}'} | {'-' if r.gain_test is None else f'{r.gain_test:+.2f}'} | "
                  f"{seconds:.2f} | {overhead} |", flush=True)  # fmt: skip
        rows = {r.method: r for r in method_rows(studies) if r.trial is not None}
        if "none" in rows and len(rows) > 1:
            by_name = {s.study_name: s for s in studies}
            plain_seeds = seed_figures(by_name[rows["none"].study], rows["none"].trial)
            print("\n| method | shared seeds | dev w-F1 minus none (95% t interval) | test w-F1 minus none (95% t interval) |")
            print("|---|---|---|---|")
            for method, r in rows.items():
                if method != "none":
                    shared, (dev, test) = paired(seed_figures(by_name[r.study], r.trial), plain_seeds)
                    print(f"| {method} | {', '.join(map(str, shared))} | {dev} | {test} |", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()

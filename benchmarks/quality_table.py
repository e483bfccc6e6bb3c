"""Dev/test weighted-F1 per backbone and form, atv, with and without SPCL, on the SURROGATE benchmarks.

For every backbone x form x dataset x {SPCL at the paper's setting, no SPCL} x seed, trains the tri-modal
model with the form's protocol (epochs, early stopping, lr, batch: its form class in ``backbones/cards/``; ``--epochs``
overrides the epochs), selects the epoch on dev and reports test at that epoch. Prints a markdown table of
mean and spread (sample std over seeds) beside the per-utterance linear floor of ../shared/data/README.md.
Runs are independent processes (``--jobs``), each with ``--threads`` torch threads; every finished run is
kept in ``--state`` (docs/quality_runs.json), so an interrupted or partial table resumes and can be
completed later without redoing anything. Runs recorded before the forms existed are ``original`` runs.

    python benchmarks/quality_table.py --datasets iemocap --seeds 0 1 2 --jobs 2 --threads 1
    python benchmarks/quality_table.py --variants spcl --datasets meld --epochs 20       # shorter MELD runs
    python benchmarks/quality_table.py --standardise                                     # train-split standardised features
    python benchmarks/quality_table.py --table-only                                      # print what is on record

Figures come from the SURROGATE benchmark (real text, synthetic audio/visual features): they are not the
paper's data and must not be compared with the paper's numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPCL_SHARED_DATA", REPO.parent / "shared" / "data"))
DATASETS = {"iemocap": SHARED / "iemocap" / "iemocap_surrogate.pkl", "meld": SHARED / "meld" / "meld_surrogate.pkl"}
#: per-utterance logistic regression on concatenated t+a+v, trainVid -> testVid (../shared/data/README.md)
LINEAR_FLOOR_TEST_F1 = {"iemocap": 54.07, "meld": 59.08}
#: the late-fusion baseline has no setting in the paper; it trains at this one
LATE_FUSION_SETTING = {"cl_growth": 1.1, "cl_threshold": 0.4}


def run_one(backbone: str, variant: str, dataset: str, use_cl: bool, seed: int, epochs: int | None, standardise: bool, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from spcl_search.data.load import load_dataset
    from spcl_search.search.paper import paper_setting
    from spcl_search.train import TrainConfig, train

    ds = load_dataset(str(DATASETS[dataset]))
    setting = LATE_FUSION_SETTING if backbone == "late_fusion" else paper_setting(backbone, dataset, "atv")
    growth, threshold = setting["cl_growth"], setting["cl_threshold"]
    cfg = TrainConfig(
        backbone=backbone, variant=variant, modalities="atv", epochs=epochs, seed=seed, threads=threads, device="cpu",
        standardise=standardise, method="spcl" if use_cl else "none",
        method_options={"cl_threshold": threshold, "cl_growth": growth} if use_cl else {},
    )  # fmt: skip
    r = train(ds, cfg)
    return {
        "backbone": backbone, "variant": variant, "dataset": dataset, "use_cl": use_cl, "seed": seed,
        "epochs": epochs if epochs is not None else "protocol", "standardise": standardise,
        "epochs_run": len(r.history), "max_epochs": r.config["epochs"], "patience": r.config["patience"],
        "lr": r.config["lr"], "batch_size": r.config["batch_size"],
        "cl_growth": growth, "cl_threshold": threshold, "best_epoch": r.best_epoch,
        "dev_f1": r.dev_f1, "test_f1": r.test_f1, "dev_acc": r.dev_acc, "test_acc": r.test_acc,
        "seconds_per_epoch": r.seconds_per_epoch, "dev_curve": [round(h.dev_f1, 2) for h in r.history],
    }  # fmt: skip


def normalised(row: dict) -> dict:
    """A run on record, with the fields of runs made before the forms (original, raw features)."""
    return {"variant": "original", "standardise": False, **row}


def key(row: dict) -> str:
    return "|".join(str(row[k]) for k in ("backbone", "variant", "dataset", "use_cl", "seed", "epochs", "standardise"))


def table(rows: list[dict]) -> str:
    def ms(xs: list[float]) -> str:
        return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"

    lines = [
        "| dataset | backbone | form | features | epochs | SPCL (growth/threshold) | seeds | best epochs | dev w-F1 | test w-F1 | test acc |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["backbone"], r["variant"], r["standardise"], str(r["epochs"]), r["use_cl"]), []).append(r)
    order = {"late_fusion": 0, "biddin": 1, "dialoguegcn": 2, "mm_dfn": 3, "mmgcn": 4}
    for (ds, bb, variant, std, epochs, cl), rs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 9), kv[0][2] != "spcl", kv[0][3], kv[0][4], not kv[0][5])
    ):
        setting = f"on ({rs[0]['cl_growth']}/{rs[0]['cl_threshold']})" if cl else "off"
        label = f"protocol ({rs[0].get('max_epochs', '?')})" if epochs == "protocol" else epochs
        best = ",".join(str(r["best_epoch"]) for r in sorted(rs, key=lambda r: r["seed"]))
        lines.append(
            f"| {ds} (surrogate) | {bb} | {variant} | {'standardised' if std else 'raw'} | {label} | {setting} | {len(rs)} | {best} | "
            f"{ms([r['dev_f1'] for r in rs])} | {ms([r['test_f1'] for r in rs])} | {ms([r['test_acc'] for r in rs])} |"
        )
    floors = ", ".join(f"{ds} {f:.2f}" for ds, f in LINEAR_FLOOR_TEST_F1.items())
    lines.append(f"\nLinear floor (per-utterance logistic regression on t+a+v, test weighted-F1): {floors}.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", nargs="*", default=["late_fusion", "biddin", "dialoguegcn", "mm_dfn", "mmgcn"])
    ap.add_argument("--variants", nargs="*", default=["spcl", "original"])
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="override the form's protocol epochs")
    ap.add_argument("--cl", choices=("both", "on", "off"), default="both")
    ap.add_argument("--standardise", action="store_true", help="standardise features with train-split moments")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--state", type=Path, default=REPO / "docs" / "quality_runs.json")
    ap.add_argument("--table-only", action="store_true", help="print the table of the runs on record and exit")
    args = ap.parse_args()

    args.state.parent.mkdir(parents=True, exist_ok=True)
    done = {key(r): r for r in map(normalised, json.loads(args.state.read_text()) if args.state.exists() else [])}
    cls = {"both": (True, False), "on": (True,), "off": (False,)}[args.cl]
    epochs_label = args.epochs if args.epochs is not None else "protocol"
    todo = [
        (bb, v, ds, cl, s)
        for ds in args.datasets for v in args.variants for bb in args.backbones for cl in cls for s in args.seeds
        if key({"backbone": bb, "variant": v, "dataset": ds, "use_cl": cl, "seed": s, "epochs": epochs_label, "standardise": args.standardise}) not in done
    ]  # fmt: skip
    if not args.table_only:
        print(f"{len(done)} runs on record, {len(todo)} to go", flush=True)
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futs = {pool.submit(run_one, bb, v, ds, cl, s, args.epochs, args.standardise, args.threads): (bb, v, ds, cl, s) for bb, v, ds, cl, s in todo}
            for fut in as_completed(futs):
                try:
                    row = fut.result()
                except Exception as exc:  # noqa: BLE001 - report and go on
                    print(f"FAILED {futs[fut]}: {exc}", flush=True)
                    continue
                done[key(row)] = row
                tmp = args.state.with_suffix(".tmp")
                tmp.write_text(json.dumps(list(done.values()), indent=1))
                tmp.replace(args.state)
                print(
                    f"{row['backbone']:<12} {row['variant']:<8} {row['dataset']:<8} cl={row['use_cl']!s:<5} seed {row['seed']}: "
                    f"dev {row['dev_f1']:.2f} test {row['test_f1']:.2f} (best epoch {row['best_epoch']} of {row['epochs_run']}, "
                    f"{row['seconds_per_epoch']:.1f}s/epoch)",
                    flush=True,
                )
    rows = [r for r in done.values() if r["backbone"] in args.backbones and r["dataset"] in args.datasets and r["variant"] in args.variants]
    print("\nweighted-F1 (%), atv, SURROGATE benchmark, epoch selected on dev, test at that epoch\n")
    print(table(rows))


if __name__ == "__main__":
    main()

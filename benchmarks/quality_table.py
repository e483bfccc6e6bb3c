"""Dev/test weighted-F1 per backbone, atv, with and without SPCL, on the SURROGATE benchmarks.

For every backbone x dataset x {SPCL at the paper's setting, no SPCL} x seed, trains the tri-modal
model, selects the epoch on dev and reports test at that epoch. Prints a markdown table of mean and
spread (sample std over seeds). Runs are independent processes (``--jobs``), each with ``--threads``
torch threads; finished runs are kept in ``--state`` so an interrupted table resumes.

    python benchmarks/quality_table.py --epochs 30 --seeds 0 1 2 --jobs 2 --threads 1

Figures come from the SURROGATE benchmark (real text, synthetic audio/visual features): they are
not the paper's data and must not be compared with the paper's numbers.
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


def run_one(backbone: str, dataset: str, use_cl: bool, seed: int, epochs: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from spcl_search.data.load import load_dataset
    from spcl_search.search.paper import paper_setting
    from spcl_search.spcl import SPCLConfig
    from spcl_search.train import TrainConfig, train

    ds = load_dataset(str(DATASETS[dataset]))
    setting = paper_setting(backbone, dataset, "atv")
    growth, threshold = setting["cl_growth"], setting["cl_threshold"]
    cfg = TrainConfig(backbone=backbone, modalities="atv", epochs=epochs, seed=seed, threads=threads, device="cpu",
                      spcl=SPCLConfig(enabled=use_cl, threshold=threshold, growth=growth))
    r = train(ds, cfg)
    return {"backbone": backbone, "dataset": dataset, "use_cl": use_cl, "seed": seed, "epochs": epochs,
            "cl_growth": growth, "cl_threshold": threshold, "best_epoch": r.best_epoch,
            "dev_f1": r.dev_f1, "test_f1": r.test_f1, "dev_acc": r.dev_acc, "test_acc": r.test_acc,
            "seconds_per_epoch": r.seconds_per_epoch}


def _key(row: dict) -> str:
    return f"{row['backbone']}|{row['dataset']}|{int(row['use_cl'])}|{row['seed']}|{row['epochs']}"


def table(rows: list[dict]) -> str:
    def ms(xs: list[float]) -> str:
        return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"

    lines = ["| backbone | dataset | SPCL (growth/threshold) | seeds | dev w-F1 | test w-F1 | test acc |", "|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["backbone"], r["dataset"], r["use_cl"]), []).append(r)
    for (bb, ds, cl), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0], not kv[0][2])):
        setting = f"on ({rs[0]['cl_growth']}/{rs[0]['cl_threshold']})" if cl else "off"
        lines.append(f"| {bb} | {ds} (surrogate) | {setting} | {len(rs)} | {ms([r['dev_f1'] for r in rs])} | "
                     f"{ms([r['test_f1'] for r in rs])} | {ms([r['test_acc'] for r in rs])} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", nargs="*", default=["biddin", "dialoguegcn", "mm_dfn", "mmgcn"])
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--state", type=Path, default=REPO / "artifacts" / "quality_runs.json")
    args = ap.parse_args()

    args.state.parent.mkdir(parents=True, exist_ok=True)
    done = {_key(r): r for r in (json.loads(args.state.read_text()) if args.state.exists() else [])}
    todo = [(bb, ds, cl, s) for ds in args.datasets for bb in args.backbones for cl in (True, False) for s in args.seeds
            if f"{bb}|{ds}|{int(cl)}|{s}|{args.epochs}" not in done]
    print(f"{len(done)} runs on record, {len(todo)} to go", flush=True)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futs = {pool.submit(run_one, bb, ds, cl, s, args.epochs, args.threads): (bb, ds, cl, s) for bb, ds, cl, s in todo}
        for fut in as_completed(futs):
            try:
                row = fut.result()
            except Exception as exc:  # noqa: BLE001 - report and go on
                print(f"FAILED {futs[fut]}: {exc}", flush=True)
                continue
            done[_key(row)] = row
            tmp = args.state.with_suffix(".tmp")
            tmp.write_text(json.dumps(list(done.values()), indent=1))
            tmp.replace(args.state)
            print(f"{row['backbone']:<12} {row['dataset']:<8} cl={row['use_cl']!s:<5} seed {row['seed']}: dev {row['dev_f1']:.2f} "
                  f"test {row['test_f1']:.2f} (best epoch {row['best_epoch']}, {row['seconds_per_epoch']:.1f}s/epoch)", flush=True)
    rows = [r for r in done.values() if r["epochs"] == args.epochs and r["backbone"] in args.backbones and r["dataset"] in args.datasets]
    print(f"\nweighted-F1 (%), atv, SURROGATE benchmark, {args.epochs} epochs, dev-selected epoch\n")
    print(table(rows))


if __name__ == "__main__":
    main()

"""Build the tabular benchmark the search-quality replay runs over (SURROGATE IEMOCAP).

Full learning curves for a grid of SPCL settings (8 cl_threshold x 8 cl_growth over the study's space) plus
the no-curriculum baseline, each trained with every seed of ``--seeds``: dev and test weighted-F1, take rate,
threshold and training loss per epoch. The grid is trained seed by seed (all settings of a seed, then the
next), so a partial table is already usable, and every finished run is written at once (atomically) to
``--out``: an interrupted build resumes where it stopped, and more seeds can be added later.

    python benchmarks/search_table.py                                 # original MMGCN, --standardise, 15 epochs, seeds 0-4
    python benchmarks/search_table.py --seeds 0 1 2 3 4 5 6 7         # add seeds to the same table
    python benchmarks/search_table.py --summary                       # what is on record

The figures are from the SURROGATE benchmark (real text, synthetic audio/visual): not the paper's data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from spcl_search.outputs import atomic_write

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPCL_SHARED_DATA", REPO.parent / "shared" / "data"))
DATA = SHARED / "iemocap" / "iemocap_surrogate.pkl"
OUT = REPO / "docs" / "search_table.json"
#: the grid: 8 values per axis, evenly over the SPCL search space (the spcl method's space, spcl_search/methods/curriculum.py)
THRESHOLDS = [round(0.1 + 0.2 * i, 4) for i in range(8)]  # 0.1 .. 1.5
GROWTHS = [round(1.0 + i / 7, 4) for i in range(8)]  # 1.0 .. 2.0
BASELINE = "none"


def setting_key(threshold: float | None, growth: float | None) -> str:
    """The table's key of a setting: ``"t0.5_g1.2857"``, or ``"none"`` for the baseline."""
    return BASELINE if threshold is None else f"t{threshold}_g{growth}"


def _load(path: Path) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    return {}


def _write(path: Path, table: dict) -> None:
    atomic_write(path, json.dumps(table, separators=(",", ":")))


def run_one(dataset, threshold: float | None, growth: float | None, seed: int, epochs: int, threads: int) -> dict:
    from spcl_search.train import TrainConfig, train

    options = {} if threshold is None else {"cl_threshold": threshold, "cl_growth": growth}
    cfg = TrainConfig(
        backbone="mmgcn", variant="original", modalities="atv", epochs=epochs, seed=seed, threads=threads, device="cpu",
        standardise=True, method="none" if threshold is None else "spcl", method_options=options,
    )  # fmt: skip
    r = train(dataset, cfg)
    h = r.history
    return {
        "seed": seed,
        "dev_f1": [round(e.dev_f1, 4) for e in h],
        "test_f1": [round(e.test_f1, 4) for e in h],
        "take_rate": [round(e.take_rate, 4) for e in h],
        "threshold": [None if e.threshold is None else round(e.threshold, 5) for e in h],
        "train_loss": [round(e.train_loss, 5) for e in h],
        "seconds": [round(e.seconds + e.eval_seconds, 3) for e in h],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--summary", action="store_true", help="print what is on record and exit")
    args = ap.parse_args()

    table = _load(args.out)
    if table and table.get("epochs") != args.epochs:
        raise SystemExit(f"{args.out}: the table has {table.get('epochs')} epochs per run, not {args.epochs}")
    table.setdefault("what", "original MMGCN, --standardise, atv, IEMOCAP SURROGATE (real text, synthetic audio/visual)")
    table.update(epochs=args.epochs, thresholds=THRESHOLDS, growths=GROWTHS)
    runs: dict[str, dict[str, dict]] = table.setdefault("runs", {})
    settings = [(None, None)] + [(t, g) for t in THRESHOLDS for g in GROWTHS]
    if args.summary:
        for key in [setting_key(*s) for s in settings]:
            got = runs.get(key, {})
            if got:
                best = [max(r["dev_f1"]) for r in got.values()]
                print(f"{key:>16}: seeds {sorted(int(s) for s in got)} dev {statistics.fmean(best):.2f}")
        return

    import torch

    torch.set_num_threads(args.threads)
    from spcl_search.data.load import load_dataset

    dataset = load_dataset(str(DATA))
    todo = [(s, t, g) for s in args.seeds for (t, g) in settings if str(s) not in runs.get(setting_key(t, g), {})]
    print(f"# {len(todo)} runs to do ({len(settings)} settings x seeds {args.seeds}), {args.epochs} epochs each", flush=True)
    for i, (seed, t, g) in enumerate(todo):
        t0 = time.perf_counter()
        rec = run_one(dataset, t, g, seed, args.epochs, args.threads)
        runs.setdefault(setting_key(t, g), {})[str(seed)] = rec
        _write(args.out, table)
        print(f"[{i + 1}/{len(todo)}] seed {seed} {setting_key(t, g)}: best dev {max(rec['dev_f1']):.2f} ({time.perf_counter() - t0:.0f} s)",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

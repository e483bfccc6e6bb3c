"""Seconds per training epoch and peak memory per backbone on the surrogate benchmarks.

Each (backbone, dataset) runs in its own process (clean peak-RSS figure) with 2 torch threads by
default, the papers' batch sizes (backbones/defaults.py) and SPCL on at the paper's setting. It
trains ``--epochs`` epochs and reports the median training-pass time of the epochs after the first
(the first includes one-off warm-up), next to the original code's figure on this kind of machine.

    python benchmarks/epoch_time.py                      # every backbone, IEMOCAP and MELD
    python benchmarks/epoch_time.py --backbones mmgcn --datasets iemocap --epochs 3
    python benchmarks/epoch_time.py --device cuda        # GPU time per epoch

Figures come from the SURROGATE benchmark (real text, synthetic audio/visual features).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPCL_SHARED_DATA", REPO.parent / "shared" / "data"))
DATASETS = {"iemocap": SHARED / "iemocap" / "iemocap_surrogate.pkl", "meld": SHARED / "meld" / "meld_surrogate.pkl"}
#: seconds per training epoch of the original code, 2 CPU threads (shared/design/BACKBONES.md)
REFERENCE = {
    ("dialoguegcn", "iemocap"): 12.6,
    ("mmgcn", "iemocap"): 43.6,
    ("mmgcn", "meld"): 24.9,
    ("mm_dfn", "iemocap"): 108.0,
    ("mm_dfn", "meld"): 80.7,
    ("biddin", "iemocap"): 29.3,
}


#: batch size (dialogues) of each original's script, used for the comparison above
REFERENCE_BATCH = {"dialoguegcn": 32, "mmgcn": 16, "mm_dfn": 16, "biddin": 30}


def measure(backbone: str, dataset: str, epochs: int, threads: int, device: str) -> dict:
    """Train ``epochs`` epochs in this process and return the timing figures."""
    import torch

    torch.set_num_threads(threads)
    from spcl_search.data.load import load_dataset
    from spcl_search.search.paper import paper_setting
    from spcl_search.spcl import SPCLConfig
    from spcl_search.train import TrainConfig, train

    ds = load_dataset(str(DATASETS[dataset]))
    try:
        setting = paper_setting(backbone, dataset, "atv")
        growth, threshold = setting["cl_growth"], setting["cl_threshold"]
    except Exception:  # noqa: BLE001 - the late-fusion baseline has no paper setting
        growth, threshold = 1.1, 0.4
    cfg = TrainConfig(backbone=backbone, modalities="atv", epochs=epochs, threads=threads, device=device,
                      batch_size=REFERENCE_BATCH.get(backbone),
                      spcl=SPCLConfig(threshold=threshold, growth=growth))
    result = train(ds, cfg)
    secs = [r.seconds for r in result.history]
    steady = secs[1:] if len(secs) > 1 else secs
    out = {
        "backbone": backbone,
        "dataset": dataset,
        "device": result.device,
        "threads": threads,
        "batch_size": result.config["batch_size"],
        "epochs": epochs,
        "seconds_per_epoch": statistics.median(steady),
        "first_epoch_seconds": secs[0],
        "eval_seconds": statistics.median(r.eval_seconds for r in result.history),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "dev_f1_last": result.history[-1].dev_f1,
    }
    if device.startswith("cuda"):
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    import backbones

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", nargs="*", default=[n for n in backbones.names() if n != "late_fusion"])
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    ap.add_argument("--one", nargs=2, metavar=("BACKBONE", "DATASET"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.epochs, args.threads, args.device)))
        return

    rows = []
    print(f"# epoch time, SURROGATE benchmark, {args.threads} threads, device {args.device}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"{'backbone':<12} {'dataset':<8} {'batch':>5} {'s/epoch':>8} {'ref s':>7} {'speed-up':>8} {'eval s':>7} {'peak MiB':>9}")
    for ds in args.datasets:
        for bb in args.backbones:
            proc = subprocess.run(
                [sys.executable, __file__, "--one", bb, ds, "--epochs", str(args.epochs), "--threads", str(args.threads), "--device", args.device],
                capture_output=True, text=True,
            )
            if proc.returncode != 0:
                print(f"{bb:<12} {ds:<8} FAILED: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            ref = REFERENCE.get((bb, ds))
            row["reference_seconds"] = ref
            row["speedup"] = ref / row["seconds_per_epoch"] if ref else None
            rows.append(row)
            speedup = f"{row['speedup']:.1f}x" if ref else "-"
            print(f"{bb:<12} {ds:<8} {row['batch_size']:>5} {row['seconds_per_epoch']:>8.2f} {ref if ref else '-':>7} "
                  f"{speedup:>8} {row['eval_seconds']:>7.2f} {row['peak_rss_mib']:>9.0f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

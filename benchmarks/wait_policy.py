"""Seconds per training epoch under each OpenMP wait policy, on an idle and on a busy machine.

Why: torch's OpenMP threads either spin or sleep between operators, and the right choice depends on
whether other processes share the cores (spcl_search/openmp.py picks one when a command starts). This script
measures one backbone's training epoch (2 threads by default) in a fresh process per policy, first
with nothing else running, then with ``--busy`` busy-loop processes competing for the cores, plus
1 thread as the baseline that has no pool to wait on.

    python benchmarks/wait_policy.py                          # MMGCN on MELD-surrogate, batch 16
    python benchmarks/wait_policy.py --backbone dialoguegcn --dataset iemocap

Figures come from the SURROGATE benchmark (real text, synthetic audio/visual features). Run it on an
otherwise idle machine: the "idle" column assumes nothing else is running.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPCL_SHARED_DATA", REPO.parent / "shared" / "data"))
DATASETS = {"iemocap": SHARED / "iemocap" / "iemocap_surrogate.pkl", "meld": SHARED / "meld" / "meld_surrogate.pkl"}
#: name -> environment; "chosen" leaves the decision to spcl_search.openmp
POLICIES = {
    "spin (libgomp default)": {"GOMP_SPINCOUNT": "300000"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "chosen by spcl_search": {},
}

CHILD = r"""
import json, os, statistics, sys
from spcl_search.openmp import apply_at_entry
apply_at_entry()  # first, as the command line does: it picks the wait policy before torch loads
from spcl_search.data.load import load_dataset
from spcl_search.train import TrainConfig, train
backbone, path, threads, batch_size, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
cfg = TrainConfig(backbone=backbone, modalities="atv", epochs=epochs, threads=threads, device="cpu",
                  batch_size=batch_size, method_options={"cl_threshold": 0.4, "cl_growth": 1.1})
secs = [r.seconds for r in train(load_dataset(path), cfg).history]
print(json.dumps({"seconds": statistics.median(secs[1:] or secs), "policy": os.environ.get("OMP_WAIT_POLICY", "default")}))
"""


def measure(env_extra: dict[str, str], args: argparse.Namespace, threads: int) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_extra)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, args.backbone, str(DATASETS[args.dataset]), str(threads), str(args.batch_size), str(args.epochs)],
        env=env, capture_output=True, text=True, check=True, cwd=REPO,
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return row["seconds"], row["policy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="mmgcn")
    ap.add_argument("--dataset", default="meld", choices=list(DATASETS))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per measurement; the first is warm-up")
    ap.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="busy-loop processes for the busy column")
    args = ap.parse_args()

    print(f"# {args.backbone} on {args.dataset} (SURROGATE), batch {args.batch_size}, {args.threads} threads, "
          f"{os.cpu_count()} cores; seconds per training epoch")
    print(f"{'policy':<36} {'idle s':>8} {'busy s':>8} {'idle vs PASSIVE':>16} {'busy vs PASSIVE':>16}"
          f"  (busy: {args.busy} busy-loop processes)")
    rows = [(name, env, args.threads) for name, env in POLICIES.items()] + [("1 thread (no pool)", {}, 1)]
    results = []
    for name, env, threads in rows:
        idle, idle_pol = measure(env, args, threads)
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        try:
            busy, busy_pol = measure(env, args, threads)
        finally:
            for h in hogs:
                h.kill()
                h.wait()
        if not env and threads > 1:
            name = f"{name} ({idle_pol}/{busy_pol})"
        results.append((name, idle, busy))
    base_idle, base_busy = next((i, b) for n, i, b in results if n == "PASSIVE")
    for name, idle, busy in results:
        print(f"{name:<36} {idle:>8.2f} {busy:>8.2f} {base_idle / idle:>15.2f}x {base_busy / busy:>15.2f}x", flush=True)

if __name__ == "__main__":
    main()

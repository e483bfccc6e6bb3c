"""Seconds per training epoch per backbone and form, against the machine's limit and the reference code.

Each (backbone, form, dataset) runs in its own process (clean peak-RSS figure) with 2 torch threads by
default, tri-modal, SPCL on at the paper's setting, and the form's batch size: the SPCL scripts' for the
``spcl`` forms (32; late fusion 16), the original repositories' for the ``original`` forms. It trains
``--epochs`` epochs and reports the median training-pass time of the epochs after the first.

The floor. ``torch.utils.flop_counter`` counts the FLOPs of one training epoch (forward + backward) on the
real utterances only: the training dialogues are run grouped by length, so no padded position is
counted. A 1024^3 fp32 GEMM is timed in the same process with the same threads; ``floor = FLOPs / GEMM
rate`` is what the epoch would take if every FLOP ran at GEMM speed, and ``ratio = s/epoch / floor``.

The SPCL code here. Its seconds per epoch were measured on another machine; what it would take on this one
is bounded below by its own FLOPs at this GEMM rate. For the spcl forms the script counts the FLOPs of one
epoch in reference mode (``reference_arithmetic=True``: the SPCL code's arithmetic, every padded position of
its batches computed) and prints ``ref floor`` = those FLOPs / the GEMM rate: the SPCL code cannot train an
epoch faster than that on this machine, so ``s/epoch`` below ``ref floor`` is faster than it, measured.

    python benchmarks/epoch_time.py                                  # every backbone, both forms, IEMOCAP and MELD
    python benchmarks/epoch_time.py --backbones mmgcn --variants spcl --datasets iemocap --epochs 3
    python benchmarks/epoch_time.py --device cuda                    # GPU time per epoch

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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPCL_SHARED_DATA", REPO.parent / "shared" / "data"))
DATASETS = {"iemocap": SHARED / "iemocap" / "iemocap_surrogate.pkl", "meld": SHARED / "meld" / "meld_surrogate.pkl"}
#: seconds per training epoch of the reference code, 2 CPU threads, tri-modal, its own batch sizes.
#: original forms: the original repositories (shared/design/BACKBONES.md); spcl forms: the SPCL code on the
#: IEMOCAP surrogate at the paper's settings (issue "The seed's backbones"; measured on another machine).
REFERENCE = {
    ("dialoguegcn", "original", "iemocap"): "12.6",
    ("mmgcn", "original", "iemocap"): "43.6",
    ("mmgcn", "original", "meld"): "24.9",
    ("mm_dfn", "original", "iemocap"): "108",
    ("mm_dfn", "original", "meld"): "80.7",
    ("biddin", "original", "iemocap"): "29.3",
    ("late_fusion", "spcl", "iemocap"): "17.7-19.3",
    ("biddin", "spcl", "iemocap"): "42-49",
    ("dialoguegcn", "spcl", "iemocap"): "52-55",
    ("mmgcn", "spcl", "iemocap"): "76-96",
    ("mm_dfn", "spcl", "iemocap"): "107",
}
#: batch size (dialogues) of each original repository's script, for the original forms
ORIGINAL_BATCH = {"dialoguegcn": 32, "mmgcn": 16, "mm_dfn": 16, "biddin": 30}


def gemm_rate(threads: int, size: int = 1024, repeats: int = 10) -> float:
    """GFLOP/s of a ``size^3`` fp32 matrix product on this CPU with ``threads`` threads (best of ``repeats``)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def epoch_flops(model, engine, dialogues, modalities: str, n_speakers: int) -> float:
    """FLOPs of one training epoch (forward + backward) on the real utterances of ``dialogues``.

    Dialogues of equal length are batched together, so no padding enters the count.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from spcl_search.data.batching import collate

    by_length: dict[int, list] = {}
    for d in dialogues:
        by_length.setdefault(len(d), []).append(d)
    model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        for group in by_length.values():
            batch = collate(group, modalities, n_speakers)
            engine.loss(model(batch), batch.labels, batch.mask).loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def padded_epoch_flops(model, engine, dialogues, modalities: str, n_speakers: int, batch_size: int) -> float:
    """FLOPs of one training epoch over padded batches of ``batch_size`` dialogues (the order of seed 0)."""
    from torch.utils.flop_counter import FlopCounterMode

    from spcl_search.data.batching import iter_batches

    model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        for batch in iter_batches(dialogues, modalities, n_speakers, batch_size, shuffle=True, seed=0):
            engine.loss(model(batch), batch.labels, batch.mask).loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def measure(backbone: str, variant: str, dataset: str, epochs: int, threads: int, device: str) -> dict:
    """Train ``epochs`` epochs in this process and return the timing figures."""
    import torch

    import backbones
    from spcl_search.data.load import load_dataset
    from spcl_search.search.paper import paper_setting
    from spcl_search.spcl import SPCL, SPCLConfig
    from spcl_search.train import TrainConfig, train

    rate = gemm_rate(threads)
    ds = load_dataset(str(DATASETS[dataset]))
    try:
        setting = paper_setting(backbone, dataset, "atv")
        growth, threshold = setting["cl_growth"], setting["cl_threshold"]
    except Exception:  # noqa: BLE001 - the late-fusion baseline has no paper setting
        growth, threshold = 1.1, 0.4
    protocol = backbones.lookup(backbone, variant).training_defaults(dataset)
    batch = ORIGINAL_BATCH.get(backbone) if variant == "original" else protocol["batch_size"]  # the originals' own scripts
    spcl = SPCLConfig(threshold=threshold, growth=growth)
    cfg = TrainConfig(
        backbone=backbone, variant=variant, modalities="atv", epochs=epochs, threads=threads, device=device,
        batch_size=batch, patience=0, method_options={"cl_threshold": threshold, "cl_growth": growth},
    )  # fmt: skip
    result = train(ds, cfg)
    secs = [r.seconds for r in result.history]
    steady = secs[1:] if len(secs) > 1 else secs

    torch.manual_seed(0)
    model = backbones.build(
        backbone, "atv", ds.dims, ds.n_classes, ds.n_speakers, dataset=dataset, variant=variant
    )
    flops = epoch_flops(model, SPCL(spcl, "atv"), ds.train, "atv", ds.n_speakers)
    out = {
        "backbone": backbone,
        "variant": variant,
        "dataset": dataset,
        "device": result.device,
        "threads": threads,
        "batch_size": result.config["batch_size"],
        "epochs": epochs,
        "seconds_per_epoch": statistics.median(steady),
        "first_epoch_seconds": secs[0],
        "eval_seconds": statistics.median(r.eval_seconds for r in result.history),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "epoch_tflop": flops / 1e12,
        "gemm_gflops": rate,
        "floor_seconds": flops / (rate * 1e9),
        "train_utterances": sum(len(d) for d in ds.train),
        "n_parameters": sum(p.numel() for p in model.parameters()),
    }
    out["ratio_to_floor"] = out["seconds_per_epoch"] / out["floor_seconds"]
    if variant == "spcl":
        torch.manual_seed(0)
        reference = backbones.build(
            backbone, "atv", ds.dims, ds.n_classes, ds.n_speakers, dataset=dataset, variant=variant, reference_arithmetic=True
        )
        padded = padded_epoch_flops(reference, SPCL(spcl, "atv"), ds.train, "atv", ds.n_speakers, out["batch_size"])
        out["reference_epoch_tflop"] = padded / 1e12
        out["reference_floor_seconds"] = padded / (rate * 1e9)
    if device.startswith("cuda"):
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    import backbones

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", nargs="*", default=backbones.names())
    ap.add_argument("--variants", nargs="*", default=backbones.forms())
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    ap.add_argument("--one", nargs=3, metavar=("BACKBONE", "VARIANT", "DATASET"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one:
        print(json.dumps(measure(*args.one, args.epochs, args.threads, args.device)))
        return

    rows = []
    print(
        f"# epoch time, SURROGATE benchmark, tri-modal, {args.threads} threads, device {args.device}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'backbone':<12} {'form':<9} {'dataset':<8} {'batch':>5} {'s/epoch':>8} {'TFLOP':>6} {'GEMM GF/s':>9} "
        f"{'floor s':>8} {'ratio':>6} {'ref s':>10} {'vs ref':>7} {'ref TFLOP':>9} {'ref floor':>9} {'eval s':>7} {'peak MiB':>9}"
    )
    for ds in args.datasets:
        for variant in args.variants:
            for bb in args.backbones:
                cmd = [sys.executable, __file__, "--one", bb, variant, ds, "--epochs", str(args.epochs), "--threads", str(args.threads), "--device", args.device]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode
                    print(f"{bb:<12} {variant:<9} {ds:<8} FAILED: {tail}")
                    continue
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                ref = REFERENCE.get((bb, variant, ds))
                row["reference_seconds"] = ref
                low = float(ref.split("-")[0]) if ref else None
                row["speedup_vs_reference"] = low / row["seconds_per_epoch"] if low else None
                rows.append(row)
                speedup = f"{row['speedup_vs_reference']:.1f}x" if low else "-"
                print(
                    f"{bb:<12} {variant:<9} {ds:<8} {row['batch_size']:>5} {row['seconds_per_epoch']:>8.2f} {row['epoch_tflop']:>6.3f} "
                    f"{row['gemm_gflops']:>9.1f} {row['floor_seconds']:>8.2f} {row['ratio_to_floor']:>6.2f} {ref or '-':>10} "
                    f"{speedup:>7} {row.get('reference_epoch_tflop', float('nan')):>9.3f} {row.get('reference_floor_seconds', float('nan')):>9.2f} "
                    f"{row['eval_seconds']:>7.2f} {row['peak_rss_mib']:>9.0f}",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

"""GPU figures per backbone and form: seconds per epoch (fp32, bf16, CPU-tuned kernels), peak memory, packing.

For every backbone and form (``variant`` spcl and original) on the IEMOCAP surrogate (``../shared/data``), tri-modal,
SPCL on, the form's own protocol (batch size, lr), on one GPU:

- **s/epoch fp32, bf16**: training-pass seconds per epoch (median over the measured epochs) of one run alone
  on the GPU, in fp32 and under ``--precision bf16``; **loop**: fp32 with the CPU-tuned kernels forced on the
  GPU (``kernel_mode("loop")``), i.e. what the device-aware kernels save;
- **peak MiB**: ``torch.cuda.max_memory_allocated`` of that fp32 run (and of the bf16 run); the CUDA context
  (some hundreds of MiB per process) comes on top;
- **trials/h at K = 1, 2, 4, 8**: K independent worker processes share the GPU, each training one trial of
  ``--epochs`` epochs (``spcl_search.train.train`` with dev/test evaluation, as a search worker runs it; K = 1
  is the fp32 run above),
  all started together after a warm-up; trials per hour = ``3600 * sum_k 1 / seconds_k``, and the ratio
  against K = 1 measured in the same run.

It also checks the cuDNN path of the grouped LSTM against the loop on the GPU (largest difference of the
outputs; cuDNN may use TF32, so expect ~1e-3 rather than the CPU test's 1e-5).

The whole run stays within ``--budget`` seconds (default 270, for the 5 minutes one GPU is lent): the
processes start once and stay up, and a measurement that would start after the budget is reported as
skipped. On a machine without CUDA it says so and exits 0 (``--allow-cpu`` runs the same on the CPU, small,
to check the script itself).

    python benchmarks/gpu.py                                   # every backbone and form, K = 1 2 4 8
    python benchmarks/gpu.py --forms mmgcn:spcl biddin:spcl --ks 1 4 --epochs 3 --json gpu.json

Figures come from the SURROGATE benchmark (real text, synthetic audio/visual features).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("SPCL_SHARED_DATA", REPO.parent / "shared" / "data"))
IEMOCAP = SHARED / "iemocap" / "iemocap_surrogate.pkl"
KS = (1, 2, 4, 8)


# ---------------------------------------------------------------------------------------------- workers


def _worker(index: int, device: str, data: str, threads: int, inbox: Any, outbox: Any) -> None:
    """One benchmark process: loads the data once, then runs the commands it is sent until ``None``."""
    try:
        import torch

        torch.set_num_threads(threads)
        from spcl_search.data.load import load_dataset

        dataset = load_dataset(data)
        if device == "cuda":
            torch.cuda.init()
        outbox.put((index, "ready", None))
    except Exception:  # noqa: BLE001 - reported to the main process
        outbox.put((index, "error", traceback.format_exc(limit=3)))
        return
    while True:
        command = inbox.get()
        if command is None:
            return
        kind, args = command
        try:
            result = _COMMANDS[kind](dataset, device, threads, **args)
            outbox.put((index, "done", result))
        except Exception:  # noqa: BLE001
            outbox.put((index, "error", traceback.format_exc(limit=4)))


def _trial(dataset: Any, device: str, threads: int, backbone: str, variant: str, epochs: int, precision: str = "fp32",
           kernels: str = "auto", start_at: float | None = None, model: dict[str, Any] | None = None) -> dict[str, Any]:
    """One training run as a search trial runs it; returns its wall seconds, s/epoch and peak GPU memory."""
    import torch

    from backbones.kernels import kernel_mode
    from spcl_search.train import TrainConfig, train

    config = TrainConfig(backbone=backbone, variant=variant, modalities="atv", epochs=epochs, patience=0, device=device,
                         threads=threads, precision=precision, model=dict(model or {}))
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    t0 = time.perf_counter()
    with kernel_mode(kernels):
        result = train(dataset, config)
    seconds = time.perf_counter() - t0
    epochs_s = [r.seconds for r in result.history]
    return {
        "seconds": seconds,
        "seconds_per_epoch": statistics.median(epochs_s[1:] if len(epochs_s) > 1 else epochs_s),
        "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
    }


def _lstm_check(dataset: Any, device: str, threads: int) -> dict[str, Any]:
    """Largest difference between the grouped LSTM's loop and its cuDNN path, on one IEMOCAP-shaped batch."""
    import torch

    from backbones.kernels import kernel_mode
    from backbones.recurrent import GroupedBiLSTM, SequenceLayout
    from spcl_search.data.batching import iter_batches

    batch = next(iter(iter_batches(dataset.train, "atv", dataset.n_speakers, 32))).to(device)
    torch.manual_seed(0)
    module = GroupedBiLSTM([dataset.dims[m] for m in "atv"], 100).to(device).eval()
    layout = SequenceLayout.from_mask(batch.mask)
    xs = [batch.features[m] for m in "atv"]
    with torch.no_grad(), kernel_mode("loop"):
        loop = module(xs, layout)
    with torch.no_grad(), kernel_mode("fused"):
        fused = module(xs, layout)
    return {"max_abs_diff": float((loop - fused).abs().max()), "scale": float(loop.abs().max())}


_COMMANDS = {"trial": _trial, "lstm_check": _lstm_check}


class Pool:
    """``n`` benchmark processes that stay up for the whole run (spawned: each has its own CUDA context)."""

    def __init__(self, n: int, device: str, data: str, threads: int) -> None:
        self.device = device
        ctx = mp.get_context("spawn")
        self.outbox = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(n)]
        self.procs = [ctx.Process(target=_worker, args=(i, device, data, threads, q, self.outbox), daemon=True) for i, q in enumerate(self.inboxes)]
        for p in self.procs:
            p.start()
        self._collect(range(n), "start")

    def run(self, workers: range, kind: str, **args: Any) -> list[dict[str, Any]]:
        for i in workers:
            self.inboxes[i].put((kind, args))
        return self._collect(workers, kind)

    def _collect(self, workers: range, what: str) -> list[Any]:
        results: dict[int, Any] = {}
        while len(results) < len(workers):
            index, status, value = self.outbox.get(timeout=600)
            if status == "error":
                raise RuntimeError(f"benchmark process {index} failed in {what}:\n{value}")
            results[index] = value
        return [results[i] for i in workers]

    def close(self) -> None:
        for q in self.inboxes:
            q.put(None)
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()


# ---------------------------------------------------------------------------------------------- main


def _fmt(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec`` (``"9.3f"``), or ``-`` in the same width."""
    return format("-", f">{spec.split('.')[0]}") if value is None else format(value, spec)


def measure_form(pool: Pool, backbone: str, variant: str, ks: tuple[int, ...], epochs: int, deadline: float,
                 model: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every figure of one backbone form (see the module docstring); ``skipped`` lists what the budget cut."""
    row: dict[str, Any] = {"backbone": backbone, "variant": variant, "epochs": epochs, "skipped": []}
    common = {"backbone": backbone, "variant": variant, "model": model}
    # a first run pays for imports, cuDNN plans and the allocator's growth: one untimed epoch in every process
    pool.run(range(max(ks)), "trial", **common, epochs=1)
    solo = {}
    for label, args in [("fp32", {}), ("bf16", {"precision": "bf16"}), ("loop", {"kernels": "loop"})]:
        if time.monotonic() > deadline:
            row["skipped"].append(label)
            continue
        if label != "fp32":
            pool.run(range(1), "trial", **common, **args, epochs=1)
        (solo[label],) = pool.run(range(1), "trial", **common, **args, epochs=epochs)
    row["seconds_per_epoch"] = {k: v["seconds_per_epoch"] for k, v in solo.items()}
    row["peak_mib"] = {k: v["peak_mib"] for k, v in solo.items() if k != "loop"}
    row["trials_per_hour"] = {}
    for k in ks:
        if k == 1 and "fp32" in solo:  # one trial alone on the GPU: the fp32 run above
            runs = [solo["fp32"]]
        elif time.monotonic() > deadline:
            row["skipped"].append(f"K={k}")
            continue
        else:
            start_at = time.time() + 1.0  # every process starts its trial at the same moment
            runs = pool.run(range(k), "trial", **common, epochs=epochs, start_at=start_at)
        row["trials_per_hour"][k] = 3600.0 * sum(1.0 / r["seconds"] for r in runs)
        row.setdefault("peak_mib_packed", {})[k] = max((r["peak_mib"] or 0.0) for r in runs)
    base = row["trials_per_hour"].get(1)
    row["packing_ratio"] = {k: v / base for k, v in row["trials_per_hour"].items()} if base else {}
    return row


def main() -> int:
    import backbones

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--forms", nargs="*", default=[f"{b}:{v}" for b in backbones.names() for v in backbones.forms(b)],
                    help="backbone:variant pairs (default: every backbone, both forms)")
    ap.add_argument("--ks", nargs="*", type=int, default=list(KS), help="trials sharing the GPU (default 1 2 4 8)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of a trial (the first is not counted in s/epoch)")
    ap.add_argument("--data", default=str(IEMOCAP), help="feature file (default: the IEMOCAP surrogate) or 'synthetic'")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    ap.add_argument("--budget", type=float, default=270.0, help="seconds; measurements that would start later are skipped")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    ap.add_argument("--allow-cpu", action="store_true", help="run on the CPU when there is no GPU (checks the script)")
    ap.add_argument("--model", type=json.loads, default=None, help="JSON of model overrides for every form (a quick check)")
    args = ap.parse_args()

    import torch

    if torch.cuda.is_available():
        device = "cuda"
    elif args.allow_cpu:
        device = "cpu"
    else:
        print("benchmarks/gpu.py: no CUDA device on this machine (torch.cuda.is_available() is False); nothing to measure.")
        return 0
    deadline = time.monotonic() + args.budget
    if args.data != "synthetic" and not Path(args.data).is_file():
        print(f"benchmarks/gpu.py: {args.data} not found; using the embedded synthetic data instead")
        args.data = "synthetic"
    forms = [tuple(f.split(":", 1)) for f in args.forms]
    for form in forms:
        if len(form) != 2 or form[0] not in backbones.names() or form[1] not in backbones.forms(form[0]):
            ap.error(f"--forms {':'.join(form)}: give backbone:variant with a backbone of {', '.join(backbones.names())} "
                     f"and a variant of {', '.join(backbones.forms())}")
    ks = tuple(sorted(set(args.ks)))
    name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine()
    print(f"# GPU benchmark, SURROGATE data ({Path(args.data).name}), tri-modal, {args.epochs}-epoch trials, device {device} ({name}), "
          f"torch {torch.__version__}, {os.cpu_count()} CPU cores, {args.threads} thread(s) per process")

    started = time.monotonic()
    pool = Pool(max(ks), device, args.data, args.threads)
    print(f"# {max(ks)} processes ready in {time.monotonic() - started:.1f} s")
    rows = []
    try:
        check = pool.run(range(1), "lstm_check")[0]
        print(f"# grouped LSTM, loop vs cuDNN path on {device}: max |diff| {check['max_abs_diff']:.2e} (outputs up to {check['scale']:.2f})")
        head = f"{'backbone':<12} {'form':<9} {'s/ep fp32':>9} {'bf16':>7} {'loop':>7} {'peak MiB':>9} {'bf16 MiB':>9}"
        print(head + "".join(f" {'trials/h K=' + str(k):>15}" for k in ks) + "  skipped")
        for backbone, variant in forms:
            if time.monotonic() > deadline:
                print(f"{backbone:<12} {variant:<9} skipped: time budget ({args.budget:.0f} s) spent")
                continue
            row = measure_form(pool, backbone, variant, ks, args.epochs, deadline, args.model)
            rows.append(row)
            spe, peak = row["seconds_per_epoch"], row["peak_mib"]
            line = (f"{backbone:<12} {variant:<9} {_fmt(spe.get('fp32'), '9.3f')} {_fmt(spe.get('bf16'), '7.3f')} "
                    f"{_fmt(spe.get('loop'), '7.3f')} {_fmt(peak.get('fp32'), '9.0f')} {_fmt(peak.get('bf16'), '9.0f')}")
            for k in ks:
                tph, ratio = row["trials_per_hour"].get(k), row["packing_ratio"].get(k)
                line += f" {_fmt(tph, '7.0f')} ({_fmt(ratio, '4.2f')}x)" if tph is not None else f" {'-':>15}"
            print(line + ("  " + ",".join(row["skipped"]) if row["skipped"] else ""), flush=True)
    finally:
        pool.close()
    print(f"# {time.monotonic() - started:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps({"device": name, "epochs": args.epochs, "check": check, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

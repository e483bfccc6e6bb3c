"""What the search service costs on top of training.

1. Overhead per trial: one worker runs ``--n-trials`` short trials (the simulated trainer, ``--epochs``
   dev-F1 reports each, TPE + median pruner) on SQLite and on PostgreSQL. Overhead = wall time minus
   time inside the trainer, per trial: reserving a slot under the study lock, stale-trial check,
   sampling, reports and pruning decisions, ~35 user attrs, tell. It is shown as a fraction of a real
   trial, measured here (the default synthetic study's trial: DialogueGCN, 5 epochs, 1 thread) or
   given with ``--real-trial-seconds``.
2. Throughput: 1, 2, 8 and 32 worker processes (``spcl-search worker``) on one PostgreSQL study with
   trials of ``--trial-seconds`` (simulated), counting trials per second between the first trial's
   start and the last one's end, the trials that finished (must equal the budget) and any storage
   error in the workers' output.
3. With ``--proxy``: the same throughput through one storage proxy (``spcl-search storage-proxy``, workers on
   ``grpc://``) against direct PostgreSQL connections, at ``--proxy-workers`` (default 8, 32, 64) workers.

    python benchmarks/storage_overhead.py                       # everything (a few minutes)
    python benchmarks/storage_overhead.py --workers 1,2 --skip-real
    python benchmarks/storage_overhead.py --paper-data shared/data/iemocap/iemocap_surrogate.pkl
    python benchmarks/storage_overhead.py --proxy --only-proxy --proxy-workers 8   # proxy vs direct only

PostgreSQL comes from ``--pg-url`` or ``$SPCL_TEST_PG_URL`` (default postgresql://postgres@127.0.0.1:5432/test);
the benchmark's studies are deleted afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import TrialState

from spcl_search.search import worker as worker_mod
from spcl_search.search.storage import mask_url, open_storage
from spcl_search.search.study import open_study

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import simulated  # the tests' simulated trainer, found through the line above

ERROR_PATTERN = re.compile(r"database is locked|OperationalError|too many clients|Traceback|error:", re.IGNORECASE)


def _cheap(name: str, n_trials: int, epochs: int, pruner: str = "median") -> dict:
    return {"name": name, "backbone": "dialoguegcn", "n_trials": n_trials, "epochs": epochs, "pruner": pruner}


def overhead(url: str, n_trials: int, epochs: int) -> tuple[float, float, int]:
    """(wall seconds, seconds inside the trainer, finished trials) for one worker on ``url``."""
    name = f"bench-overhead-{uuid.uuid4().hex[:8]}"
    rdb = open_storage(url)
    open_study(rdb, _cheap(name, n_trials, epochs))
    inside = [0.0]

    def timed_factory(spec):
        fit = simulated.SimulatedTrainer(spec.epochs)

        class Timed:  # the Trainer protocol: time spent inside the trainer's epochs, not in reporting and pruning
            device, versions, surrogate = fit.device, fit.versions, ""

            def run(self, modalities, seed, setting):
                run = fit.run(modalities, seed, setting)
                while True:
                    t0 = time.perf_counter()
                    try:
                        record = next(run)
                    except StopIteration as stop:
                        inside[0] += time.perf_counter() - t0
                        return stop.value
                    inside[0] += time.perf_counter() - t0
                    yield record

        return Timed()

    try:
        t0 = time.perf_counter()
        report = worker_mod.run_worker(rdb, name, trainer=timed_factory)
        wall = time.perf_counter() - t0
    finally:
        optuna.delete_study(study_name=name, storage=rdb)
    return wall, inside[0], len(report.trials)


def real_trial_seconds() -> float:
    """Wall time of one trial of the default synthetic study (DialogueGCN, 5 epochs, 1 thread)."""
    from spcl_search.data.load import load_dataset
    from spcl_search.train import TrainConfig, train

    dataset = load_dataset("synthetic")
    t0 = time.perf_counter()
    train(dataset, TrainConfig(backbone="dialoguegcn", epochs=5, threads=1, device="cpu", method_options={"cl_threshold": 0.7, "cl_growth": 1.3}))
    return time.perf_counter() - t0


def paper_trial_seconds(path: str) -> float:
    """Estimated paper-protocol trial on ``path``: one measured DialogueGCN epoch (1 thread) x 50 epochs."""
    from spcl_search.data.load import load_dataset
    from spcl_search.train import TrainConfig, train

    dataset = load_dataset(path)
    result = train(dataset, TrainConfig(backbone="dialoguegcn", epochs=1, threads=1, device="cpu"))
    epoch = result.history[0]
    return 50 * (epoch.seconds + epoch.eval_seconds)


def throughput(url: str, workers: int, n_trials: int, trial_seconds: float, epochs: int) -> dict:
    """Run ``workers`` worker processes on one study; return throughput and error counts."""
    name = f"bench-throughput-{uuid.uuid4().hex[:8]}"
    rdb = open_storage(url)
    open_study(rdb, _cheap(name, n_trials, epochs, pruner="none"))
    env = {**os.environ, **simulated.env(seconds=trial_seconds / epochs), "SPCL_SEARCH_STORAGE": url}
    cmd = [sys.executable, "-m", "spcl_search", "worker", "--study", name, "--threads", "1"]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(workers)]
    outputs = [p.communicate(timeout=3600)[0] for p in procs]
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name=name, storage=rdb)
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    start = min(t.datetime_start for t in done)
    end = max(t.datetime_complete for t in done)
    span = (end - start).total_seconds()
    errors = sum(len(ERROR_PATTERN.findall(out)) for out in outputs)
    error_lines = Counter(line.strip()[:160] for out in outputs for line in out.splitlines() if line.startswith("error:"))
    optuna.delete_study(study_name=name, storage=rdb)
    return {
        "workers": workers,
        "complete": len(done),
        "trials": len(trials),
        "budget": n_trials,
        "span_s": span,
        "wall_s": wall,
        "trials_per_s": len(done) / span if span > 0 else float("nan"),
        "ideal_per_s": workers / trial_seconds,
        "nonzero_exits": sum(p.returncode != 0 for p in procs),
        "storage_errors": errors,
        "error_lines": error_lines,
    }


@contextlib.contextmanager
def storage_proxy(pg_url: str):
    """A ``spcl-search storage-proxy`` process over ``pg_url`` on a free local port; yields its grpc:// URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "spcl_search", "storage-proxy", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "SPCL_SEARCH_STORAGE": pg_url}  # never on the command line
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"grpc://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                open_storage(url, heartbeat_interval=None)
                break
            except Exception:  # noqa: BLE001 - not up yet
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the storage proxy did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default=os.environ.get("SPCL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--n-trials", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=10, help="dev-F1 reports per trial in the overhead runs")
    parser.add_argument("--workers", default="1,2,8,32")
    parser.add_argument("--trial-seconds", type=float, default=2.0, help="simulated trial length in the throughput runs")
    parser.add_argument("--trials-per-worker", type=int, default=4)
    parser.add_argument("--real-trial-seconds", type=float, default=None)
    parser.add_argument("--skip-real", action="store_true", help="do not measure a real trial")
    parser.add_argument("--paper-data", default=None, help="feature pickle (e.g. IEMOCAP): also compare with a 50-epoch trial on it")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--proxy", action="store_true", help="3.: throughput through one storage proxy against direct connections")
    parser.add_argument("--proxy-workers", default="8,32,64")
    parser.add_argument("--only-proxy", action="store_true", help="run part 3 only")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    print(f"machine: {os.cpu_count()} CPU(s); PostgreSQL: {mask_url(args.pg_url)}")
    if args.only_proxy:
        proxy_vs_direct(args)
        return
    real = args.real_trial_seconds
    if real is None and not args.skip_real:
        real = real_trial_seconds()
        print(f"real trial (default synthetic study: DialogueGCN, 5 epochs, 1 thread): {real:.1f} s")

    paper = None
    if args.paper_data:
        paper = paper_trial_seconds(args.paper_data)
        print(f"paper-protocol trial on {Path(args.paper_data).name} (DialogueGCN, 50 x one measured epoch, 1 thread): {paper:.0f} s")

    print(f"\n1. overhead per trial: 1 worker, {args.n_trials} trials, {args.epochs} reports each, TPE + median pruner")
    print(f"{'storage':<12}{'wall s':>9}{'in trainer s':>14}{'overhead/trial ms':>19}{'% of synthetic trial':>22}{'% of paper trial':>18}")
    backends = [] if args.skip_sqlite else [("sqlite", None)]
    backends.append(("postgresql", args.pg_url))
    with tempfile.TemporaryDirectory() as tmp:
        for label, url in backends:
            url = url or f"sqlite:///{Path(tmp) / 'bench.db'}"
            wall, inside, n = overhead(url, args.n_trials, args.epochs)
            per = (wall - inside) / max(n, 1)
            frac = f"{100 * per / real:.3f} %" if real else "-"
            frac_paper = f"{100 * per / paper:.4f} %" if paper else "-"
            print(f"{label:<12}{wall:>9.1f}{inside:>14.2f}{1000 * per:>19.1f}{frac:>22}{frac_paper:>18}")

    print(f"\n2. throughput on PostgreSQL: trials of {args.trial_seconds} s (simulated), {args.trials_per_worker} per worker")
    print(f"{'workers':>8}{'complete/budget':>17}{'trials/s':>10}{'ideal/s':>9}{'span s':>8}{'wall s':>8}{'bad exits':>10}{'storage errors':>16}")
    for k in [int(x) for x in args.workers.split(",")]:
        r = throughput(args.pg_url, k, args.trials_per_worker * k, args.trial_seconds, 4)
        print(
            f"{k:>8}{r['complete']:>10}/{r['budget']:<6}{r['trials_per_s']:>10.2f}{r['ideal_per_s']:>9.2f}{r['span_s']:>8.1f}"
            f"{r['wall_s']:>8.1f}{r['nonzero_exits']:>10}{r['storage_errors']:>16}"
        )
    if args.proxy:
        proxy_vs_direct(args)


def proxy_vs_direct(args: argparse.Namespace) -> None:
    """Part 3: the throughput table through one storage proxy and with direct connections, per worker count."""
    print(f"\n3. throughput, storage proxy vs direct PostgreSQL: trials of {args.trial_seconds} s, {args.trials_per_worker} per worker")
    print(f"{'workers':>8}{'storage':>9}{'complete/budget':>17}{'trials/s':>10}{'ideal/s':>9}{'span s':>8}{'bad exits':>10}{'storage errors':>16}")
    with storage_proxy(args.pg_url) as proxy_url:
        for k in [int(x) for x in args.proxy_workers.split(",")]:
            for label, url in (("direct", args.pg_url), ("proxy", proxy_url)):
                r = throughput(url, k, args.trials_per_worker * k, args.trial_seconds, 4)
                print(
                    f"{k:>8}{label:>9}{r['complete']:>10}/{r['budget']:<6}{r['trials_per_s']:>10.2f}{r['ideal_per_s']:>9.2f}"
                    f"{r['span_s']:>8.1f}{r['nonzero_exits']:>10}{r['storage_errors']:>16}"
                )
                for line, n in r["error_lines"].most_common(3):  # what the workers that stopped said
                    print(f"{'':>17}{n} x {line}")


if __name__ == "__main__":
    main()

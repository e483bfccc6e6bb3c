"""``spcl-search run | worker | status | best | storage-proxy``: hyperparameter studies over SPCL settings."""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from spcl_search.cli import app
from spcl_search.errors import ConfigError, SpclSearchError
from spcl_search.methods import registry
from spcl_search.schema.limits import check_optional
from spcl_search.search.settings import DEFAULT_GRACE_PERIOD, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MAX_RETRY
from spcl_search.stats import pm

if TYPE_CHECKING:
    from spcl_search.schema.best import BestSetting
    from spcl_search.schema.spec import Request
    from spcl_search.search.launcher import LocalWorker
    from spcl_search.search.status import StudyStatus

console = Console()
#: columns of the live view written to a pipe or file (a terminal's own width otherwise)
PIPED_WIDTH = 160


def _out(*tables: Table) -> Console:
    """The console for ``tables``: this one on a terminal (the tables fold to fit it); written to a pipe or a file,
    one as wide as the widest table's natural width (at least :data:`PIPED_WIDTH`), so that no cell is wrapped or cut."""
    if console.is_terminal:
        return console
    wide = Console(width=1_000_000)
    natural = max((Measurement.get(wide, wide.options, t).maximum for t in tables), default=0)
    return Console(width=max(console.width, PIPED_WIDTH, natural))


_SPEC_HELP = "Study spec (TOML, see studies/); options below override it."
_STORAGE_HELP = (
    "Database URL: sqlite:///FILE or postgresql://USER:PASS@HOST/DB, or grpc://HOST:PORT for a storage proxy "
    "(default: $SPCL_SEARCH_STORAGE or sqlite:///spcl_search.db)."
)


def _requested(**kw: Any) -> Request:
    from spcl_search.schema.spec import requested_fields

    spec_file = kw.pop("spec_file")
    return requested_fields(spec_file, **kw)


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S", stream=sys.stderr, force=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _params(params: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in (params or {}).items())


def _duration(seconds: float | None) -> str:
    """``41s``, ``3m05s``, ``1h02m``."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _status_table(status: StudyStatus, elapsed: float | None = None) -> Table:
    """Two columns: what, value (wraps well on narrow terminals); ``elapsed``: seconds this ``run`` has run."""
    c = status.counts
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    how = "" if status.method == "spcl" else f", method {status.method}"
    how += "" if status.precision == "fp32" else f", {status.precision}"
    table.add_row("study", escape(f"{status.name}  ({status.kind}, {status.backbone} [{status.variant} form] on {status.dataset}{how})"))
    table.add_row(
        "trials",
        f"{c.finished}/{status.n_trials} finished: {c.complete} complete, {c.pruned} pruned, {c.failed} failed"
        f" | {c.running} running, {c.waiting} waiting" + (f", {c.retried} retried" if c.retried else ""),
    )
    if status.best_values is not None:
        names = status.metric_names or ["value"] * len(status.best_values)
        best = ", ".join(f"{n} {v:.2f}" for n, v in zip(names, status.best_values))
        best += f"  (trial {status.best_trial}: {_params(status.best_params)})"
        if status.pareto_size:
            best += f"  [{status.pareto_size} trial(s) on the Pareto front]"
    else:
        best = "-"
    table.add_row("best so far", escape(best))
    for answer in status.answers:
        table.add_row("answer", escape(answer))
    if elapsed is not None or status.mean_trial_seconds is not None:
        when = [] if elapsed is None else [f"elapsed {_duration(elapsed)}"]
        if status.done:
            when.append("budget spent")
        elif status.eta_seconds is not None:
            workers = len(status.workers)
            when.append(f"ETA {_duration(status.eta_seconds)} ({workers} worker{'s' if workers != 1 else ''} at this pace)")
        else:
            when.append("ETA after the first finished trial")
        if status.mean_trial_seconds is not None:
            when.append(f"mean trial {_duration(status.mean_trial_seconds)} over {c.finished} finished")
        table.add_row("time", "; ".join(when))
    return table


def _trials_table(status: StudyStatus) -> Table:
    """``status --trials``: one row per trial."""
    table = Table(title=f"trials of {status.name}", title_justify="left")
    names = status.metric_names or ["value"]
    for col in ("trial", "state", "params", ", ".join(names), "seconds", "worker", "note"):
        table.add_column(col, justify="right" if col in ("trial", "seconds") else "left", overflow="fold")
    for row in status.trials or []:
        value = "-" if row.values is None else ", ".join(f"{v:.2f}" for v in row.values)
        seconds = "-" if row.seconds is None else f"{row.seconds:.1f}"
        table.add_row(str(row.number), row.state, escape(_params(row.params)), value, seconds, row.worker or "-", escape(row.note))
    return table


def _workers_table(status: StudyStatus, local: list[LocalWorker] | None = None) -> Table:
    table = Table(title="workers", title_justify="left")
    for col in ("worker", "gpu", "threads", "state", "trial", "epoch", "dev F1", "trial time", "trials done", "last seen"):
        table.add_column(col)
    now = time.time()
    for w in status.workers:
        running = w.state == "running" and w.trial is not None
        epoch = f"{w.epoch}/{w.epochs} {w.part or ''}".strip() if running and w.epoch is not None else "-"
        table.add_row(
            f"{w.host}:{w.pid}",
            _gpu(w.gpu, w.packing),
            _fmt(w.threads or "-"),
            w.state,
            _fmt(w.trial if w.trial is not None else "-"),
            escape(epoch),
            f"{w.dev_f1:.2f}" if running and w.dev_f1 is not None else "-",
            _duration(now - w.trial_started) if running and w.trial_started else "-",
            str(w.trials_done),
            f"{now - w.last_seen:.0f} s ago",
        )
    for lw in local or []:
        if lw.returncode is not None:
            table.add_row(
                f"local #{lw.slot.index} (pid {lw.process.pid})",
                _gpu(lw.slot.gpu, lw.slot.packing),
                _fmt(lw.slot.threads or "-"),
                f"exited {lw.returncode}",
                *["-"] * 6,
            )
    return table


def _gpu(gpu: str | None, packing: int) -> str:
    """``0``, or ``0 (4/GPU)`` when workers share the GPU."""
    if gpu is None:
        return "-"
    return gpu if packing <= 1 else f"{gpu} ({packing}/GPU)"


Storage = Annotated[str | None, typer.Option("--storage", help=_STORAGE_HELP)]
SpecFile = Annotated[Path | None, typer.Option("--spec", help=_SPEC_HELP)]
Backbone = Annotated[str | None, typer.Option("--backbone", "-b", help="mmgcn, dialoguegcn, mm_dfn, biddin (or late_fusion).")]
Variant = Annotated[
    str | None,
    typer.Option("--variant", "--form", help="Backbone form: spcl (the SPCL code's, default) or original (the backbone's paper)."),
]
Method = Annotated[
    str | None,
    typer.Option("--method", help=registry.help_line() + f" Each searches its own settings. Default: {registry.DEFAULT_METHOD}."),
]
Precision = Annotated[
    str | None,
    typer.Option("--precision", help="fp32 (default) or bf16: every trial's forward passes under bfloat16 autocast (part of the study)."),
]
Kind = Annotated[str | None, typer.Option("--kind", help="search (max dev F1) or balance (dev F1 and tri- vs bi-modal gain).")]
NTrials = Annotated[int | None, typer.Option("--n-trials", help="Study budget: finished trials across all workers.")]
WarmStart = Annotated[
    str | None, typer.Option("--warm-start", help="'paper' enqueues the paper's settings first ('paper:iemocap' borrows a dataset's).")
]
Threads = Annotated[int | None, typer.Option("--threads", help="CPU threads per worker (default: cores / workers).")]
Timeout = Annotated[float | None, typer.Option("--timeout", help="Workers start no trial after this many seconds.")]
HeartbeatInterval = Annotated[int, typer.Option("--heartbeat-interval", hidden=True, help="Seconds between trial heartbeats.")]
GracePeriod = Annotated[int, typer.Option("--grace-period", hidden=True, help="Seconds without heartbeat before a trial is retried.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
Track = Annotated[
    str | None,
    typer.Option(
        "--track",
        help="Track each trial as an MLflow run nested under the study's: mlflow (./mlruns) or mlflow:URI; none: off "
        "(default: the spec's [track]).",
    ),
]
#: the proxy's own: it records heartbeats and finds stale trials for its workers, which adopt these two
ProxyHeartbeatInterval = Annotated[
    int, typer.Option("--heartbeat-interval", min=1, help="Seconds between trial heartbeats (the workers adopt it).")
]
ProxyGracePeriod = Annotated[
    int,
    typer.Option("--grace-period", min=1, help="Seconds without a heartbeat before a trial is failed and retried (the workers adopt it)."),
]


@app.command()
def run(
    spec_file: SpecFile = None,
    study: Annotated[
        str | None,
        typer.Option(
            "--study",
            help="Study name (default: <backbone>-<dataset>-<kind>; another form or method before the kind, e.g. mmgcn-iemocap-ogm_ge-search).",
        ),
    ] = None,
    backbone: Backbone = None,
    variant: Variant = None,
    method: Method = None,
    precision: Precision = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="Dataset name: synthetic, iemocap, meld, ... (default: the --data file's name, else synthetic)."),
    ] = None,
    data: Annotated[str | None, typer.Option("--data", help="Feature pickle for the dataset ('synthetic' for the embedded one).")] = None,
    kind: Kind = None,
    modalities: Annotated[
        str | None, typer.Option("--modalities", "-m", help="Comma list, e.g. atv or atv,at,av,tv (categorical when several).")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs per training run.")] = None,
    seeds: Annotated[str | None, typer.Option("--seeds", help="Comma list of seeds; a trial's figures are their mean.")] = None,
    n_trials: NTrials = None,
    sampler: Annotated[str | None, typer.Option("--sampler", help="tpe, nsga2 or random.")] = None,
    pruner: Annotated[str | None, typer.Option("--pruner", help="median, hyperband or none.")] = None,
    warm_start: WarmStart = None,
    baseline: Annotated[
        bool | None, typer.Option("--baseline/--no-baseline", help="Enqueue the no-SPCL baseline (default: on for balance).")
    ] = None,
    space: Annotated[
        list[str] | None, typer.Option("--space", help="Search range NAME=LOW:HIGH[:log|:step=S] or NAME=A,B,C (repeatable).")
    ] = None,
    method_option: Annotated[
        list[str] | None,
        typer.Option("--method-option", help="A fixed (not searched) option of the method, KEY=VALUE (repeatable), e.g. smooth=true."),
    ] = None,
    race: Annotated[
        bool | None,
        typer.Option(
            "--race/--no-race",
            help="Race settings over the seeds (default 0-4): a setting gets the next seed only while it is not significantly worse "
            "than the incumbent on the seeds both have (spec [race]).",
        ),
    ] = None,
    storage: Storage = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", "-k", min=0, help="Local worker processes (0: only create the study; default: trials-per-gpu x GPUs, or 1)."
        ),
    ] = None,
    gpus: Annotated[str | None, typer.Option("--gpus", help="GPU ids to spread workers over (default: all visible).")] = None,
    trials_per_gpu: Annotated[
        int, typer.Option("--trials-per-gpu", min=1, help="Workers sharing each GPU (worker i on GPU i // K), each capped at 0.95/K of it.")
    ] = 1,
    threads: Threads = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda (workers on GPUs use their own).")] = "auto",
    timeout: Timeout = None,
    log_dir: Annotated[Path, typer.Option("--log-dir", help="Worker logs go to LOG_DIR/<study>/.")] = Path("spcl-search-logs"),
    track: Track = None,
    heartbeat_interval: HeartbeatInterval = DEFAULT_HEARTBEAT_INTERVAL,
    grace_period: GracePeriod = DEFAULT_GRACE_PERIOD,
) -> None:
    """Create (or resume) a study and run it with local workers, showing live progress."""
    import optuna

    from spcl_search.schema.best import best_settings
    from spcl_search.search import launcher
    from spcl_search.search.status import study_status
    from spcl_search.search.storage import open_storage, resolve_url
    from spcl_search.search.study import open_study
    from spcl_search.search.worker import sigterm_as_interrupt

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_optional("threads", threads)
    requested = _requested(
        spec_file=spec_file,
        name=study,
        backbone=backbone,
        variant=variant,
        method=method,
        precision=precision,
        dataset=dataset,
        data=data,
        kind=kind,
        modalities=modalities,
        epochs=epochs,
        seeds=seeds,
        n_trials=n_trials,
        sampler=sampler,
        pruner=pruner,
        warm_start=warm_start,
        baseline=baseline,
        space=space,
        track=track,
        method_option=method_option,
        race=None if race is None else {"enabled": race},
    )
    _check_data(requested.get("data"), requested.get("dataset"))
    requested = _named_after_data(requested)
    _require_tracking(requested.get("track"))
    url = resolve_url(storage)
    rdb = open_storage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    opened = open_study(rdb, requested)
    spec = opened.spec
    _check_data(spec.data, spec.dataset)
    console.print(f"study [bold]{spec.name}[/] ({'created' if opened.created else 'resumed'}) in {_masked(url)}")
    for note in opened.notes:
        console.print(f"  {note}")
    if spec.track:
        _require_tracking(spec.track)
        console.print(f"  trials tracked with {spec.track} (MLflow experiment {spec.name!r})")
    if workers == 0:
        console.print("no local workers (--workers 0); join with: spcl-search worker --study " + spec.name)
        return
    gpu_list = [g.strip() for g in gpus.split(",")] if gpus else launcher.detect_gpus()
    n_workers = launcher.default_workers(gpu_list, trials_per_gpu) if workers is None else workers
    slots = launcher.plan(n_workers, gpu_list, threads=threads, trials_per_gpu=trials_per_gpu)
    extra = ["--heartbeat-interval", str(heartbeat_interval), "--grace-period", str(grace_period), "--device", device]
    if timeout is not None:
        extra += ["--timeout", str(timeout)]
    if data is not None:
        extra += ["--data", data]
    if track is not None:
        extra += ["--track", track]
    procs = launcher.start_workers(spec.name, url, slots, log_dir, extra)
    where = ", ".join(f"GPU {_gpu(s.gpu, s.packing)}" if s.gpu is not None else f"{s.threads} CPU thread(s)" for s in slots)
    console.print(f"  {n_workers} worker(s): {where}; logs in {log_dir / spec.name}/")
    reader = open_storage(url, heartbeat_interval=None)
    began = time.monotonic()

    def render() -> Group:
        st = study_status(reader, spec.name, stale_after=float(grace_period), answers=False)
        return Group(_status_table(st, elapsed=time.monotonic() - began), _workers_table(st, procs))

    out = _out()
    try:
        with sigterm_as_interrupt(), Live(render(), console=out, refresh_per_second=2, transient=False) as live:
            while any(p.returncode is None for p in procs):
                time.sleep(1.0)
                live.update(render())
            live.update(render())
    except KeyboardInterrupt as exc:
        _after_live(out)
        console.print("interrupted: stopping workers (their running trials are re-enqueued); a second Ctrl-C quits at once")
        launcher.stop_workers(procs)
        st = study_status(reader, spec.name)
        console.print(
            f"study {spec.name!r} stopped: {st.counts.finished}/{st.n_trials} trials finished, {st.counts.running} running, "
            f"{st.counts.waiting} waiting (the interrupted ones among them); run again to continue"
        )
        raise typer.Exit(128 + getattr(exc, "signum", signal.SIGINT)) from None
    _after_live(out)
    final = study_status(reader, spec.name)
    failed = [p for p in procs if p.returncode not in (0, None)]
    if failed and not final.done:
        last = failed[0].tail(1).strip() or f"exit code {failed[0].returncode}"
        raise SpclSearchError(f"worker #{failed[0].slot.index} stopped: {last.removeprefix('error: ')} (log: {failed[0].log})")
    from spcl_search.search.confirm import CONFIRMS_ATTR, confirmation_of

    shown = optuna.load_study(study_name=spec.name, storage=reader)
    parent = shown.user_attrs.get(CONFIRMS_ATTR)
    if parent:  # a confirmation study: its answer is its parent's
        shown = optuna.load_study(study_name=parent, storage=reader)
    rows = best_settings(shown, confirmation_of(reader, shown))
    if rows:
        detail = _detail_table(rows)
        _out(detail).print(detail)
        _print_verdicts(rows)
    if final.done:
        console.print(f"study {spec.name!r} finished its budget of {final.n_trials} trials (`spcl-search best` shows the table)")
    else:
        console.print(f"study {spec.name!r}: {final.counts.finished}/{final.n_trials} trials finished; run again to continue")
    if final.counts.failed:
        raise SpclSearchError(_failures(reader, spec.name, final.counts.failed, log_dir / spec.name))


def _failures(storage: Any, name: str, n_failed: int, logs: Path) -> str:
    """One line on the failed trials nobody retries: how many, their most common error, where to look."""
    import collections

    import optuna
    from optuna.trial import TrialState

    from spcl_search.search.budget import retried_numbers

    trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    errors = collections.Counter(
        str(t.user_attrs.get("error") or "its worker died") for t in trials if t.state == TrialState.FAIL and t.number not in retried
    )
    common = f"; most often ({errors.most_common(1)[0][1]}x): {errors.most_common(1)[0][0]}" if errors else ""
    return f"{n_failed} trial(s) of study {name!r} failed and were not retried{common} (spcl-search status --study {name} --trials; logs in {logs}/)"


def _require_tracking(track: str | None) -> None:
    """A one-line error before anything starts when ``--track``'s backend is not installed."""
    from spcl_search.tracking import parse_target, require

    require(parse_target(track))


def _after_live(out: Console) -> None:
    """End the live view's last frame with a newline where rich does not (a pipe or a file)."""
    if not out.is_terminal:
        out.line()


def _named_after_data(requested: Request) -> Request:
    """A new study on a feature file (``--backbone`` with ``--data FILE``) takes the file's dataset name when
    ``--dataset`` is not given (its meta name, IEMOCAP or MELD recognised, else its stem), so it gets the real
    data's defaults and its own study name; "synthetic" names the embedded set only."""
    data = requested.get("data")
    if not data or data == "synthetic" or "backbone" not in requested:
        return requested
    if requested.get("dataset") == "synthetic":
        raise ConfigError(
            f"--dataset synthetic names the embedded synthetic set, not --data {data}; leave --dataset out (the file names its dataset)"
        )
    if "dataset" in requested:
        return requested
    from spcl_search.data.load import dataset_name

    return requested.but(dataset=dataset_name(data))


def _check_data(data: str | None, dataset: str | None) -> None:
    if data and data != "synthetic" and not Path(data).exists():
        raise ConfigError(f"--data {data}: no such file; pass the feature pickle of dataset {dataset or '?'!r} with --data PATH")


def _masked(url: str) -> str:
    from spcl_search.search.storage import mask_url

    return mask_url(url)


@app.command()
def worker(
    study: Annotated[str | None, typer.Option("--study", help="Study to join (or to create, with --spec/--backbone).")] = None,
    storage: Storage = None,
    gpu: Annotated[str | None, typer.Option("--gpu", help="GPU id this worker uses (sets CUDA_VISIBLE_DEVICES).")] = None,
    trials_per_gpu: Annotated[
        int,
        typer.Option(
            "--trials-per-gpu", min=1, help="Workers sharing this GPU: caps memory at 0.95/K; a GPU out-of-memory is retried once."
        ),
    ] = 1,
    memory_fraction: Annotated[
        float | None, typer.Option("--memory-fraction", min=0.01, max=1.0, help="CUDA allocator cap, a share of the GPU (default: 0.95/K).")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="torch CPU threads.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N (ignored with --gpu).")] = "auto",
    timeout: Annotated[float | None, typer.Option("--timeout", help="Start no trial after this many seconds.")] = None,
    data: Annotated[str | None, typer.Option("--data", help="Feature pickle on this machine (default: the study's).")] = None,
    spec_file: Annotated[Path | None, typer.Option("--spec", help="Create the study from this spec if it does not exist.")] = None,
    backbone: Annotated[str | None, typer.Option("--backbone", "-b", help="Create: backbone.")] = None,
    variant: Annotated[
        str | None, typer.Option("--variant", "--form", help="Backbone form: spcl or original (refused if it differs from the study's).")
    ] = None,
    method: Annotated[str | None, typer.Option("--method", help="Balance method (refused if it differs from the study's).")] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="fp32 or bf16 (refused if it differs from the study's).")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Create: dataset name.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Create: search or balance.")] = None,
    n_trials: Annotated[int | None, typer.Option("--n-trials", help="Study budget (changes it for every worker).")] = None,
    warm_start: Annotated[str | None, typer.Option("--warm-start", help="Create: 'paper' enqueues the paper's settings first.")] = None,
    heartbeat_interval: HeartbeatInterval = DEFAULT_HEARTBEAT_INTERVAL,
    grace_period: GracePeriod = DEFAULT_GRACE_PERIOD,
    max_retry: Annotated[
        int, typer.Option("--max-retry", hidden=True, min=0, help="Retries of a trial whose worker died before it counts as failed.")
    ] = DEFAULT_MAX_RETRY,
    track: Track = None,
) -> None:
    """Join a study and run trials until its budget is spent (run one per GPU or node)."""
    from spcl_search.search.storage import open_storage
    from spcl_search.search.worker import WorkerOptions, run_worker

    _setup_logging()
    check_optional("threads", threads)
    requested = _requested(
        spec_file=spec_file,
        name=study,
        backbone=backbone,
        variant=variant,
        method=method,
        precision=precision,
        dataset=dataset,
        kind=kind,
        n_trials=n_trials,
        data=data,
        warm_start=warm_start,
        track=track,
    )
    if "name" not in requested and "backbone" not in requested:
        raise ConfigError("worker needs --study NAME (or --spec FILE to create the study)")
    _check_data(requested.get("data"), requested.get("dataset"))
    requested = _named_after_data(requested)
    _require_tracking(requested.get("track"))
    rdb = open_storage(storage, heartbeat_interval=heartbeat_interval, grace_period=grace_period, max_retry=max_retry)
    options = WorkerOptions(
        device=device, threads=threads, gpu=gpu, timeout=timeout, data=data, trials_per_gpu=trials_per_gpu, memory_fraction=memory_fraction
    )
    try:
        report = run_worker(rdb, options=options, requested=requested)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        logging.getLogger(__name__).info("interrupted by %s; the running trial was failed and re-enqueued", signal.Signals(signum).name)
        raise typer.Exit(128 + signum) from None
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(report.states.items())) or "no trials"
    logging.getLogger(__name__).info("worker done (%s): %s", report.reason, states)


@app.command()
def status(
    study: Annotated[str | None, typer.Option("--study", help="Study name (default: every study).")] = None,
    storage: Storage = None,
    json_out: JsonOut = False,
    trials: Annotated[
        bool, typer.Option("--trials", help="Also list every trial: number, state, params, value, seconds, worker, note.")
    ] = False,
) -> None:
    """Trials by state, best so far, ETA and live workers of a study (or of every study); --trials lists the trials."""
    from spcl_search.search.status import all_statuses, study_status
    from spcl_search.search.storage import open_storage, study_exists

    rdb = open_storage(storage, heartbeat_interval=None, must_exist=True)
    if study is not None:
        if not study_exists(rdb, study):
            raise ConfigError(f"no study {study!r} in {_masked(rdb.url)}; run `spcl-search status` to list them")
        statuses = [study_status(rdb, study, trials=trials)]
    else:
        statuses = all_statuses(rdb, trials=trials)
    if json_out:
        print(json.dumps([s.to_dict() for s in statuses], indent=2, default=str))
        return
    if not statuses:
        console.print(f"no studies in {_masked(rdb.url)}")
    for st in statuses:
        tables = [_status_table(st), *([_workers_table(st)] if st.workers else []), *([_trials_table(st)] if st.trials is not None else [])]
        out = _out(*tables)
        for table in tables:
            out.print(table)


@app.command("storage-proxy")
def storage_proxy(
    storage_file: Annotated[
        Path | None,
        typer.Option(
            "--storage-file",
            help="File holding the URL of the study database the proxy serves (chmod 600); default $SPCL_SEARCH_STORAGE.",
        ),
    ] = None,
    storage: Annotated[str | None, typer.Option("--storage", hidden=True, help="Refused: the URL would show in `ps`.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (beyond 127.0.0.1 a --token-file is required).")] = "localhost",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port to listen on; workers use --storage grpc://HOST:PORT.")
    ] = 13000,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="File holding the token every client must send (default $SPCL_SEARCH_TOKEN_FILE)."),
    ] = None,
    read_only_token_file: Annotated[
        Path | None, typer.Option("--read-only-token-file", help="File holding a second token that may only read (status, report).")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Serve over TLS with this certificate (PEM); clients use grpcs://.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="The certificate's private key (PEM).")] = None,
    threads: Annotated[int, typer.Option("--threads", min=2, help="Threads answering calls (about 2 per worker).")] = 128,
    connections: Annotated[int, typer.Option("--connections", min=1, help="Database connections of the proxy's pool.")] = 8,
    lock_connections: Annotated[
        int, typer.Option("--lock-connections", min=1, help="Database connections for study locks (a separate pool).")
    ] = 4,
    heartbeat_interval: ProxyHeartbeatInterval = DEFAULT_HEARTBEAT_INTERVAL,
    grace_period: ProxyGracePeriod = DEFAULT_GRACE_PERIOD,
) -> None:
    """Serve the study database to workers over gRPC (Optuna's storage proxy): only the proxy holds connections."""
    import os

    from spcl_search.search.proxy_access import TOKEN_ENV, read_token
    from spcl_search.search.proxy_server import serve
    from spcl_search.search.settings import ENV_VAR

    _setup_logging()
    if storage is not None:
        raise ConfigError(
            f"storage-proxy takes the database URL from --storage-file FILE or ${ENV_VAR}, never the command line "
            "(`ps` shows it to every user of the machine)"
        )
    url = _read_storage_file(storage_file) if storage_file is not None else os.environ.get(ENV_VAR)
    if url and url.startswith(("grpc://", "grpcs://")):
        raise ConfigError("the proxy serves a database: give postgresql://... or sqlite:///..., not another proxy")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together: give both (or neither, for plain gRPC)")
    token_path = token_file if token_file is not None else os.environ.get(TOKEN_ENV)
    tokens = (read_token(token_path),) if token_path else ()
    read_only = (read_token(read_only_token_file, "--read-only-token-file"),) if read_only_token_file is not None else ()
    serve(
        url,
        host,
        port,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        threads=threads,
        connections=connections,
        lock_connections=lock_connections,
        tokens=tokens,
        read_only_tokens=read_only,
        tls=(str(tls_cert), str(tls_key)) if tls_cert is not None and tls_key is not None else None,
    )


def _read_storage_file(path: Path) -> str:
    try:
        text = path.expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--storage-file {path}: cannot read it ({getattr(exc, 'strerror', None) or type(exc).__name__})") from None
    if not text:
        raise ConfigError(f"--storage-file {path}: is empty; write the database URL in it")
    return text.splitlines()[0].strip()


@app.command()
def best(
    study: Annotated[list[str] | None, typer.Option("--study", help="Study name (repeatable) (default: every study).")] = None,
    storage: Storage = None,
    json_out: JsonOut = False,
    command: Annotated[
        bool, typer.Option("--command", help="Print, per modality set, the spcl-search train line that reproduces the chosen trial.")
    ] = False,
    toml: Annotated[
        Path | None,
        typer.Option("--toml", help="Write the chosen setting as a study spec (a file; a folder when several rows are chosen)."),
    ] = None,
) -> None:
    """Best setting per modality set with its uncertainty (paired on shared seeds), laid out like the paper's table."""
    import optuna

    from spcl_search.schema.best import best_settings
    from spcl_search.search.confirm import confirmation_of, is_confirmation
    from spcl_search.search.storage import list_studies, open_storage, study_exists

    rdb = open_storage(storage, heartbeat_interval=None, must_exist=True)
    names = study or list_studies(rdb)
    for name in names:
        if not study_exists(rdb, name):
            raise ConfigError(f"no study {name!r} in {_masked(rdb.url)}; run `spcl-search status` to list them")
    loaded = [optuna.load_study(study_name=name, storage=rdb) for name in names]
    if not study:  # every study: a confirmation is shown as its parent's answer
        loaded = [s for s in loaded if not is_confirmation(s)]
    rows = [row for s in loaded for row in best_settings(s, confirmation_of(rdb, s))]
    if json_out:
        print(json.dumps([r.to_dict() for r in rows], indent=2, default=str))
        return
    if not rows:
        console.print("no complete trials yet")
        return
    if command or toml is not None:
        _reproduce(rdb, rows, command, toml)
        return
    tables = (_paper_table(rows), _detail_table(rows))
    out = _out(*tables)
    for table in tables:
        out.print(table)
    _print_verdicts(rows)


def _reproduce(rdb: Any, rows: list[BestSetting], command: bool, toml: Path | None) -> None:
    """``best --command`` / ``--toml``: what reproduces each chosen trial."""
    import optuna

    from spcl_search.schema.reproduce import shell_line, spec_fragment, train_command
    from spcl_search.search.study import stored_spec

    if toml is not None and len(rows) > 1 and toml.suffix == ".toml":
        raise ConfigError(f"--toml {toml}: {len(rows)} settings are chosen; give a folder (or one --study with one modality set)")
    for r in rows:
        source = optuna.load_study(study_name=r.source, storage=rdb)
        spec, trial = stored_spec(source), next(t for t in source.get_trials(deepcopy=False) if t.number == r.trial)
        if command:
            print(f"# {r.study} {r.modalities}: trial {r.trial} of {r.source}, dev F1 {r.dev_f1:.4f} ({r.stage})")
            print(shell_line(train_command(spec, trial, r.modalities)))
        if toml is not None:
            path = toml / f"{r.study}-{r.modalities}.toml" if len(rows) > 1 or toml.is_dir() else toml
            from spcl_search.outputs import atomic_write

            atomic_write(path, spec_fragment(spec, trial, r.modalities, f"{r.study}-best-{r.modalities}"))
            console.print(f"wrote {path}", highlight=False)


def _paper_table(rows: list[BestSetting]) -> Table:
    """Rows: backbone (and kind); columns: dataset x modality set; cells: cl_growth/cl_threshold."""
    from spcl_search.schema.best import paper_table

    header, body = paper_table(rows)
    table = Table(title="best cl_growth/cl_threshold per modality set (selected on dev F1)", title_justify="left")
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "center", overflow="fold")  # wrapped, never cut
    for line in body:
        table.add_row(*map(escape, line))  # "mmgcn [spcl]" is text, not rich markup
    return table


def _detail_table(rows: list[BestSetting]) -> Table:
    from spcl_search.schema.best import GAIN_COLUMNS, gain_cells

    table = Table(title="details (F1 = weighted-F1 %, mean ± std over the seeds; test at the best dev epoch)", title_justify="left")
    columns = ("study", "modalities", "trial", "params", "seeds", "dev F1", "test F1", "no-SPCL dev F1", "no-SPCL test F1")
    for col in (*columns, *GAIN_COLUMNS):
        table.add_column(col, overflow="fold")  # wrapped, never cut
    for r in rows:
        table.add_row(
            escape(r.study if r.source == r.study else f"{r.study} (confirmed in {r.source})"),
            r.modalities,
            str(r.trial),
            escape(_params(r.params)),
            str(len(r.seeds) or 1),
            pm(r.dev_f1, r.dev_f1_std),
            pm(r.test_f1, r.test_f1_std),
            "-" if r.baseline_dev_f1 is None else f"{r.baseline_dev_f1:.2f}",
            "-" if r.baseline_test_f1 is None else f"{r.baseline_test_f1:.2f}",
            *gain_cells(r),
        )
    return table


def _print_verdicts(rows: list[BestSetting]) -> None:
    """One line per answer: how it was reached and what it beats."""
    for r in rows:
        console.print(f"{r.study} {r.modalities} {r.setting}: {r.stage}; {r.verdict}", highlight=False, markup=False)
    for name in dict.fromkeys(r.study for r in rows if not r.confirmed):
        console.print(f"confirm {name} on fresh seeds: spcl-search confirm --study {name}", highlight=False, markup=False)

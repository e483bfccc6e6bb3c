"""``spcl-search confirm``: train a study's best settings again beside the baseline, on fresh shared seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spcl_search.cli import app
from spcl_search.cli.search import GracePeriod, HeartbeatInterval, Storage, Threads, Timeout, console, run
from spcl_search.errors import ConfigError
from spcl_search.search.confirm import DEFAULT_SEEDS, DEFAULT_TOP
from spcl_search.search.settings import DEFAULT_GRACE_PERIOD, DEFAULT_HEARTBEAT_INTERVAL


@app.command()
def confirm(
    study: Annotated[str, typer.Option("--study", help="The study whose best settings to confirm (its search finished).")],
    top: Annotated[int, typer.Option("--top", min=1, help="Settings confirmed per modality set, best by dev F1 first.")] = DEFAULT_TOP,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds", help=f"Comma list of seeds shared by every confirmed trial (default: {DEFAULT_SEEDS} the search never used)."
        ),
    ] = None,
    storage: Storage = None,
    data: Annotated[str | None, typer.Option("--data", help="Feature pickle on this machine (default: the study's).")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-k", min=0, help="Local worker processes (0: only create the confirmation; default as run).")
    ] = None,
    gpus: Annotated[str | None, typer.Option("--gpus", help="GPU ids to spread workers over (default: all visible).")] = None,
    trials_per_gpu: Annotated[int, typer.Option("--trials-per-gpu", min=1, help="Workers sharing each GPU.")] = 1,
    threads: Threads = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda (workers on GPUs use their own).")] = "auto",
    timeout: Timeout = None,
    log_dir: Annotated[Path, typer.Option("--log-dir", help="Worker logs go to LOG_DIR/<study>-confirm/.")] = Path("spcl-search-logs"),
    heartbeat_interval: HeartbeatInterval = DEFAULT_HEARTBEAT_INTERVAL,
    grace_period: GracePeriod = DEFAULT_GRACE_PERIOD,
) -> None:
    """Train the --top best settings of a study and its no-balance-method baseline on the same fresh seeds, then
    print the answer: the best mean dev F1, its paired difference to the baseline and the runner-up (95% interval),
    and a verdict. The confirmation is the linked study <study>-confirm: any worker can run it."""
    from spcl_search.search.confirm import confirm as make_confirmation
    from spcl_search.search.storage import open_storage, resolve_url

    chosen = None
    if seeds is not None:
        try:
            chosen = [int(x) for x in seeds.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"--seeds {seeds!r}: give a comma list of integers such as 1,2,3,4,5") from None
    url = resolve_url(storage)
    rdb = open_storage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    made = make_confirmation(rdb, study, top=top, seeds=chosen, data=data)
    how = "created" if made.opened.created else "resumed"
    console.print(
        f"confirmation {made.name} ({how}): trials {made.picks} of {study} and the baseline, on seeds {list(made.seeds)}", highlight=False
    )
    for note in made.notes:
        console.print(f"  {note}", highlight=False)
    run(
        study=made.name,
        storage=url,
        data=data,
        workers=workers,
        gpus=gpus,
        trials_per_gpu=trials_per_gpu,
        threads=threads,
        device=device,
        timeout=timeout,
        log_dir=log_dir,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
    )

"""``spcl-search train``: train one SPCL-wrapped backbone and show dev/test figures."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from spcl_search.cli import app
from spcl_search.errors import ConfigError

console = Console()


@app.command()
def train(
    backbone: str = typer.Option("mmgcn", "--backbone", "-b", help="Backbone: late_fusion, mmgcn, dialoguegcn, mm_dfn, biddin."),
    variant: str = typer.Option("spcl", "--variant", help="Backbone form: 'spcl' (the SPCL code's, whose settings the paper reports) or 'original' (the backbone's own paper)."),
    reference_arithmetic: bool = typer.Option(
        False, "--reference-arithmetic", help="spcl form: reproduce the SPCL code's arithmetic, defects included (attention over padding)."
    ),
    standardise: bool = typer.Option(False, "--standardise", help="Standardise each feature dimension with train-split mean and std."),
    dataset: str = typer.Option("synthetic", "--dataset", "-d", help="Feature pickle (SPCL or DialogueGCN format) or 'synthetic'."),
    modalities: str = typer.Option("atv", "--modalities", "-m", help="Modality subset: a, t, v, at, av, tv, atv."),
    cl_threshold: float = typer.Option(0.4, help="SPCL starting threshold (the paper's epsilon)."),
    cl_growth: float = typer.Option(1.1, help="SPCL per-epoch threshold factor (the paper's alpha)."),
    cl_normalise: str = typer.Option("all", help="Loss normaliser: 'all' utterances (reference code) or 'selected' (paper formula)."),
    cl_score: str = typer.Option("sum", help="Dialogue score: 'sum' (reference) or 'mean' (length-fair)."),
    cl_cap: float = typer.Option(60.0, help="Upper bound of the SPCL threshold."),
    no_cl: bool = typer.Option(False, "--no-cl", help="Train without SPCL (plain NLL on the joint prediction)."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs [default: the form's protocol]."),
    lr: Optional[float] = typer.Option(None, help="Learning rate [default: the backbone's]."),
    weight_decay: Optional[float] = typer.Option(None, help="Adam weight decay [default: the backbone's]."),
    batch_size: Optional[int] = typer.Option(None, help="Dialogues per batch [default: the backbone's]."),
    clip: float = typer.Option(2.0, help="Gradient-norm clipping (L2); 0 disables."),
    patience: Optional[int] = typer.Option(None, help="Stop after this many epochs without a better dev F1 [default: the form's; 0: never]."),
    seed: int = typer.Option(0, help="Random seed (model init, batch order)."),
    dev_fraction: float = typer.Option(0.1, help="Dev fraction of train dialogues when the file has no validVid."),
    device: str = typer.Option("auto", help="auto (CUDA if available), cpu, cuda or cuda:N."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads [default: torch's]."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16: forward passes under bfloat16 autocast (CPU and CUDA; recorded with the run)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Write the best-dev model here (atomically)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full result (config, history, figures) as JSON."),
) -> None:
    """Train one SPCL-wrapped backbone; select on dev, report test at the best dev epoch."""
    from spcl_search.data.load import load_dataset
    from spcl_search.spcl import SPCLConfig
    from backbones.defaults import VARIANTS
    from spcl_search.train import TrainConfig, effective_protocol
    from spcl_search.train import train as run_training

    ds = load_dataset(dataset, dev_fraction=dev_fraction)
    config = TrainConfig(
        backbone=backbone,
        variant=variant,
        modalities=modalities,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        clip_grad_norm=clip,
        seed=seed,
        device=device,
        threads=threads,
        patience=patience,
        precision=precision,
        standardise=standardise,
        model={"reference_arithmetic": True} if reference_arithmetic else {},
        spcl=SPCLConfig(enabled=not no_cl, threshold=cl_threshold, growth=cl_growth, cap=cl_cap, normalise=cl_normalise, score=cl_score),
        checkpoint=str(checkpoint) if checkpoint else None,
    )
    if json_out is not None and json_out.is_dir():
        raise ConfigError(f"--json {json_out}: is a directory; give a file path")

    progress = Progress(
        TextColumn("[bold]epoch"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        console=console,
    )
    if variant not in VARIANTS:
        raise ConfigError(f"--variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    if reference_arithmetic and variant != "spcl":
        raise ConfigError("--reference-arithmetic applies to --variant spcl only")
    total = effective_protocol(config, ds.name)["epochs"]
    with progress:
        task = progress.add_task("train", total=total, stats="")

        def on_epoch(r) -> None:
            progress.update(
                task,
                advance=1,
                stats=f"loss {r.train_loss:.3f}  take {r.take_rate:.0%}  thr {r.threshold:.2f}  dev F1 {r.dev_f1:.2f}  ({r.seconds:.1f}s)",
            )

        result = run_training(ds, config, callback=on_epoch)

    surrogate = ds.info.get("surrogate") or []
    if ds.name == "synthetic":
        tag = " (fully synthetic data)"
    elif surrogate:
        tag = f" (SURROGATE {', '.join(surrogate)} features)"
    else:
        tag = ""
    title = f"{backbone} ({variant} form) {result.config['modalities']} on {ds.name}{tag}"
    table = Table(title=title)
    for col in ("split", "weighted-F1 %", "accuracy %"):
        table.add_column(col, justify="right" if col != "split" else "left")
    table.add_row(f"dev (best, epoch {result.best_epoch})", f"{result.dev_f1:.2f}", f"{result.dev_acc:.2f}")
    table.add_row("test (at best dev epoch)", f"{result.test_f1:.2f}", f"{result.test_acc:.2f}")
    console.print(table)
    cl = "off" if no_cl else f"threshold {cl_threshold} growth {cl_growth} normalise {cl_normalise} score {cl_score}"
    console.print(
        f"SPCL {cl}; {len(result.history)} epochs, {result.seconds_per_epoch:.2f} s/epoch on {result.device}; seed {seed}"
        + ("; standardised features" if standardise else "")
        + (f"; {precision} autocast" if precision != "fp32" else "")
        + ("; reference arithmetic" if reference_arithmetic else "")
    )
    if json_out is not None:
        _write_atomic(json_out, json.dumps(result.to_dict(), indent=2, default=str))
        console.print(f"wrote {json_out}")


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a unique temporary file next to ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
